"""Digest throughput, end to end, on this machine: shared digests, digests that differ for every
reader, and SMTP against the bare limit of the path.

    .venv/bin/python bench/digest_throughput.py [--subscribers 20000] [--workers 2 --concurrency 2] [--runs 2]

Uses its own database (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/nl_bench,
created and migrated here, its digest data replaced on every run) and Redis database
(REDIS_URL, default redis://127.0.0.1:6379/12, flushed). It stores 60 real papers from the
shipped fixtures (scored into topics by the real scorer) and N subscribers on 1 to 4 of the 18
topics (popular ones more often), then measures, each run `--runs` times (the lower counts):

Two real Celery workers do the sending, each with Celery's default concurrency (as many pool
processes as CPUs): while one process waits on the provider or PostgreSQL another computes.

1. Shared digests, the batch provider path: nobody has told the service anything, so readers
   with the same topics and papers per email share a digest (today's order). The dispatcher (in
   this process) queues every subscriber's digest; real Celery workers choose, render and send
   them through Anymail's Mailgun backend to the fake Mailgun (tests/support/fake_providers.py,
   strict checks, messages counted not kept). Digests per second from the dispatcher's start
   to the last recorded send; provider calls; peak RSS of every process; SQL queries per
   1,000 subscribers (workers and dispatcher, counted by a connection wrapper).
2. Unique digests, the same path: every reader has voted on 4 to 10 papers and has a trained
   model, so the real personal ranking (newsletter.personal.ranking.PersonalRanking) gives
   each their own order and notes. If it does not make at least 75% of a sample's digests
   different, tests/support/rankings.PerReaderOrder (a per-reader hash order) stands in;
   the output says which ranked.
3. SMTP, unique digests: the same pipeline with EMAIL_PROVIDER=smtp into Postfix's smtp-sink
   on loopback, against a bare smtplib loop sending as many pre-built messages (real digests
   of this run, built by the real path in this process) over one connection into the same sink;
   and `manage.py send_digests --all` alone in one process of its own (its rate and peak RSS).
4. A one-message-at-a-time baseline on a sample: per subscriber, query, render the digest
   with Django templates (and css-inline), send it alone through the Mailgun backend.

Prints every figure, the ratios and the targets. Other processes share the CPU: the load
average at the start and end of each run is printed with the results.
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
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.dashboard_data import POPULARITY  # noqa: E402
from tests.support.databases import create_database, load_average  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.processes import PYTHON, CeleryWorker, cpu_seconds, peak_rss_mb  # noqa: E402

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
PERSONAL_RANKING = "newsletter.personal.ranking.PersonalRanking"
HASH_RANKING = "tests.support.rankings.PerReaderOrder"
SMTP_SINK = "/usr/sbin/smtp-sink"


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


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def database_cpu() -> dict[int, float]:
    """CPU seconds used so far by each PostgreSQL backend serving this database."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return {pid: cpu_seconds(pid) for (pid,) in cursor.fetchall()}


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
            k = rnd.choices([1, 2, 3, 4], [35, 33, 22, 10])[0]  # 1 to 4 of the topics
            chosen = set()
            while len(chosen) < k:
                chosen.add(rnd.choices(ranked, weights)[0])
            rows.extend(through(subscriber_id=subscriber.pk, topic_id=t) for t in chosen)
        through.objects.bulk_create(rows)
    analyze()
    return len(topics)


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


def make_digests_unique(rnd: random.Random, sample: int = 2000) -> tuple[str, dict]:
    """Votes and a trained model for every reader; returns the ranking that makes their
    digests different (the personal one, if it does for 90% of a sample) and what was seen."""
    from django.conf import settings
    from django.utils import timezone

    from newsletter.digests import selection
    from newsletter.models import Paper
    from newsletter.personal.profiles import retrain_stale
    from subscriptions.models import Subscriber
    from tests.support.rankings import distinct_digests, seed_votes

    ids = list(Subscriber.objects.order_by("pk").values_list("pk", flat=True))
    started = time.perf_counter()
    votes = seed_votes(ids, Paper.objects.values_list("pk", flat=True), rnd)
    seeded = time.perf_counter() - started
    started = time.perf_counter()
    trained = retrain_stale()
    training = time.perf_counter() - started
    topics = selection.topics_of(ids[:sample])
    readers = [selection.Reader(sid, kind, timezone.localdate(), topics.get(sid, ((), ()))[0], per_email)
               for sid, kind, per_email in Subscriber.objects.filter(pk__in=ids[:sample]).values_list("pk", "frequency", "papers_per_email")]
    pools, _ = selection.pools_for({r.kind for r in readers})
    found = {"votes": votes, "seconds_seeding": seeded, "seconds_training": training, "trained": trained.get("trained", 0),
             "with_signal": trained.get("with_signal", 0), "sample": len(readers)}
    settings.DIGEST_RANKING = PERSONAL_RANKING
    try:
        found["personal_distinct"] = distinct_digests(readers, pools)
    except Exception as exc:  # noqa: BLE001  (a ranking in the making: say so and go on)
        found["personal_error"] = f"{type(exc).__name__}: {exc}"
        found["personal_distinct"] = 0
    if found["personal_distinct"] >= 0.75 * len(readers):
        return PERSONAL_RANKING, found
    settings.DIGEST_RANKING = HASH_RANKING
    found["hash_distinct"] = distinct_digests(readers, pools)
    return HASH_RANKING, found


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
    load_start = load_average()
    cpu_start = {"workers": sum(w.cpu_seconds() for w in workers), "here": own_cpu()}
    try:
        dispatch_queries = {"n": 0}

        def count(execute, sql, params, many, context):
            dispatch_queries["n"] += 1
            return execute(sql, params, many, context)

        cpu_start["database"] = database_cpu()
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
            time.sleep(0.1)
        last = Delivery.objects.aggregate(last=Max("sent_at"))["last"]
        seconds = (last - started_wall).total_seconds()
        load_end = load_average()
        cpu = {"workers": sum(w.cpu_seconds() for w in workers) - cpu_start["workers"], "here": own_cpu() - cpu_start["here"]}
        database = database_cpu()
        cpu["database"] = sum(v - cpu_start["database"].get(pid, 0.0) for pid, v in database.items())
        counts = dict(Delivery.objects.values_list("status").annotate(n=Count("id")))
        contents = Delivery.objects.filter(status="sent").values("content_id").distinct().count()
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
        "rss": rss, "requeued": requeued, "contents": contents, "load": f"{load_start} -> {load_end}",
        "cpu_ms": {k: 1000 * v / max(sent, 1) for k, v in cpu.items()},
    }


def batch_runs(title: str, args, redis_client, ranking: str) -> list[dict]:
    """`args.runs` runs of the batch provider path, each against a fresh fake Mailgun."""
    from tests.support.fake_providers import FakeMailgun

    runs = []
    for n in range(args.runs):
        with FakeMailgun(keep_messages=False) as fake:
            env = {**fake.env(), "DIGEST_RANKING": ranking}
            run = pipeline_run(f"mg{n}", env, args, redis_client)
            run["calls"] = len(fake.calls)
            run["accepted"] = fake.accepted_count
            run["refused_calls"] = sum(1 for c in fake.calls if c.answer != 200)
        runs.append(run)
        print_run(f"{title}, run {n + 1}", run)
        print(f"  provider calls {run['calls']} ({run['accepted']} messages accepted, {run['refused_calls']} calls refused), "
              f"{run['accepted'] / max(run['calls'], 1):.1f} recipients per call; {run['contents']} different paper lists")
    return runs


def sample_messages(count: int) -> list[bytes]:
    """Up to `count` digests of this database exactly as the SMTP path serialises them: one
    chunk sent by the real path in this process to Django's in-memory backend (then forgotten)."""
    from django.conf import settings
    from django.core import mail

    from newsletter.digests import chunks, dispatch

    reset_deliveries()
    found = []
    dispatch.dispatch(ignore_hour=True, enqueue=found.extend)
    sample = random.Random(1).sample(found, min(count, len(found)))
    backend, settings.EMAIL_BACKEND = settings.EMAIL_BACKEND, "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    try:
        chunks.send_chunk(sample, claimer="bench-sample")
        messages = [m.message().as_bytes(linesep="\r\n") for m in mail.outbox]
    finally:
        settings.EMAIL_BACKEND = backend
        mail.outbox = []
    reset_deliveries()
    return messages


def bare_smtp_loop(port: int, messages: list[bytes], count: int) -> float:
    """`count` pre-built messages (`messages` in turn), one connection, one process: messages/s."""
    client = smtplib.SMTP("127.0.0.1", port)
    started = time.perf_counter()
    for n in range(count):
        client.sendmail("papers@example.org", [f"bare{n}@bench.example.org"], messages[n % len(messages)])
    seconds = time.perf_counter() - started
    client.quit()
    return count / seconds


def in_process(port: int, ranking: str) -> dict:
    """`manage.py send_digests --all` in one process of its own (dispatcher and sender in one,
    no Celery), into the sink: its own rate and peak RSS."""
    reset_deliveries()
    env = {**os.environ, "EMAIL_PROVIDER": "smtp", "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(port), "DIGEST_RANKING": ranking}
    load_start = load_average()
    command = subprocess.Popen([PYTHON, str(ROOT / "manage.py"), "send_digests", "--all"], env=env, cwd=ROOT,
                               stdout=subprocess.PIPE, text=True)
    # Its peak from /proc while it runs (VmHWM starts afresh at exec): wait4's ru_maxrss
    # would start from this bench process's size at the fork.
    peak = 0.0
    while command.poll() is None:
        peak = max(peak, peak_rss_mb(command.pid))
        time.sleep(0.05)
    out = command.stdout.read()
    if command.returncode:
        raise SystemExit(f"send_digests --all failed ({command.returncode}): {out}")
    summary = dict(item.split("=") for item in out.split() if "=" in item)
    sent, seconds = int(summary["sent"]), float(summary["seconds"])
    return {"sent": sent, "seconds": seconds, "rate": sent / seconds, "load": f"{load_start} -> {load_average()}",
            "rss": peak}


def smtp_runs(args, redis_client, ranking: str) -> dict:
    port = free_port()
    sink = subprocess.Popen([SMTP_SINK, "-u", "nobody", f"127.0.0.1:{port}", "1000"])
    results = {"workers": [], "bare": [], "here": []}
    try:
        time.sleep(0.5)
        messages = sample_messages(1000)
        size = sum(map(len, messages)) / len(messages)
        print(f"\nSMTP: {len(messages)} real digests of this run as the sink gets them, {size / 1000:.1f} kB on average")
        env = {"EMAIL_PROVIDER": "smtp", "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(port), "DIGEST_RANKING": ranking}
        for n in range(args.runs):
            run = pipeline_run(f"smtp{n}", env, args, redis_client)
            print_run(f"SMTP path, {args.workers} workers (Django SMTP backend -> Postfix smtp-sink), run {n + 1}", run)
            load_start = load_average()
            bare = bare_smtp_loop(port, messages, run["sent"])
            print(f"  bare smtplib loop, the same {run['sent']} messages pre-built, one connection: {bare:.0f} emails/s "
                  f"(load {load_start} -> {load_average()})")
            print(f"  SMTP path / bare loop: {run['rate'] / bare:.2f}")
            results["workers"].append(run)
            results["bare"].append(bare)
        for n in range(args.runs):
            here = in_process(port, ranking)
            print(f"  in one process (send_digests --all): {here['sent']} in {here['seconds']:.1f} s, {here['rate']:.0f} emails/s"
                  f" = {here['rate'] / min(results['bare']):.2f} of the bare loop, peak RSS {here['rss']:.0f} MB (load {here['load']})")
            results["here"].append(here)
    finally:
        sink.terminate()
        sink.wait()
    return results


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
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2, help="Celery workers (each with --concurrency pool processes)")
    parser.add_argument("--concurrency", type=int, default=os.cpu_count(),
                        help="pool processes per worker (default: Celery's, the number of CPUs)")
    parser.add_argument("--runs", type=int, default=2, help="runs of each measurement (the lower counts)")
    parser.add_argument("--baseline-sample", type=int, default=300)
    parser.add_argument("--timeout", type=float, default=900, help="per measured run")
    parser.add_argument("--ranking", choices=["auto", "personal", "hash"], default="auto",
                        help="what makes digests unique: the personal ranking with seeded votes, the per-reader hash, or "
                             "the first if it makes 75%% of digests different")
    parser.add_argument("--skip-smtp", action="store_true")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    print(f"load average {load_average()} at start (shared with other work)")
    print(f"workers: {args.workers} x concurrency {args.concurrency}; each figure measured {args.runs} times")

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
    rnd = random.Random(20261124)
    started = time.perf_counter()
    topics = seed(args.subscribers, rnd)
    print(f"seeded {args.subscribers} subscribers on 1 to 4 of {topics} topics and 60 papers in {time.perf_counter() - started:.1f} s")

    results = {}
    # Nobody has voted yet: the personal ranking orders as today, readers share digests.
    settings.DIGEST_RANKING = PERSONAL_RANKING
    results["shared"] = batch_runs("shared digests, batch provider path (Anymail Mailgun -> fake Mailgun)", args, redis_client,
                                   PERSONAL_RANKING)

    if args.ranking == "hash":
        ranking, seen = HASH_RANKING, {}
        settings.DIGEST_RANKING = HASH_RANKING
    else:
        ranking, seen = make_digests_unique(rnd)
        if args.ranking == "personal":
            ranking = settings.DIGEST_RANKING = PERSONAL_RANKING
    if seen:
        print(f"\nseeded {seen['votes']} votes ({seen['seconds_seeding']:.1f} s), trained {seen['trained']} readers' models "
              f"({seen['with_signal']} with weights) in {seen['seconds_training']:.1f} s")
        print(f"  on a sample of {seen['sample']} readers the personal ranking makes {seen['personal_distinct']} different digests"
              + (f" ({seen['personal_error']})" if "personal_error" in seen else "")
              + (f"; the per-reader hash order {seen['hash_distinct']}" if "hash_distinct" in seen else ""))
    print(f"unique digests ranked by {ranking}")
    results["unique"] = batch_runs(f"unique digests ({ranking.rsplit('.', 1)[-1]}), batch provider path", args, redis_client, ranking)

    if not args.skip_smtp:
        results["smtp"] = smtp_runs(args, redis_client, ranking)

    baseline = None
    if not args.skip_baseline:
        with FakeMailgun(keep_messages=False) as fake:
            settings.EMAIL_BACKEND = "anymail.backends.mailgun.EmailBackend"
            settings.ANYMAIL = {**settings.ANYMAIL, "MAILGUN_API_KEY": fake.api_key, "MAILGUN_SENDER_DOMAIN": fake.domain,
                                "MAILGUN_API_URL": fake.api_url}
            baseline = one_at_a_time(args.baseline_sample)
            if not fake.accepted_count:
                raise SystemExit("the baseline sent nothing")
        print(f"\none-at-a-time baseline (one process, {args.baseline_sample} subscribers): {baseline:.1f} emails/s")

    own_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    every_run = [*results["shared"], *results["unique"], *(results["smtp"]["workers"] if "smtp" in results else [])]
    # The service's processes: every worker's, and send_digests --all's. This one (the bench:
    # seeding, training every reader's model at once, sampling) is printed apart.
    peak = max([*[v for r in every_run for v in r["rss"].values()], *[r["rss"] for r in results.get("smtp", {}).get("here", [])]])
    shared = min(r["rate"] for r in results["shared"])
    unique = min(r["rate"] for r in results["unique"])
    print("\nsummary (the lower of the runs)")
    print(f"  unique digests {unique:.0f}/s through the batch provider path (target >= 1000): {'met' if unique >= 1000 else 'NOT met'}")
    print(f"  shared digests {shared:.0f}/s (target >= 2000): {'met' if shared >= 2000 else 'NOT met'}")
    if "smtp" in results:
        smtp = results["smtp"]
        ratios = [run["rate"] / bare for run, bare in zip(smtp["workers"], smtp["bare"])]
        here = min(r["rate"] for r in smtp["here"])
        print(f"  SMTP, {args.workers} workers: {min(r['rate'] for r in smtp['workers']):.0f}/s against a bare smtplib loop of "
              f"{min(smtp['bare']):.0f}-{max(smtp['bare']):.0f}/s: ratio {min(ratios):.2f} (target >= 0.5): "
              f"{'met' if min(ratios) >= 0.5 else 'NOT met'}; in one process {here:.0f}/s = {here / min(smtp['bare']):.2f}")
    if baseline:
        print(f"  shared / one-at-a-time baseline {shared / baseline:.0f}x, unique / baseline {unique / baseline:.0f}x")
    print(f"  peak RSS {peak:.0f} MB in one process of the service (workers, send_digests --all) (target <= 300): "
          f"{'met' if peak <= 300 else 'NOT met'}; this bench process {own_rss:.0f} MB")
    print("  SQL queries per 1000 subscribers: "
          + ", ".join(f"{name} {min(r['queries_per_1000'] for r in runs):.1f}" for name, runs in
                      [("shared", results["shared"]), ("unique", results["unique"])]
                      + ([("SMTP", results["smtp"]["workers"])] if "smtp" in results else []))
          + " (bounded per chunk)")
    print(f"  load average at the end {load_average()}")


def print_run(title: str, run: dict):
    print(f"\n{title}")
    print(f"  due {run['due']}, sent {run['sent']}, skipped {run['skipped']}, failed {run['failed']}, {run['chunks']} chunks")
    print(f"  {run['seconds']:.1f} s from dispatch to the last recorded send (dispatch itself {run['dispatch_seconds']:.1f} s): "
          f"{run['rate']:.0f} emails/s (load average {run['load']})")
    print(f"  SQL queries {run['queries']} = {run['queries_per_1000']:.1f} per 1000 subscribers")
    print("  CPU per digest: " + ", ".join(f"{name} {ms:.2f} ms" for name, ms in run["cpu_ms"].items())
          + f" = {sum(run['cpu_ms'].values()):.2f} ms (this process: the dispatcher, and the fake provider in batch runs)")
    if run["requeued"]:
        print(f"  (disturbed: {run['requeued']} deliveries had to be queued again, e.g. after a Redis restart)")
    print("  peak RSS MB: " + ", ".join(f"{name} {mb:.0f}" for name, mb in run["rss"].items()))


if __name__ == "__main__":
    main()
