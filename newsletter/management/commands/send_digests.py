"""Run the digest dispatcher by hand.

    manage.py send_digests            # who is due now: create, send in this process, summary
    manage.py send_digests --all      # everyone without today's digest, whatever their hour
    manage.py send_digests --dry-run  # choose and render, send and write nothing
    manage.py send_digests --workers  # queue the chunks for Celery workers and follow them

A progress bar is shown when stdout is a terminal; every run ends with a summary line and a
structured log line (event=digest.run ...).
"""

import sys
import time
import uuid
from dataclasses import asdict

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from newsletter.app_settings import app_settings
from newsletter.digests import chunks, dispatch
from newsletter.logs import EventLog
from newsletter.models import Delivery
from newsletter.tasks.digests import queue_chunk

log = EventLog(__name__)

S = Delivery.Status


class Command(BaseCommand):
    help = "Send the digests that are due now (or everyone's with --all)."

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="Ignore send hours: everyone who has no digest for their local date yet.")
        parser.add_argument("--dry-run", action="store_true", help="Choose papers and render every digest, but send and save nothing.")
        parser.add_argument("--workers", action="store_true", help="Queue the chunks for Celery workers and follow their progress.")
        parser.add_argument("--timeout", type=float, default=3600, help="With --workers: stop following after this many seconds.")

    def handle(self, *args, **options):
        started = time.perf_counter()
        interactive = hasattr(self.stdout, "isatty") and self.stdout.isatty()
        if options["dry_run"]:
            self._dry_run(options["all"], interactive, started)
            return
        batches = []

        def enqueue(ids):
            batches.append(ids)
            if options["workers"]:
                queue_chunk(ids)

        report = dispatch.dispatch(ignore_hour=options["all"], enqueue=enqueue)
        if report.waiting:
            raise CommandError(f"No digest sent: {report.waiting}.")
        ids = [pk for batch in batches for pk in batch]
        bar = tqdm(total=report.queued, unit="email", disable=not interactive, file=sys.stdout)
        try:
            if options["workers"]:
                self._follow(ids, bar, options["timeout"])
            else:
                self._send_here(batches, bar)
        finally:
            bar.close()
        counts = self._counts(ids) if ids else {}
        summary = {
            "due": report.queued,
            "sent": counts.get(S.SENT, 0),
            "skipped": counts.get(S.SKIPPED, 0),
            "failed": counts.get(S.FAILED, 0),
            "still_open": counts.get(S.PENDING, 0) + counts.get(S.SENDING, 0),
            "seconds": round(time.perf_counter() - started, 2),
        }
        log("digest.run", mode="workers" if options["workers"] else "here", all=options["all"], **summary)
        self.stdout.write(" ".join(f"{k}={v}" for k, v in summary.items()))

    def _send_here(self, batches, bar):
        claimer = f"cli-{uuid.uuid4()}"
        for n, ids in enumerate(batches):
            for attempt in range(app_settings.DIGEST_MAX_RETRIES + 1):
                try:
                    report = chunks.send_chunk(ids, claimer=f"{claimer}-{n}", attempt=attempt)
                except chunks.RetryLater as later:
                    self.stderr.write(f"chunk {n}: {later}; retrying in {later.countdown:.1f} s")
                    time.sleep(later.countdown)
                    continue
                bar.update(report.claimed)
                break

    def _follow(self, ids, bar, timeout):
        """Poll the deliveries this run queued until none is open (or the time-out)."""
        deadline = time.monotonic() + timeout
        done = 0
        while time.monotonic() < deadline:
            counts = self._counts(ids)
            open_rows = counts.get(S.PENDING, 0) + counts.get(S.SENDING, 0)
            bar.update(len(ids) - open_rows - done)
            done = len(ids) - open_rows
            if open_rows == 0:
                return
            time.sleep(0.5)

    @staticmethod
    def _counts(ids):
        counts = {}
        for start in range(0, len(ids), 5000):
            for status in Delivery.objects.filter(pk__in=ids[start : start + 5000]).values_list("status", flat=True):
                counts[status] = counts.get(status, 0) + 1
        return counts

    def _dry_run(self, ignore_hour, interactive, started):
        bar = tqdm(unit="subscriber", disable=not interactive, file=sys.stdout)
        try:
            report = dispatch.plan(ignore_hour=ignore_hour, progress=bar.update)
        finally:
            bar.close()
        if report.waiting:
            raise CommandError(f"No digest would be sent: {report.waiting}.")
        summary = {**asdict(report), "seconds": round(time.perf_counter() - started, 2)}
        summary.pop("waiting")
        self.stdout.write("dry run: " + " ".join(f"{k}={v}" for k, v in summary.items()))
