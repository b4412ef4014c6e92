"""A scrape that goes wrong on the day: no digest from bad data, nothing lost, admins told.

The source is a local HTTP server standing in for huggingface.co (tests/support/hf_server.py). After
yesterday's good scrape it serves, one scrape after the other: an empty page, a changed
layout (the same papers in markup the parser does not know), a partial list (3 of the 17
papers), a 1.5 MB page sent so slowly it outlasts SCRAPE_TOTAL_TIMEOUT, and then a good page.
Each scrape is the real Celery task in a real worker; after each one the digest dispatcher
runs.

Verdict, after each bad scrape: the run is recorded as failed with its reason, the admins got
one mail about it at the SMTP sink, no stored paper was lost or changed, the dispatcher
created no delivery and no digest reached anyone. After the good scrape: every due subscriber
got exactly one digest and nobody else got one.

    .venv/bin/python chaos/bad_scrape.py [--subscribers 300]
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chaos.support import verdict  # noqa: E402
from tests.support.bad_scrape import (  # noqa: E402
    ADMIN, ITEMS, PATH, bad_replies, check_bad_step, paper_snapshot, scrape_env, scrape_now,
)
from tests.support.databases import base_env, fresh_database, setup_django  # noqa: E402
from tests.support.digest_runs import drive_digests, duplicates_of  # noqa: E402
from tests.support.hf_server import SAMPLE_PAGE, HFServer, Reply  # noqa: E402
from tests.support.processes import CeleryWorker  # noqa: E402
from tests.support.seeding import seed_subscribers  # noqa: E402
from tests.support.smtp_sink import SmtpSink  # noqa: E402

DB_NAME = "nl_chaos_scrape"
REDIS_DB = 7


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=300)
    parser.add_argument("--time-limit", type=float, default=300)
    args = parser.parse_args()
    started = time.monotonic()

    sink = SmtpSink().start()
    source = HFServer().start()
    good = SAMPLE_PAGE.read_bytes()
    env = base_env(DB_NAME, REDIS_DB, **scrape_env(source, sink, total_timeout=4))
    fresh_database(env)
    setup_django(env)
    from datetime import timedelta

    from newsletter.models import Delivery, ScrapeRun
    from newsletter.tasks.digests import dispatch_now

    CeleryWorker(env, "scrape", concurrency=2).start()

    print("Yesterday: a good scrape")
    source.route(PATH, Reply.html(good))
    yesterday = scrape_now()
    ScrapeRun.objects.filter(pk=yesterday.pk).update(
        started_at=yesterday.started_at - timedelta(days=1), finished_at=yesterday.finished_at - timedelta(days=1))
    print(f"  run {yesterday.pk}: {yesterday.status}, {yesterday.papers_found} papers")
    expected, excluded = seed_subscribers(args.subscribers, prefix="scrape-reader")
    print(f"{len(expected)} subscribers due a digest today, {len(excluded)} unsubscribed or paused")

    checks = {"yesterday's scrape was good": yesterday.status == ScrapeRun.Status.OK and yesterday.papers_found == len(ITEMS)}
    print("\nToday: the source misbehaves")
    for name, reply in bad_replies(good):
        papers_before = paper_snapshot()
        source.route(PATH, reply)
        step = time.monotonic()
        run = scrape_now()
        seconds = time.monotonic() - step
        report = dispatch_now(ignore_hour=True)
        checks.update(check_bad_step(name, run, sink, papers_before, report, seconds))

    print("\nThen a good page")
    papers_before = paper_snapshot()
    source.route(PATH, Reply.html(good))
    run = scrape_now()
    print(f"  run {run.pk}: {run.status}, {run.papers_found} papers")
    sent = drive_digests(args.time_limit, redispatch_every=5)
    sink.wait_for_total(len(expected) + 4, timeout=30)
    with sink.lock:
        per_recipient = {a: n for a, n in sink.per_recipient.items() if a != ADMIN}
    missing = expected - set(per_recipient)
    wrong = set(per_recipient) - expected
    duplicates = duplicates_of(per_recipient)
    sent_count = Delivery.objects.filter(status=Delivery.Status.SENT).count()
    print(f"  digests: {len(per_recipient)} recipients, missing {len(missing)}, duplicates {duplicates}, "
          f"to someone not due {len(wrong)}; deliveries sent {sent_count}; {sent['seconds']:.1f} s")
    failed_runs = ScrapeRun.objects.filter(status=ScrapeRun.Status.FAILED)
    print(f"  scrape runs: {ScrapeRun.objects.count()} ({failed_runs.count()} failed, "
          f"{failed_runs.exclude(alerted_at=None).count()} of them alerted); admin mails: {sink.per_recipient[ADMIN]}")
    print(f"script total: {time.monotonic() - started:.0f} s")
    checks.update({
        "the good scrape succeeded with every paper": run.status == ScrapeRun.Status.OK and run.papers_found == len(ITEMS),
        "no stored paper lost": set(papers_before) <= set(paper_snapshot()),
        f"after the good scrape: missing 0 ({len(missing)})": not missing,
        f"after the good scrape: no duplicates ({duplicates})": duplicates == 0,
        "after the good scrape: nobody unsubscribed or paused got a digest": not wrong,
        "every delivery recorded as sent": sent_count == len(expected) == Delivery.objects.count(),
        "four failed runs, all alerted, four admin mails": failed_runs.count() == 4
        and failed_runs.filter(alerted_at=None).count() == 0 and sink.per_recipient[ADMIN] == 4,
    })
    return verdict(checks)


if __name__ == "__main__":
    sys.exit(main())
