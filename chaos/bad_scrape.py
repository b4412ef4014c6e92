"""A scrape that goes wrong on the day: no digest from bad data, nothing lost, admins told.

The source is a local HTTP server standing in for huggingface.co (tests/hf_server.py). After
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
import html
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chaos.support import (  # noqa: E402
    SAMPLE_PAGE, CountingSmtpSink, Worker, base_env, drive_digests, duplicates_of, fresh_database, seed_subscribers,
    setup_django, verdict,
)
from tests.hf_server import FIXTURES, HFServer, Reply  # noqa: E402

DB_NAME = "nl_chaos_scrape"
REDIS_DB = 7
ADMIN = "ops@example.org"
PATH = "/papers/trending"
ITEMS = json.loads((FIXTURES / "api_daily_papers_2026-08-21.json").read_bytes())
MEGABYTES_1_5 = 1536 * 1024


def page_with(items) -> bytes:
    """A trending page in the current markup holding `items`."""
    props = {"canSubmit": False, "dailyPapers": items, "publisher": None, "query": {}, "isTrending": True}
    return (
        '<!doctype html><html><body class="DailyPapersPage"><main class="flex flex-1 flex-col">'
        f'<div class="SVELTE_HYDRATER contents" data-target="DailyPapers" data-props="{html.escape(json.dumps(props))}">'
        "<h1>Trending Papers</h1></div></main></body></html>"
    ).encode()


def changed_layout(page: bytes) -> bytes:
    """The same papers in markup the parser does not know: props renamed, cards reshaped."""
    for old, new in ((b'data-target="DailyPapers"', b'data-target="PaperFeed"'), (b"data-props=", b"data-state="),
                     (b"<article", b"<li"), (b"</article>", b"</li>"), (b"<h3", b"<h2"), (b"</h3>", b"</h2>")):
        page = page.replace(old, new)
    return page


def bad_replies(good: bytes, trickle=(16 * 1024, 0.1)) -> list[tuple[str, Reply]]:
    padding = MEGABYTES_1_5 - len(good) - len(b"<!--  -->")
    slow = good + b"<!-- " + b"x" * padding + b" -->"
    return [
        ("an empty page", Reply.html(b"")),
        ("a changed layout", Reply.html(changed_layout(good))),
        ("a partial list (3 of 17 papers)", Reply.html(page_with(ITEMS[:3]))),
        (f"a {len(slow) / 2**20:.1f} MB slow response", Reply.html(slow, trickle=trickle)),
    ]


def scrape_env(source: HFServer, sink: CountingSmtpSink, total_timeout: float) -> dict:
    return {
        "EMAIL_PROVIDER": "smtp", "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": sink.port, "ADMINS": ADMIN,
        "SCRAPE_SOURCE_URL": source.url(PATH), "SCRAPE_RETRIES": 1, "SCRAPE_BACKOFF_FACTOR": 0.1,
        "SCRAPE_BACKOFF_JITTER": 0.1, "SCRAPE_CONNECT_TIMEOUT": 2, "SCRAPE_READ_TIMEOUT": 3,
        "SCRAPE_TOTAL_TIMEOUT": total_timeout,
    }


def paper_snapshot() -> dict:
    """Every stored paper with what a digest shows of it."""
    from newsletter.models import Paper

    return {row[0]: row[1:] for row in Paper.objects.values_list(
        "arxiv_id", "title", "abstract", "ai_summary", "authors", "upvotes", "github_repo", "organization")}


def scrape_now(timeout: float = 90):
    """Queue the scrape task for the worker and wait for its finished run."""
    from newsletter.models import ScrapeRun
    from newsletter.tasks.scrape import scrape_papers

    finished = ScrapeRun.objects.exclude(status=ScrapeRun.Status.RUNNING)
    before = set(finished.values_list("pk", flat=True))
    scrape_papers.delay()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = finished.exclude(pk__in=before).first()
        if new is not None:
            return new
        time.sleep(0.2)
    raise RuntimeError("the scrape task did not finish in time")


def admin_alerts(sink: CountingSmtpSink, run) -> list:
    with sink.lock:
        return [m for m in sink.messages if ADMIN in str(m["To"]) and f"run {run.pk})" in str(m["Subject"])]


def digests_received(sink: CountingSmtpSink) -> int:
    with sink.lock:
        return sum(n for address, n in sink.per_recipient.items() if address != ADMIN)


def check_bad_step(name: str, run, sink, papers_before: dict, report, seconds: float, wait: float = 2.0) -> dict[str, bool]:
    """After a bad scrape and a dispatcher run: what must hold."""
    from newsletter.models import Delivery

    time.sleep(wait)  # room for a wrongly queued chunk to reach the sink
    run.refresh_from_db()
    alerts = admin_alerts(sink, run)
    print(f"  {name}: run {run.pk} {run.status} after {seconds:.1f} s, error: {run.error[:110]!r}")
    print(f"    admin mails about it: {len(alerts)}; papers stored: {len(paper_snapshot())}; "
          f"dispatcher: {report.waiting or 'sent!'}; deliveries: {Delivery.objects.count()}; digests received: {digests_received(sink)}")
    return {
        f"{name}: the run failed with its reason": run.status == run.Status.FAILED and bool(run.error),
        f"{name}: the admins got one mail and the run is marked alerted": len(alerts) == 1 and run.alerted_at is not None,
        f"{name}: no stored paper lost or changed": paper_snapshot() == papers_before,
        f"{name}: the dispatcher sent nothing": bool(report.waiting) and not Delivery.objects.exists() and digests_received(sink) == 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=300)
    parser.add_argument("--time-limit", type=float, default=300)
    args = parser.parse_args()
    started = time.monotonic()

    sink = CountingSmtpSink(keep_messages=True)
    source = HFServer().start()
    good = SAMPLE_PAGE.read_bytes()
    env = base_env(DB_NAME, REDIS_DB, **scrape_env(source, sink, total_timeout=4))
    fresh_database(env)
    setup_django(env)
    from datetime import timedelta

    from newsletter.digests import dispatch
    from newsletter.models import Delivery, ScrapeRun

    Worker(env, "scrape", concurrency=2).start()

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
        report = dispatch.dispatch(ignore_hour=True)
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
