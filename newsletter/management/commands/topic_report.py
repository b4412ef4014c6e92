"""`manage.py topic_report`: each topic's papers with the evidence that put them there, then the
papers that matched no topic (to tune the keywords in the admin). `--json` prints one object
per paper instead: {"arxiv_id", "topics": [slugs, primary first], "primary": slug or null,
"scores": {slug: probability}}."""

import json

from django.core.management.base import BaseCommand
from django.db.models import Prefetch

from newsletter.models import Paper, PaperTopicScore
from subscriptions.models import Topic


class Command(BaseCommand):
    help = "Show each topic's papers (with the evidence) and the papers that matched no topic."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=0, help="At most this many papers per topic (0: all).")
        parser.add_argument("--last-run", action="store_true", help="Only the papers of the last good scrape.")
        parser.add_argument("--json", action="store_true", dest="as_json", help="One JSON object per paper, for scripts.")

    def handle(self, *args, limit=0, last_run=False, as_json=False, **options):
        papers = Paper.objects.from_last_good_scrape() if last_run else Paper.objects.order_by("arxiv_id")
        if as_json:
            return self.write_json(papers)
        paper_ids = set(papers.values_list("pk", flat=True))
        scores = PaperTopicScore.objects.filter(paper_id__in=paper_ids).select_related("paper").order_by("-score", "paper__arxiv_id")
        topics = Topic.objects.filter(active=True).prefetch_related(Prefetch("paper_scores", queryset=scores, to_attr="report_scores"))

        self.stdout.write(f"{len(paper_ids)} papers, {len(topics)} active topics\n")
        for topic in topics:
            rows = topic.report_scores
            self.stdout.write(self.style.MIGRATE_HEADING(f"{topic.name} [{topic.slug}]: {len(rows)} papers"))
            for row in rows[:limit] if limit else rows:
                self.stdout.write(f"  {row.score:5.2f} {'*' if row.primary else ' '} {row.paper.arxiv_id}  {row.paper.title}")
                self.stdout.write(f"         matched: {', '.join(row.matched)}")
                if row.evidence.get("terms"):
                    self.stdout.write(f"         model: {', '.join(row.evidence['terms'])}")
                if "taught" in row.evidence:
                    self.stdout.write(f"         taught: {'in' if row.evidence['taught'] else 'out'}")
            self.stdout.write("")

        unmatched = Paper.objects.filter(pk__in=paper_ids).exclude(topic_scores__isnull=False).order_by("arxiv_id")
        self.stdout.write(self.style.MIGRATE_HEADING(f"Matched no topic: {unmatched.count()} papers"))
        for paper in unmatched:
            self.stdout.write(f"  {paper.arxiv_id}  {paper.title}")

    def write_json(self, papers) -> None:
        rows = PaperTopicScore.objects.select_related("topic").order_by("-primary", "-score", "topic__slug")
        report = []
        for paper in papers.only("pk", "arxiv_id").prefetch_related(Prefetch("topic_scores", queryset=rows, to_attr="rows")):
            report.append({
                "arxiv_id": paper.arxiv_id,
                "topics": [row.topic.slug for row in paper.rows],
                "primary": next((row.topic.slug for row in paper.rows if row.primary), None),
                "scores": {row.topic.slug: row.score for row in paper.rows},
            })
        self.stdout.write(json.dumps(report, indent=1))
