"""Export subscribers to CSV (subscriptions/exporting.py): email, status, topics, preferences
and dates; the file imports back with import_subscribers.

    manage.py export_subscribers list.csv                # everyone
    manage.py export_subscribers list.csv --status active --status pending
    manage.py export_subscribers -                       # to standard output
"""

import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from subscriptions.exporting import write_csv
from subscriptions.models import Subscriber


class Command(BaseCommand):
    help = "Export subscribers with their topics and status to a CSV file."

    def add_arguments(self, parser):
        parser.add_argument("file", help="Where to write the CSV (- for standard output).")
        parser.add_argument("--status", action="append", choices=Subscriber.Status.values, help="Only these statuses (repeatable).")

    def handle(self, *args, **options):
        queryset = Subscriber.objects.all()
        if options["status"]:
            queryset = queryset.filter(status__in=options["status"])
        if options["file"] == "-":
            write_csv(self.stdout, queryset)
            return
        interactive = hasattr(self.stdout, "isatty") and self.stdout.isatty()
        bar = tqdm(total=queryset.count(), unit="row", disable=not interactive, file=sys.stdout)
        try:
            with open(options["file"], "w", newline="", encoding="utf-8") as out:
                written = write_csv(out, queryset, progress=bar.update)
        except OSError as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        self.stdout.write(f"Wrote {written} subscribers to {options['file']}.")
