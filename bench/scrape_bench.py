"""Parse + store (+ topic scoring) speed and memory for the sample trending page and for a
generated page of 1,000 papers built from the real fixtures.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/nl_scraper .venv/bin/python bench/scrape_bench.py

Works in a throwaway database (bench_<name>, created and dropped here) so it never touches
real data. Prints milliseconds (median of --repeat runs, timed without tracemalloc) and peak
traced memory (one extra run under tracemalloc), then the process's peak RSS."""

import argparse
import html
import json
import os
import re
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsletter.settings.test")

import django  # noqa: E402

django.setup()

from django.db import transaction  # noqa: E402
from django.test.utils import setup_databases, teardown_databases  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "hf"
SAMPLE = FIXTURES / "trending_page_sample.html"

CARD = (
    '<article class="relative overflow-hidden rounded-xl border"><div class="hidden h-40 md:flex">'
    '<div class="relative flex-shrink-0"><a href="/papers/{id}" class="block h-full w-56"></a>'
    '<div class="shadow-xs">Submitted by <!----> {submitter}</div></div>'
    '<div class="flex min-w-0 flex-1 flex-col justify-center p-6"><h3 class="mb-1.5 text-xl font-semibold">'
    '<a href="/papers/{id}" class="line-clamp-2">{title}</a></h3><div class="mb-2"><p class="line-clamp-2">{summary}</p></div>'
    '<div class="flex min-w-0 items-center text-sm"><span>{authors} authors</span><span class="mx-2">·</span> '
    "<span>Published on Aug 20, 2026</span></div></div>"
    '<div class="flex w-40 flex-col p-4"><div class="w-full"><div class="font-semibold text-orange-500">{upvotes}</div></div></div>'
    "</div></article>"
)


def generated_page(count: int) -> str:
    """The sample page's wrapper with `count` real items (cycled, given fresh ids) in its
    props and cards."""
    items = [item for path in sorted(FIXTURES.glob("api_daily_papers_20*.json")) for item in json.loads(path.read_text())]
    papers = []
    for n in range(count):
        item = json.loads(json.dumps(items[n % len(items)]))
        item["paper"]["id"] = f"2701.{n + 1:05d}"
        item["paper"]["upvotes"] = count - n
        papers.append(item)
    props = {"canSubmit": False, "dailyPapers": papers, "publisher": {"user": "akhaliq"}, "query": {}, "isTrending": True}
    cards = "".join(
        CARD.format(
            id=p["paper"]["id"],
            title=html.escape(" ".join(p["paper"]["title"].split())),
            summary=html.escape(p["paper"].get("ai_summary") or p["paper"]["summary"][:300]),
            submitter="bench",
            authors=len(p["paper"]["authors"]),
            upvotes=p["paper"]["upvotes"],
        )
        for p in papers
    )
    page = SAMPLE.read_text()
    head = page[: page.index('data-props="') + len('data-props="')]
    middle = page[page.index('"><section', len(head)) : page.index("<article")]
    tail = page[page.rindex("</article>") + len("</article>") :]
    return head + html.escape(json.dumps(props), quote=True) + middle + cards + tail


def reset_store():
    from newsletter.models import Paper, ScrapeRun

    ScrapeRun.objects.all().delete()
    Paper.objects.all().delete()


def parse_and_store(body: bytes):
    """What a scrape does after the download: parse, check, store with ranks, score topics."""
    from newsletter import sources, topic_assignment
    from newsletter.models import ScrapeRun
    from newsletter.scraping import store

    result = sources.default().parse(body, "text/html; charset=utf-8")
    run = ScrapeRun.objects.create(source="bench", kind=sources.FILE_KIND)
    store.check_not_far_fewer(run, len(result.papers))
    with transaction.atomic():
        papers = store.store_papers(run, result)
        topic_assignment.assign_topics(papers)
    return result, run


def measure(label: str, body: bytes, repeat: int) -> None:
    from newsletter.sources.huggingface import parse

    parse_ms, fresh_ms, again_ms = [], [], []
    for _ in range(repeat):
        reset_store()
        started = time.perf_counter()
        result = parse(body, "text/html")
        parse_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        _, run = parse_and_store(body)
        fresh_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        _, again = parse_and_store(body)  # the same page again: every paper exists
        again_ms.append((time.perf_counter() - started) * 1000)
        assert run.papers_new == len(result.papers) and again.papers_new == 0

    cards_body = re.sub(rb'(data-target="DailyPapers") data-props="[^"]*"', rb"\1", body, count=1)
    started = time.perf_counter()
    cards = parse(cards_body, "text/html")
    cards_ms = (time.perf_counter() - started) * 1000
    assert cards.parser == "cards" and len(cards.papers) == len(result.papers)

    reset_store()
    tracemalloc.start()
    parse_and_store(body)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    print(
        f"{label}: {len(result.papers)} papers, {len(body) / 1024:.0f} KiB\n"
        f"  parse (props)             {statistics.median(parse_ms):8.1f} ms\n"
        f"  parse (cards fallback)    {cards_ms:8.1f} ms\n"
        f"  parse+store+topics, new   {statistics.median(fresh_ms):8.1f} ms\n"
        f"  parse+store+topics, again {statistics.median(again_ms):8.1f} ms\n"
        f"  peak traced memory        {peak / 2**20:8.1f} MiB (parse+store+topics, new)"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--papers", type=int, default=1000)
    args = parser.parse_args()

    from django.db import connection

    # A database of its own, so a test run on the same server is never disturbed.
    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"bench_{connection.settings_dict['NAME']}"
    print(f"database: {connection.vendor} (throwaway bench database); median of {args.repeat} runs")
    config = setup_databases(verbosity=0, interactive=False, keepdb=False)
    try:
        measure("sample page", SAMPLE.read_bytes(), args.repeat)
        measure("generated page", generated_page(args.papers).encode(), args.repeat)
    finally:
        teardown_databases(config, verbosity=0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(f"peak RSS of this process: {rss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
