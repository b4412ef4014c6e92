"""`manage.py topic_report`: each topic's papers with the keywords that matched, then the
papers that matched no topic (to tune the keywords in the admin)."""

from django.core.management.base import BaseCommand
from django.db.models import Prefetch

from newsletter.models import Paper, PaperTopicScore
from subscriptions.models import Topic


class Command(BaseCommand):
    help = "Show each topic's papers (with the matched keywords) and the papers that matched no topic."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=0, help="At most this many papers per topic (0: all).")
        parser.add_argument("--last-run", action="store_true", help="Only the papers of the last good scrape.")

    def handle(self, *args, limit=0, last_run=False, **options):
        papers = Paper.objects.from_last_good_scrape() if last_run else Paper.objects.all()
        paper_ids = set(papers.values_list("pk", flat=True))
        scores = PaperTopicScore.objects.filter(paper_id__in=paper_ids).select_related("paper").order_by("-score", "paper__arxiv_id")
        topics = Topic.objects.filter(active=True).prefetch_related(Prefetch("paper_scores", queryset=scores, to_attr="report_scores"))

        self.stdout.write(f"{len(paper_ids)} papers, {len(topics)} active topics\n")
        for topic in topics:
            rows = topic.report_scores
            self.stdout.write(self.style.MIGRATE_HEADING(f"{topic.name} [{topic.slug}]: {len(rows)} papers"))
            for row in rows[:limit] if limit else rows:
                self.stdout.write(f"  {row.score:5.1f}  {row.paper.arxiv_id}  {row.paper.title}")
                self.stdout.write(f"         matched: {', '.join(row.matched)}")
            self.stdout.write("")

        unmatched = Paper.objects.filter(pk__in=paper_ids).exclude(topic_scores__isnull=False).order_by("arxiv_id")
        self.stdout.write(self.style.MIGRATE_HEADING(f"Matched no topic: {unmatched.count()} papers"))
        for paper in unmatched:
            self.stdout.write(f"  {paper.arxiv_id}  {paper.title}")
