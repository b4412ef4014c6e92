"""Scrape by hand: `manage.py scrape_papers [--url URL | --file PATH]`. Prints what was found,
new and updated; exits non-zero on a scrape error (which is recorded and mailed as usual)."""

from django.core.management.base import BaseCommand, CommandError

from newsletter.app_settings import app_settings
from newsletter import locks
from newsletter.models import ScrapeRun
from newsletter.scraping import run
from newsletter.tasks.scrape import LOCK_NAME


class Command(BaseCommand):
    help = "Scrape the papers page (SCRAPE_SOURCE_URL, or --url), or load a saved page or API JSON (--file)."

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--url", help="Page or API URL to scrape instead of SCRAPE_SOURCE_URL.")
        source.add_argument("--file", help="A saved HTML page or API JSON response to load.")

    def handle(self, *args, url=None, file=None, **options):
        with locks.exclusive(LOCK_NAME, app_settings.SCRAPE_LOCK_TIMEOUT) as acquired:
            if not acquired:
                raise CommandError("Another scrape is running; try again when it has finished.")
            scrape_run = run.scrape_file(file) if file else run.scrape_url(url)

        if scrape_run.status == ScrapeRun.Status.FAILED:
            raise CommandError(f"Scrape failed (run {scrape_run.pk}): {scrape_run.error}")
        if scrape_run.status == ScrapeRun.Status.NOT_MODIFIED:
            self.stdout.write(f"Not modified since the last scrape: {scrape_run.papers_found} papers, nothing new.")
            return
        self.stdout.write(
            f"Found {scrape_run.papers_found} papers ({scrape_run.parser}): "
            f"{scrape_run.papers_new} new, {scrape_run.papers_updated} updated, "
            f"{scrape_run.records_skipped} skipped."
        )
        if scrape_run.records_skipped:
            self.stderr.write(scrape_run.error)
        self.stdout.write(self.style.SUCCESS(f"Run {scrape_run.pk} OK."))
