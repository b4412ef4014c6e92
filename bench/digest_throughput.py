"""Digest throughput, end to end, on this machine.

    .venv/bin/python bench/digest_throughput.py [--subscribers 100000] [--workers 1 --concurrency 2]

Uses its own database (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/nl_bench,
created and migrated here, its digest data replaced on every run) and Redis database
(REDIS_URL, default redis://127.0.0.1:6379/12, flushed). It stores 60 real papers from the
shipped fixtures (scored into topics by the real scorer) and N subscribers with realistic topic
choices, then measures:

1. The batch provider path: the dispatcher (in this process) queues every subscriber's
   digest; real Celery workers choose, render and send them through Anymail's Mailgun backend
   to the fake Mailgun (tests/support/fake_providers.py, strict checks, messages counted not kept).
   Emails per second from the dispatcher's start to the last recorded send; peak RSS of every
   process; SQL queries per 1,000 subscribers (workers and dispatcher, counted by a
   connection wrapper).
2. The SMTP path: the same pipeline with EMAIL_PROVIDER=smtp into Postfix's smtp-sink on
   loopback, against a bare smtplib loop sending pre-built messages of the same size over one
   connection into the same sink (the limit of the path).
3. A one-message-at-a-time baseline on a sample: per subscriber, query, render the digest
   with Django templates (and css-inline), send it alone through the Mailgun backend.

Prints every figure, the ratios and the targets. Other processes share the CPU: the load
average at the start is printed with the results.
"""

import argparse
import datetime
import json
import os
import random
import resource
import secrets
import smtplib
import subprocess
import sys
import time
import zoneinfo
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.dashboard_data import POPULARITY  # noqa: E402
from tests.support.databases import create_database  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.processes import PYTHON, CeleryWorker  # noqa: E402

BENCH_ENV = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/nl_bench",
    "REDIS_URL": "redis://127.0.0.1:6379/12",
    "DJANGO_SETTINGS_MODULE": "tests.support.tuned_settings",  # production, DIGEST_REQUEUE_AFTER below
    "SITE_URL": "https://papers.example.org",
    "ALLOWED_HOSTS": "papers.example.org",
    "DEBUG": "0",
    "LOG_LEVEL": "WARNING",
    "CONN_MAX_AGE": "600",
    # Stands in for beat: while a run is followed, the dispatcher runs every 30 s and re-queues
    # pending rows queued over 5 minutes ago (a queue lost with a Redis restart, for example).
    "DIGEST_REQUEUE_AFTER": "300",
}
for _name, _value in BENCH_ENV.items():
    os.environ.setdefault(_name, _value)
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(48))
QUERY_COUNTER = "bench:digest:queries"


# --- the worker process (this file runs itself as `_worker`) ---------------------------------


def run_worker(argv):
    """A Celery worker that counts its SQL queries into Redis after every task."""
    import django

    django.setup()
    import redis
    from celery.signals import task_postrun, worker_ready
    from django.conf import settings
    from django.db.backends.signals import connection_created

    counted = {"n": 0}

    def count(execute, sql, params, many, context):
        counted["n"] += 1
        return execute(sql, params, many, context)

    def wrap(sender, connection, **kwargs):
        # Celery closes the connection after every task; the wrapper list stays with it.
        if count not in connection.execute_wrappers:
            connection.execute_wrappers.append(count)

    connection_created.connect(wrap, weak=False)
    client = redis.Redis.from_url(settings.REDIS_URL)

    def flush(**kwargs):
        client.incrby(QUERY_COUNTER, counted["n"])
        counted["n"] = 0

    task_postrun.connect(flush, weak=False)
    # Celery logs its "ready." at INFO only; CeleryWorker waits for it at any log level.
    worker_ready.connect(lambda **kwargs: print("ready.", flush=True), weak=False)
    from newsletter.celery import app

    app.worker_main(["worker", *argv])


# --- helpers ------------------------------------------------------------------------------


def start_workers(label: str, count: int, concurrency: int, env: dict) -> list[CeleryWorker]:
    """Workers running this file's `_worker` (Celery counting its SQL queries)."""
    return [
        CeleryWorker({**os.environ, **env}, f"{label}{n}", concurrency, loglevel="WARNING", command=[PYTHON, __file__, "_worker"],
                     extra_args=("--prefetch-multiplier=1",)).start()
        for n in range(count)
    ]


# --- data ---------------------------------------------------------------------------------


def seed(count: int, rnd: random.Random):
    from django.db import connection
    from django.utils import timezone

    from newsletter import topic_assignment
    from newsletter.models import Paper, PaperRank, ScrapeRun
    from subscriptions.models import Subscriber, Topic, new_link_secret

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE newsletter_delivery, newsletter_digestitem, newsletter_digestcontent, subscriptions_consentevent,"
            " subscriptions_subscriber_topics, subscriptions_subscriber, newsletter_paperrank, newsletter_papertopicscore,"
            " newsletter_paper, newsletter_scraperun CASCADE"
        )
    items = [i for p in sorted((ROOT / "tests/fixtures/hf").glob("api_daily_papers_20*.json")) for i in json.loads(p.read_text())]
    items = items[-60:]
    papers = []
    for n, item in enumerate(items):
        paper = item["paper"]
        papers.append(Paper(
            arxiv_id=f"2701.{n:05d}", title=paper.get("title") or item.get("title", ""), abstract=paper.get("summary", ""),
            ai_summary=paper.get("ai_summary", ""), ai_keywords=paper.get("ai_keywords", []),
            authors=[a.get("name", "") for a in paper.get("authors", [])], upvotes=paper.get("upvotes", 0),
            github_repo=paper.get("githubRepo") or "", github_stars=paper.get("githubStars"),
        ))
    Paper.objects.bulk_create(papers)
    papers = list(Paper.objects.all())
    run = ScrapeRun.objects.create(source="bench", status="ok", finished_at=timezone.now(), papers_found=len(papers))
    PaperRank.objects.bulk_create(PaperRank(run=run, paper=p, rank=n, upvotes=p.upvotes) for n, p in enumerate(papers, 1))
    topic_assignment.assign_topics(papers)

    topics = dict(Topic.objects.values_list("slug", "pk"))
    popular = [slug for slug, _ in POPULARITY]
    ranked = [topics[slug] for slug in popular if slug in topics] + [pk for slug, pk in topics.items() if slug not in popular]
    weights = [1 / (n + 1) ** 0.9 for n in range(len(ranked))]  # Zipf-like popularity
    zones = ["UTC", "Europe/London", "Europe/Berlin", "America/New_York", "America/Los_Angeles", "Asia/Kolkata",
             "Asia/Shanghai", "Asia/Tokyo", "Australia/Sydney", "America/Sao_Paulo"]
    today = timezone.now()
    through = Subscriber.topics.through
    for start in range(0, count, 10_000):  # in slices, to keep this process small
        subscribers = []
        for n in range(start, min(count, start + 10_000)):
            zone = rnd.choice(zones)
            subscribers.append(Subscriber(
                email=f"reader{n}@bench.example.org", status="active", timezone=zone,
                frequency="weekly" if rnd.random() < 0.12 else "daily",
                weekday=today.astimezone(zoneinfo.ZoneInfo(zone)).weekday(),
                send_hour=rnd.choice([6, 7, 7, 7, 8, 9, 12, 18]), papers_per_email=rnd.choices([5, 10, 20], [10, 80, 10])[0],
                secret=new_link_secret(),
            ))
        created = Subscriber.objects.bulk_create(subscribers)
        rows = []
        for subscriber in created:
            k = rnd.choices([1, 2, 3, 4, 5], [35, 33, 20, 8, 4])[0]
            chosen = set()
            while len(chosen) < k:
                chosen.add(rnd.choices(ranked, weights)[0])
            rows.extend(through(subscriber_id=subscriber.pk, topic_id=t) for t in chosen)
        through.objects.bulk_create(rows)
    analyze()


def analyze():
    """Fresh planner statistics, as autovacuum keeps them on a live database."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def reset_deliveries():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE newsletter_delivery, newsletter_digestitem, newsletter_digestcontent CASCADE")
    analyze()


# --- the measured runs --------------------------------------------------------------------


def pipeline_run(label: str, worker_env: dict, args, redis_client) -> dict:
    """Dispatch here, send with real workers; returns the figures."""
    from django.db import connection
    from django.db.models import Count, Max
    from django.utils import timezone

    from newsletter.models import Delivery
    from newsletter.tasks.digests import dispatch_now

    reset_deliveries()
    redis_client.delete(QUERY_COUNTER)
    workers = start_workers(label, args.workers, args.concurrency, worker_env)
    try:
        dispatch_queries = {"n": 0}

        def count(execute, sql, params, many, context):
            dispatch_queries["n"] += 1
            return execute(sql, params, many, context)

        started_wall = timezone.now()
        started = time.perf_counter()
        with connection.execute_wrapper(count):
            report = dispatch_now(ignore_hour=True)
        dispatched = time.perf_counter() - started
        deadline = time.monotonic() + args.timeout
        open_statuses = [Delivery.Status.PENDING, Delivery.Status.SENDING]
        requeued, next_dispatch = 0, time.monotonic() + 30
        while Delivery.objects.filter(status__in=open_statuses).exists():
            if time.monotonic() > deadline:
                raise SystemExit(f"{label}: not finished after {args.timeout} s")
            if time.monotonic() > next_dispatch:
                requeued += dispatch_now(ignore_hour=True).queued
                next_dispatch = time.monotonic() + 30
            time.sleep(0.25)
        last = Delivery.objects.aggregate(last=Max("sent_at"))["last"]
        seconds = (last - started_wall).total_seconds()
        counts = dict(Delivery.objects.values_list("status").annotate(n=Count("id")))
        time.sleep(0.5)  # the last task's query count reaches Redis after it returns
        worker_queries = int(redis_client.get(QUERY_COUNTER) or 0)
        rss = {f"{w.name}.{k}": v for w in workers for k, v in w.peak_rss().items()}
    finally:
        for worker in workers:
            worker.stop()
    sent = counts.get("sent", 0)
    return {
        "due": report.queued, "sent": sent, "skipped": counts.get("skipped", 0), "failed": counts.get("failed", 0),
        "chunks": report.chunks, "dispatch_seconds": dispatched, "seconds": seconds, "rate": sent / seconds,
        "queries": worker_queries + dispatch_queries["n"], "queries_per_1000": 1000 * (worker_queries + dispatch_queries["n"]) / report.queued,
        "rss": rss, "requeued": requeued,
    }


def sample_message_bytes() -> bytes:
    """A typical digest exactly as the SMTP path serialises it (10 papers, real links)."""
    from django.conf import settings

    from newsletter.digests import selection
    from newsletter.digests.links import LinkMaker, Recipient
    from newsletter.digests.outbox import PrebuiltMime
    from newsletter.digests.rendering import renderer
    from newsletter.models import Delivery
    from subscriptions.models import Subscriber

    pool = selection.paper_pool(Delivery.Kind.DAILY)
    subscriber = Subscriber.objects.order_by("pk").first()
    topic_ids = sorted(subscriber.topics.values_list("pk", flat=True))
    reader = selection.Reader(subscriber.pk, Delivery.Kind.DAILY, datetime.date.today(), tuple(topic_ids), 10)
    papers = selection.choose([reader], {reader.kind: pool}, history=False)[0] or list(pool.upvotes)[:10]
    digest = renderer.render(papers, pool, "daily", topic_ids)
    recipient = Recipient(1, subscriber.pk, subscriber.email, subscriber.secret, ("Agents and tool use",), datetime.date.today())
    values = LinkMaker().merge_values(recipient)
    headers = LinkMaker.headers(values)
    prebuilt = PrebuiltMime.build(digest, settings.DEFAULT_FROM_EMAIL, {"List-Id": "x"})
    return prebuilt.splice({**values, "to_address": subscriber.email, "list_unsubscribe": headers["List-Unsubscribe"],
                            "message_id": "<bench@example.org>"})


def bare_smtp_loop(port: int, message: bytes, count: int) -> float:
    """Pre-built messages of the same size, one connection, one process: messages/s."""
    variants = [message.replace(b"reader", f"rcpt{n % 10}".encode(), 1) for n in range(10)]
    client = smtplib.SMTP("127.0.0.1", port)
    started = time.perf_counter()
    for n in range(count):
        client.sendmail("papers@example.org", [f"bare{n}@bench.example.org"], variants[n % 10])
    seconds = time.perf_counter() - started
    client.quit()
    return count / seconds


def one_at_a_time(sample: int) -> float:
    """The common loop: per subscriber, query, render with Django templates, send alone."""
    import css_inline
    from django.conf import settings
    from django.core.mail import EmailMultiAlternatives, get_connection
    from django.template.loader import render_to_string
    from django.utils.safestring import mark_safe

    from newsletter.digests.links import LinkMaker, Recipient, static_headers
    from newsletter.digests.rendering import paper_context
    from newsletter.models import DigestItem, Paper, PaperTopicScore, ScrapeRun
    from subscriptions.models import Subscriber

    run = ScrapeRun.objects.filter(status="ok").latest("started_at")
    css = render_to_string("emails/_digest.css")
    links = LinkMaker()
    subscribers = list(Subscriber.objects.order_by("?")[:sample])
    started = time.perf_counter()
    for subscriber in subscribers:
        topics = list(subscriber.topics.all())
        sent = set(DigestItem.objects.filter(content__deliveries__subscriber=subscriber,
                                             content__deliveries__status="sent").values_list("paper_id", flat=True))
        best = {}
        for score in PaperTopicScore.objects.filter(topic__in=topics, paper__ranks__run=run).select_related("paper", "topic"):
            if score.paper_id not in sent and score.score > best.get(score.paper_id, (0, None))[0]:
                best[score.paper_id] = (score.score, score.paper)
        chosen = sorted(best.values(), key=lambda s: -s[0] * (2 + s[1].upvotes).bit_length())[: subscriber.papers_per_email]
        if not chosen:
            continue
        blocks_html, blocks_text = [], []
        for _, paper in chosen:
            names = list(Paper.objects.get(pk=paper.pk).topics.values_list("name", flat=True))
            context = paper_context(paper, names)
            blocks_html.append(render_to_string("emails/_digest_paper.html", context))
            blocks_text.append(render_to_string("emails/_digest_paper.txt", context))
        values = links.merge_values(Recipient(0, subscriber.pk, subscriber.email, subscriber.secret,
                                              tuple(t.name for t in topics), datetime.date.today()))
        context = {"css": css, "merge": values, "papers_slot": mark_safe("".join(blocks_html)), "preheader": "", "heading": "Your daily trending papers",
                   "kind_label": "daily", "site_name": settings.SITE_NAME, "postal_address": settings.SENDER_POSTAL_ADDRESS,
                   "paper_count_label": f"{len(chosen)} papers"}
        html = css_inline.inline(render_to_string("emails/digest.html", context))
        text = render_to_string("emails/digest.txt", {**context, "papers_slot": "\n".join(blocks_text)})
        message = EmailMultiAlternatives(f"Trending papers: {chosen[0][1].title}", text, settings.DEFAULT_FROM_EMAIL, [subscriber.email],
                                         headers={**static_headers(), **LinkMaker.headers(values)},
                                         connection=get_connection())
        message.attach_alternative(html, "text/html")
        message.send()
    return len(subscribers) / (time.perf_counter() - started)


# --- main ---------------------------------------------------------------------------------


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        run_worker(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=1, help="worker processes (each with --concurrency children)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--baseline-sample", type=int, default=500)
    parser.add_argument("--bare-messages", type=int, default=5000)
    parser.add_argument("--smtp-subscribers", type=int, default=0, help="only the first N subscribers in the SMTP run (default: all)")
    parser.add_argument("--timeout", type=float, default=900, help="per measured run")
    parser.add_argument("--skip-smtp", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start (shared with other work)")

    create_database(os.environ["DATABASE_URL"], drop_first=False)
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.core.management import call_command

    from tests.support.fake_providers import FakeMailgun

    call_command("migrate", verbosity=0)
    redis_client = redis.Redis.from_url(settings.REDIS_URL)
    redis_client.flushdb()
    started = time.perf_counter()
    seed(args.subscribers, random.Random(20261124))
    print(f"seeded {args.subscribers} subscribers and 60 papers in {time.perf_counter() - started:.1f} s")

    results = {}
    with FakeMailgun(keep_messages=False) as fake:
        env = {"EMAIL_PROVIDER": "mailgun", **fake.env()}
        results["batch"] = batch = pipeline_run("mg", env, args, redis_client)
        calls = len(fake.calls)
        accepted = fake.accepted_count
        refused = sum(1 for c in fake.calls if c.answer != 200)
    print_run("batch provider path (Anymail Mailgun -> fake Mailgun)", batch)
    print(f"  provider calls {calls} ({accepted} messages accepted, {refused} calls refused), "
          f"{accepted / max(calls, 1):.1f} recipients per call")

    if not args.skip_smtp:
        port = free_port()
        sink = subprocess.Popen(["/usr/sbin/smtp-sink", "-u", "nobody", f"127.0.0.1:{port}", "1000"])
        try:
            time.sleep(0.5)
            if args.smtp_subscribers:
                from subscriptions.models import Subscriber

                keep = Subscriber.objects.order_by("pk").values_list("pk", flat=True)[args.smtp_subscribers : args.smtp_subscribers + 1]
                if keep:
                    Subscriber.objects.filter(pk__gte=keep[0]).update(paused=True)
            env = {"EMAIL_PROVIDER": "smtp", "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(port)}
            results["smtp"] = smtp = pipeline_run("smtp", env, args, redis_client)
            message = sample_message_bytes()
            bare = bare_smtp_loop(port, message, args.bare_messages)
        finally:
            sink.terminate()
            sink.wait()
        print_run("SMTP path (Django SMTP backend -> Postfix smtp-sink)", smtp)
        print(f"  bare smtplib loop, pre-built {len(message)}-byte messages, one connection: {bare:.0f} emails/s")
        print(f"  SMTP path / bare loop: {smtp['rate'] / bare:.2f}")

    with FakeMailgun(keep_messages=False) as fake:
        settings.EMAIL_BACKEND = "anymail.backends.mailgun.EmailBackend"
        settings.ANYMAIL = {**settings.ANYMAIL, "MAILGUN_API_KEY": fake.api_key, "MAILGUN_SENDER_DOMAIN": fake.domain,
                            "MAILGUN_API_URL": fake.api_url}
        baseline = one_at_a_time(args.baseline_sample)
        if not fake.accepted_count:
            raise SystemExit("the baseline sent nothing")
    print(f"one-at-a-time baseline (one process, {args.baseline_sample} subscribers): {baseline:.1f} emails/s")

    own_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak = max([own_rss, *[v for r in results.values() for v in r["rss"].values()]])
    print("\nsummary")
    print(f"  batch path {batch['rate']:.0f} emails/s (target >= 2000): {'met' if batch['rate'] >= 2000 else 'NOT met'}")
    print(f"  batch / baseline {batch['rate'] / baseline:.1f}x (target >= 20x): {'met' if batch['rate'] >= 20 * baseline else 'NOT met'}")
    if "smtp" in results:
        ratio = results["smtp"]["rate"] / bare
        print(f"  SMTP path / bare loop {ratio:.2f} (target >= 0.5): {'met' if ratio >= 0.5 else 'NOT met'}")
    print(f"  peak RSS {peak:.0f} MB in one process, this one {own_rss:.0f} MB (target <= 300): {'met' if peak <= 300 else 'NOT met'}")
    print(f"  SQL queries per 1000 subscribers: batch {batch['queries_per_1000']:.1f}"
          + (f", SMTP {results['smtp']['queries_per_1000']:.1f}" if "smtp" in results else "") + " (bounded per chunk)")
    load = os.getloadavg()
    print(f"  load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def print_run(title: str, run: dict):
    print(f"\n{title}")
    print(f"  due {run['due']}, sent {run['sent']}, skipped {run['skipped']}, failed {run['failed']}, {run['chunks']} chunks")
    print(f"  {run['seconds']:.1f} s from dispatch to the last recorded send (dispatch itself {run['dispatch_seconds']:.1f} s): "
          f"{run['rate']:.0f} emails/s")
    print(f"  SQL queries {run['queries']} = {run['queries_per_1000']:.1f} per 1000 subscribers")
    if run["requeued"]:
        print(f"  (disturbed: {run['requeued']} deliveries had to be queued again, e.g. after a Redis restart)")
    print("  peak RSS MB: " + ", ".join(f"{name} {mb:.0f}" for name, mb in run["rss"].items()))


if __name__ == "__main__":
    main()
