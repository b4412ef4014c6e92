"""How fast the public archive's pages and feeds answer with 10,000 stored papers.

    .venv/bin/python bench/archive_bench.py [--papers 10000] [--per-day 50] [--loads 200] [--reseed]

Uses its own database (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/nl_archive_bench:
created, migrated and seeded on the first run or with --reseed, kept otherwise) and Redis
database (REDIS_URL, default redis://127.0.0.1:6379/12, flushed). The seed: one good scrape a
day listing --per-day papers (two fifths of them new that day, the rest still trending from
the days before) until --papers papers are stored, with the real fixtures' titles, summaries
and authors, each paper in one to three topics; a failed scrape every tenth day.

Then, through Django's test client, each page --loads times cold (the page cache emptied
before every load: the whole page is rendered) and --loads times warm (from the cache), and
prints p50/p95/p99 in ms, the median CPU time of this process per load (what a load costs
with a core to itself), the SQL queries of a load and the page size. Target: p99 under 100 ms
for the archive and topic pages (the feeds and the sign-up page are shown for comparison).
Other processes share the CPU: the load average is printed before and after.
"""

import argparse
import json
import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.databases import database_name, default_services, load_average, open_bench_database  # noqa: E402

default_services("nl_archive_bench", redis_db=12)
TARGET_MS = 100
FIXTURES = ROOT / "tests" / "fixtures" / "hf"


def sample_items() -> list[dict]:
    return [item for path in sorted(FIXTURES.glob("api_daily_papers_20*.json")) for item in json.loads(path.read_text())]


def seed(papers: int, per_day: int) -> None:
    """Scrape runs, papers, ranks and topic rows as the scraper stores them, in bulk."""
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from newsletter.models import Paper, PaperRank, PaperTopicScore, ScrapeRun
    from subscriptions.models import Topic

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    rng = random.Random(12)
    items = sample_items()
    topic_ids = list(Topic.objects.filter(active=True).values_list("pk", flat=True))
    new_per_day = max(1, per_day * 2 // 5)
    days = -(-papers // new_per_day)
    first_day = timezone.now().replace(hour=5, minute=0, second=0, microsecond=0) - timedelta(days=days)
    listed: list[int] = []  # paper ids, oldest first
    made = 0
    for day in range(days):
        at = first_day + timedelta(days=day)
        if day % 10 == 9:
            ScrapeRun.objects.create(source="https://huggingface.co/papers/trending", kind="trending", status="failed",
                                     started_at=at - timedelta(hours=1), finished_at=at - timedelta(hours=1), error="bench")
        count = min(new_per_day, papers - made)
        fresh = []
        for n in range(made, made + count):
            item = items[n % len(items)]["paper"]
            fresh.append(Paper(
                arxiv_id=f"{2400 + n // 99999:04d}.{n % 99999 + 1:05d}", title=f"{item['title']} ({n})",
                abstract=item.get("summary", ""), ai_summary=item.get("ai_summary", ""),
                ai_keywords=item.get("ai_keywords", []), authors=item.get("authors", []),
                upvotes=rng.randint(0, 400), github_repo=f"https://github.com/bench/repo{n}" if n % 3 == 0 else "",
                github_stars=rng.randint(0, 5000) if n % 3 == 0 else None,
                project_page=f"https://bench.example.org/{n}" if n % 4 == 0 else "",
                organization="Bench Lab" if n % 2 else "", published_at=at - timedelta(days=2),
                first_seen_at=at, last_seen_at=at,
            ))
        made += count
        fresh = Paper.objects.bulk_create(fresh)
        PaperTopicScore.objects.bulk_create(
            PaperTopicScore(paper=p, topic_id=topic, score=rng.uniform(0.3, 1.0), primary=(i == 0), matched=["bench phrase"])
            for p in fresh for i, topic in enumerate(rng.sample(topic_ids, rng.randint(1, 3)))
        )
        listed.extend(p.pk for p in fresh)
        still_trending = listed[-(per_day * 3):-len(fresh)] if len(listed) > len(fresh) else []
        shown = [p.pk for p in fresh] + rng.sample(still_trending, min(per_day - len(fresh), len(still_trending)))
        run = ScrapeRun.objects.create(source="https://huggingface.co/papers/trending", kind="trending", status="ok",
                                       started_at=at, finished_at=at + timedelta(seconds=20), papers_found=len(shown), parser="props")
        PaperRank.objects.bulk_create(PaperRank(run=run, paper_id=pk, rank=rank, upvotes=rng.randint(0, 400))
                                      for rank, pk in enumerate(shown, start=1))
    seeded = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(f"seeded {made:,} papers over {days} days in {seeded:.1f} s (+ VACUUM ANALYZE {time.perf_counter() - started - seeded:.1f} s)")


def counts() -> dict:
    from newsletter.models import Paper, PaperRank, PaperTopicScore, ScrapeRun

    return {"papers": Paper.objects.count(), "scrape runs": ScrapeRun.objects.count(), "ranks": PaperRank.objects.count(),
            "topic rows": PaperTopicScore.objects.count()}


def pages() -> dict[str, str]:
    """What is timed: each page kind, the busiest topic, a day in the middle, deep pages."""
    from django.db.models import Count

    from newsletter.app_settings import app_settings
    from newsletter.archive import queries
    from newsletter.models import PaperTopicScore

    days = queries.trending_days()
    busiest = PaperTopicScore.objects.values("topic__slug").annotate(n=Count("id")).order_by("-n").first()
    slug, in_topic = busiest["topic__slug"], busiest["n"]
    last_topic_page = -(-in_topic // app_settings.ARCHIVE_PAPERS_PER_PAGE)
    last_index_page = -(-len(days) // app_settings.ARCHIVE_DAYS_PER_PAGE)
    return {
        "archive index": "/archive/",
        f"archive index, last page ({last_index_page})": f"/archive/?page={last_index_page}",
        "a day": f"/archive/{days[len(days) // 2].day:%Y-%m-%d}/",
        f"topic ({in_topic:,} papers)": f"/topics/{slug}/",
        f"topic, last page ({last_topic_page})": f"/topics/{slug}/?page={last_topic_page}",
        "feed: all": "/feeds/all.atom",
        "feed: topic": f"/feeds/topics/{slug}.atom",
        "sign-up page (sample)": "/",
    }


def percentile(sorted_ms: list[float], share: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, round(share * (len(sorted_ms) - 1)))]


def time_page(client, path: str, loads: int, cold: bool) -> tuple[list[float], list[float], int, int]:
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    timings, cpu, queries, size = [], [], 0, 0
    client.get(path)  # warms connections, templates and the cache (for the warm loads)
    for _ in range(loads):
        if cold:
            cache.clear()
        with CaptureQueriesContext(connection) as captured:
            started, started_cpu = time.perf_counter(), time.process_time()
            response = client.get(path)
            elapsed = (time.perf_counter() - started) * 1000
            cpu.append((time.process_time() - started_cpu) * 1000)
        assert response.status_code == 200, (path, response.status_code)
        timings.append(elapsed)
        queries, size = len(captured), len(response.content)
    return sorted(timings), sorted(cpu), queries, size


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--papers", type=int, default=10_000)
    parser.add_argument("--per-day", type=int, default=50)
    parser.add_argument("--loads", type=int, default=200, help="loads per page and mode (p99 needs 100 or more)")
    parser.add_argument("--reseed", action="store_true", help="drop the bench database and seed it again")
    args = parser.parse_args()

    open_bench_database(args.reseed, lambda: seed(args.papers, args.per_day))
    from django.core.cache import cache
    from django.test import Client

    cache.clear()
    print(f"database {database_name()}: " + ", ".join(f"{n:,} {what}" for what, n in counts().items()))
    print(f"load average before timing: {load_average()}")
    client = Client()
    worst = {"cold": 0.0, "warm": 0.0}  # p99 of the archive and topic pages (the target's pages)
    # cpu: this process's own CPU time per load (p50), what a load costs when it has a core
    # to itself; the rest of the wall-clock time is waiting for the database and for the CPU.
    print(f"{'page':34} {'mode':5} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7} {'cpu p50':>8}  queries  size")
    for name, path in pages().items():
        for mode in ("cold", "warm"):
            timings, cpu, queries, size = time_page(client, path, args.loads, cold=mode == "cold")
            p99 = percentile(timings, 0.99)
            if path.startswith(("/archive/", "/topics/")):
                worst[mode] = max(worst[mode], p99)
            print(f"{name:34} {mode:5} {percentile(timings, 0.5):7.1f} {percentile(timings, 0.95):7.1f} {p99:7.1f} "
                  f"{timings[-1]:7.1f} {percentile(cpu, 0.5):8.1f}  {queries:7}  {size / 1024:.0f} KiB")
    print(f"load average after timing: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for mode, p99 in worst.items():
        print(f"archive and topic pages, {mode}: worst p99 {p99:.1f} ms "
              f"(target {TARGET_MS} ms: {'met' if p99 < TARGET_MS else 'NOT met'})")


if __name__ == "__main__":
    main()
