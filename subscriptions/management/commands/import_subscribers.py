"""Import subscribers from a CSV file (subscriptions/importing.py; columns as written by
export_subscribers, only `email` required).

    manage.py import_subscribers list.csv                      # double opt-in: each new address gets a confirmation email
    manage.py import_subscribers list.csv --confirmed-elsewhere --consent-note "Signed up on our old site's form, double opt-in, 2021-2024"
    manage.py import_subscribers list.csv --refused refused.csv  # also write the refused rows, with the reason, to a file

Importing the same file again changes nothing. A progress bar is shown when stdout is a
terminal; every run ends with a summary and the refused rows.
"""

import csv
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from subscriptions.importing import InvalidFile, Mode, import_csv

SHOWN_REFUSALS = 20


class Command(BaseCommand):
    help = "Import subscribers from a CSV file (double opt-in unless --confirmed-elsewhere)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV file with an `email` column (and optionally topics, status, preferences).")
        parser.add_argument("--confirmed-elsewhere", action="store_true",
                            help="Add new addresses as active without a confirmation email (needs --consent-note).")
        parser.add_argument("--consent-note", default="", help="Where and how these readers gave their consent (kept in the consent log).")
        parser.add_argument("--encoding", default="utf-8-sig")
        parser.add_argument("--refused", metavar="CSV", help="Write the refused rows (line, email, reason) to this file.")

    def handle(self, *args, **options):
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        mode = Mode.CONFIRMED_ELSEWHERE if options["confirmed_elsewhere"] else Mode.DOUBLE_OPT_IN
        interactive = hasattr(self.stdout, "isatty") and self.stdout.isatty()
        with path.open("rb") as raw:
            total = max(sum(1 for _ in raw) - 1, 0)
        bar = tqdm(total=total, unit="row", disable=not interactive, file=sys.stdout)
        try:
            with path.open(encoding=options["encoding"], newline="") as text:
                report = import_csv(text, mode, options["consent_note"], source=path.name, by="manage.py import_subscribers",
                                    progress=bar.update)
        except (InvalidFile, ValueError) as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        self.stdout.write(f"{report.summary()} in {report.seconds:.1f} s ({report.rows / max(report.seconds, 1e-9):,.0f} rows/s).")
        for refusal in report.refused[:SHOWN_REFUSALS]:
            self.stdout.write(f"  line {refusal.line}: {refusal.email or '(no address)'}: {refusal.reason}")
        if len(report.refused) > SHOWN_REFUSALS:
            self.stdout.write(f"  ... and {len(report.refused) - SHOWN_REFUSALS} more refused rows" +
                              ("" if options["refused"] else " (write them all with --refused FILE)"))
        if options["refused"]:
            with open(options["refused"], "w", newline="", encoding="utf-8") as out:
                writer = csv.writer(out)
                writer.writerow(["line", "email", "reason"])
                writer.writerows([r.line, r.email, r.reason] for r in report.refused)
