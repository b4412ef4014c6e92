"""The bad-scrape scenario (chaos/bad_scrape.py, and its short version in
tests/test_chaos_short.py): after a good scrape, the fake huggingface.co serves an empty page,
a changed layout, a partial list and a slow oversize page; what the scraper and the
dispatcher must do about each. (Django must be set up for the functions that read the store.)"""

import html
import json
import time

from .hf_server import FIXTURES, HFServer, Reply
from .smtp_sink import SmtpSink

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


def scrape_env(source: HFServer, sink: SmtpSink, total_timeout: float) -> dict:
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


def admin_alerts(sink: SmtpSink, run) -> list:
    with sink.lock:
        return [m for m in sink.messages if ADMIN in m["envelope_to"] and f"run {run.pk})" in str(m["message"]["Subject"])]


def digests_received(sink: SmtpSink) -> int:
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
