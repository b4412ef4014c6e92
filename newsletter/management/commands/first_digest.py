"""See a digest in the first minutes, without internet or accounts:

    manage.py first_digest [--email you@example.org]

loads the sample papers shipped in newsletter/sample/ (a real Hugging Face daily papers
response), subscribes the address to every topic those papers are in (confirmed, as if the
double opt-in had been done), and sends the digests that are due now through the configured
email backend: with `make run`'s defaults they are printed and saved in var/outbox/. It also
writes the digest's HTML to var/outbox/first-digest.html to open in a browser.
"""

import time
from email import message_from_bytes, policy
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from newsletter.models import Delivery, PaperRank, PaperTopicScore, ScrapeRun
from newsletter.scraping import run
from subscriptions import actions
from subscriptions.models import ConsentEvent, Subscriber, Topic

SAMPLE = Path(__file__).resolve().parents[2] / "sample" / "daily_papers.json"
ORIGIN = actions.Origin(user_agent="manage.py first_digest")


class Command(BaseCommand):
    help = "Load the shipped sample papers and send a first digest now (no internet needed)."

    def add_arguments(self, parser):
        parser.add_argument("--email", default="you@example.org", help="The address the first digest is for (default: you@example.org).")

    def handle(self, *args, email, **options):
        started = time.time()
        scrape = run.scrape_file(SAMPLE)
        if scrape.status != ScrapeRun.Status.OK:
            raise CommandError(f"Could not load the sample papers: {scrape.error}")
        self.stdout.write(f"Loaded {scrape.papers_found} sample papers ({scrape.papers_new} new).")

        reader = self._reader(email, scrape)
        sent_before = reader.deliveries.filter(status=Delivery.Status.SENT).count()
        call_command("send_digests", "--all", stdout=self.stdout)
        if reader.deliveries.filter(status=Delivery.Status.SENT).count() == sent_before:
            self.stdout.write(f"{reader.email} already had today's digest (one a day, never twice): nothing new was sent.")
            return
        self._where_to_look(started)

    def _reader(self, email: str, scrape: ScrapeRun) -> Subscriber:
        reader = Subscriber.objects.by_email(email).first()
        if reader is None:
            reader = Subscriber.objects.create(email=email, status=Subscriber.Status.ACTIVE, confirmed_at=timezone.now(), papers_per_email=5)
            papers = PaperRank.objects.filter(run=scrape).values("paper_id")
            topics = Topic.objects.filter(active=True, pk__in=PaperTopicScore.objects.filter(paper_id__in=papers).values("topic_id"))
            reader.topics.set(topics)
            actions.log_event(reader, ConsentEvent.Kind.ADMIN, ORIGIN, note="subscribed by first_digest to see a sample digest",
                              topics=sorted(t.slug for t in topics))
            self.stdout.write(f"Subscribed {reader.email} to {topics.count()} topics: {', '.join(t.name for t in topics)}.")
        elif reader.status != Subscriber.Status.ACTIVE or reader.paused:
            raise CommandError(f"{reader.email} does not receive digests now ({reader.get_status_display()}"
                               f"{', paused' if reader.paused else ''}); use another --email.")
        return reader

    def _where_to_look(self, started: float) -> None:
        outbox = Path(settings.EMAIL_OUTBOX_DIR)
        emails = sorted(p for p in outbox.glob("*.eml") if p.stat().st_mtime >= started - 1) if outbox.is_dir() else []
        self.stdout.write("")
        if not emails:
            self.stdout.write(f"Sent through {settings.EMAIL_BACKEND}: look in that provider's or mail catcher's inbox.")
            return
        html = None
        message = message_from_bytes(emails[-1].read_bytes(), policy=policy.default)
        part = message.get_body(preferencelist=("html",))
        if part is not None:
            html = outbox / "first-digest.html"
            html.write_text(part.get_content(), encoding="utf-8")
        self.stdout.write(self.style.SUCCESS("Your first digest is here:"))
        self.stdout.write(f"  the email:        {emails[-1]}  (open it in any mail client)")
        if html:
            self.stdout.write(f"  in a browser:     {html.as_uri()}")
        self.stdout.write(f"  every email sent: {outbox}/")
        self.stdout.write("Its links (More like this, preferences, unsubscribe) work while `make run` serves the site.")
        self.stdout.write("Nothing keeps running: this command is done. `make clean` removes var/ (database, outbox).")
