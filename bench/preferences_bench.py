"""The preferences page with everything a reader can tell it, over a large archive: how long
matching followed authors against every stored author list takes (newsletter/author_papers.py:
the first look, a look after a scrape, a cached look), and the page itself (GET, and POST of
"What you want to read") for a reader at every limit: 50 authors, 50 seed papers, 50 likes.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/nl_h2 REDIS_URL=redis://127.0.0.1:6379/12 \\
        .venv/bin/python bench/preferences_bench.py [--papers 10000] [--repeat 5]

Works in a throwaway database (bench_<name>, created and dropped here). Authors are names of
the real fixture days, first and last names recombined so the archive has as many distinct
names as a real one of that size. Prints milliseconds: medians, and the worst of --repeat."""

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsletter.settings.test")

import django  # noqa: E402

django.setup()

from django.test.utils import setup_databases, teardown_databases  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "hf"


def real_names() -> list[str]:
    items = [item for path in sorted(FIXTURES.glob("api_daily_papers_20*.json")) for item in json.loads(path.read_text())]
    return sorted({a["name"] for item in items for a in item["paper"].get("authors", []) if a.get("name")})


def seed_archive(count: int, rng: random.Random) -> list[str]:
    """`count` papers over 200 days, 3-15 authors each; returns the names used."""
    from django.utils import timezone

    from newsletter.models import Paper

    names = real_names()
    firsts = [n.split()[0] for n in names if " " in n]
    lasts = [n.split()[-1] for n in names if " " in n]
    now = timezone.now()
    papers, used = [], set()
    for n in range(count):
        authors = [names[rng.randrange(len(names))] if rng.random() < 0.3 else f"{rng.choice(firsts)} {rng.choice(lasts)}"
                   for _ in range(rng.randint(3, 15))]
        used.update(authors)
        seen = now - timedelta(days=n % 200, hours=1)
        papers.append(Paper(arxiv_id=f"2601.{n:05d}", title=f"Paper {n} about something", authors=authors,
                            first_seen_at=seen, last_seen_at=seen))
    Paper.objects.bulk_create(papers, batch_size=2000)
    return sorted(used)


def timed(fn, repeat: int) -> list[float]:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - start) * 1000)
    return runs


def show(label: str, runs: list[float]) -> None:
    print(f"{label:58s} median {statistics.median(runs):7.1f} ms   worst {max(runs):7.1f} ms")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from django.core.cache import cache
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from newsletter import author_papers
    from newsletter.models import FollowedAuthor, Paper, SeedPaper, Vote
    from newsletter.personal.authors import author_key
    from subscriptions.models import Subscriber
    from tests.support.links import preferences_path

    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"bench_{connection.settings_dict['NAME']}"
    config = setup_databases(verbosity=0, interactive=False, keepdb=False)
    try:
        rng = random.Random(7)
        used = seed_archive(args.papers, rng)
        total_names = sum(len(a) for a in Paper.objects.values_list("authors", flat=True))
        print(f"archive: {args.papers} papers, {total_names} author names ({len(used)} distinct); {connection.vendor}")

        for size in (1, 5, 50):
            keys = [author_key(name) for name in rng.sample(used, size)]
            show(f"author look-up, {size} author(s), first look (whole store)",
                 timed(lambda: (cache.clear(), author_papers.papers_by(keys)), args.repeat))
            show(f"author look-up, {size} author(s), cached", timed(lambda: author_papers.papers_by(keys), args.repeat))

        def after_a_scrape():
            ids = list(Paper.objects.order_by("?").values_list("pk", flat=True)[:50])
            Paper.objects.filter(pk__in=ids).update(last_seen_at=timezone.now())
            start = time.perf_counter()
            author_papers.papers_by(keys)
            return (time.perf_counter() - start) * 1000

        show("author look-up, 50 authors, after a scrape saw 50 papers", [after_a_scrape() for _ in range(args.repeat)])

        reader = Subscriber.objects.create(email="bench@example.org", status=Subscriber.Status.ACTIVE)
        for name in rng.sample(used, 50):
            FollowedAuthor.objects.create(subscriber=reader, name=name)
        papers = list(Paper.objects.order_by("?")[:100])
        SeedPaper.objects.bulk_create(SeedPaper(subscriber=reader, arxiv_id=p.arxiv_id, paper=p) for p in papers[:50])
        Vote.objects.bulk_create(Vote(subscriber=reader, paper=p, value=Vote.MORE) for p in papers[50:])
        client, path = Client(), preferences_path(reader)
        cache.clear()
        show("preferences page GET, 50/50/50, first look", timed(lambda: (cache.clear(), client.get(path)), args.repeat))
        show("preferences page GET, 50/50/50, cached", timed(lambda: client.get(path), args.repeat * 4))
        words = iter(range(10**6))
        show("POST \"What you want to read\" (new words) + redirect",
             timed(lambda: client.post(path, {"action": "reading", "interests": f"words {next(words)}"}), args.repeat))
    finally:
        teardown_databases(config, verbosity=0)


if __name__ == "__main__":
    main()
