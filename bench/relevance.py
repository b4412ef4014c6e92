"""How well papers land in the topics a careful reader chose (tests/fixtures/relevance/).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/nl_bench .venv/bin/python bench/relevance.py [--record]

The 110 labelled fixture papers go through the project's real path: each fixture file is
loaded like a scrape (parse, store, then assign topics) into a throwaway database
(bench_<name>, created and dropped here). Printed, for the papers as the source gave them and
again with `ai_keywords`/`ai_summary` removed (title and abstract only, like older papers):
micro precision, recall and F1, the share of papers whose primary topic is assigned, papers
with no topic, and a per-topic table, for
- the keyword-only baseline: the keyword lists shipped before (0002), score >= 3, as topics
  were assigned until issue 10;
- the topic model cross-validated: the seed papers are also its training examples, so each
  fold of papers is scored by a model trained without them (k folds, repeated with
  different splits);
- the topic model as shipped (trained on all 110, so not a fair estimate: shown for scale);
- with --unseen-keywords, the topic model cross-validated once more with each topic's keyword
  lines cut, for every fold, to those that match one of the training folds' papers labelled
  with that topic. The lists were written after reading these papers, so on them a keyword
  often fits because it was taken from the paper itself; this run shows what is left when
  that help is gone. It is a pessimistic stand-in for papers nobody wrote keywords from
  (it also drops general phrases that happen to match held-out papers only).

--record writes the figures to var/topic_bench.json, where the topic health page shows them."""

import argparse
import contextlib
import importlib
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsletter.settings.test")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.test.utils import setup_databases, teardown_databases  # noqa: E402

from tests.support.relevance import LABELS, measure  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
API_FILES = sorted((FIXTURES / "hf").glob("api_daily_papers_20*.json"))
FULL, TITLE_ABSTRACT = "as given", "title+abstract"


def average(results: list[dict]) -> dict:
    keys = ["precision", "recall", "f1", "primary", "no_topic"]
    mean = {k: statistics.mean(r[k] for r in results) for k in keys}
    per_topic: dict[str, list[float]] = {}
    for r in results:
        for slug, counts in r["per_topic"].items():
            total = per_topic.setdefault(slug, [0, 0, 0])
            for i in range(3):
                total[i] += counts[i] / len(results)
    mean["per_topic"] = per_topic
    if len(results) > 1:
        mean["f1_spread"] = (min(r["f1"] for r in results), max(r["f1"] for r in results))
    return mean


# --- the real path: store, then score --------------------------------------------------------


def load_fixtures(title_abstract_only: bool) -> None:
    """Empty the paper store and load every fixture file as a scrape does."""
    from newsletter.models import Paper, ScrapeRun
    from newsletter.scraping.run import scrape_file

    ScrapeRun.objects.all().delete()
    Paper.objects.all().delete()
    with tempfile.TemporaryDirectory() as folder:
        for path in API_FILES:
            if title_abstract_only:
                items = json.loads(path.read_text())
                for item in items:
                    item["paper"].pop("ai_keywords", None)
                    item["paper"].pop("ai_summary", None)
                path = Path(folder) / path.name
                path.write_text(json.dumps(items))
            run = scrape_file(path)
            assert run.status == "ok", run.error
    assert Paper.objects.count() == len(LABELS)


def stored_topics(arxiv_ids=None) -> dict[str, set[str]]:
    from newsletter.models import PaperTopicScore

    rows = PaperTopicScore.objects.all()
    if arxiv_ids is not None:
        rows = rows.filter(paper__arxiv_id__in=arxiv_ids)
    found: dict[str, set[str]] = {}
    for arxiv_id, slug in rows.values_list("paper__arxiv_id", "topic__slug"):
        found.setdefault(arxiv_id, set()).add(slug)
    return found


def keyword_baseline() -> dict[str, set[str]]:
    """Topics as assigned before issue 10: the shipped keyword lists, keyword score >= 3."""
    from newsletter.models import Paper
    from newsletter.topics import TopicMatcher
    from subscriptions.models import Topic

    shipped = importlib.import_module("subscriptions.migrations.0002_curated_topics").TOPICS
    matcher = TopicMatcher([Topic(slug=s, name=n, keywords="\n".join(k)) for s, n, _d, k in shipped])
    found = {}
    for paper in Paper.objects.all():
        scores = matcher.score(paper)
        found[paper.arxiv_id] = {matcher.topics[n].slug for n, s in scores.items() if s.score >= 3.0}
    return found


@contextlib.contextmanager
def keywords_seen_without(held_out: set[str]):
    """Each active topic keeps only the keyword lines that match (in any field) a seed paper
    outside `held_out` labelled with it; the lists are put back afterwards. Saved with
    update(), so no retraining is queued."""
    from newsletter import topic_assignment, topic_model
    from newsletter.topics import TopicMatcher, parse_keyword
    from subscriptions.models import Topic

    topics = topic_assignment.active_topics()
    matcher = TopicMatcher(topics)
    seen: dict[int, set[str]] = {n: set() for n in range(len(topics))}
    for example in topic_model.seed_examples(exclude=held_out):
        hits = matcher.field_hits(example.paper)
        for part in (hits.title, hits.keywords, hits.abstract, hits.summary):
            for n, phrases in part.items():
                if example.labels.get(topics[n].slug):
                    seen[n] |= set(phrases)
    try:
        for n, topic in enumerate(topics):
            kept = [line for line in topic.keyword_list if parse_keyword(line)[0] in seen[n]]
            Topic.objects.filter(pk=topic.pk).update(keywords="\n".join(kept))
        yield
    finally:
        for topic in topics:
            Topic.objects.filter(pk=topic.pk).update(keywords=topic.keywords)


def cross_validated(folds: int, repeats: int, unseen_keywords: bool = False) -> list[dict]:
    """Each fold's papers scored by a model trained on the other folds' seed papers (and, if
    `unseen_keywords`, with keyword lines only those folds' papers could have suggested)."""
    from newsletter import topic_assignment
    from newsletter.models import Paper

    ids = [label["arxiv_id"] for label in LABELS]
    results = []
    for repeat in range(repeats):
        shuffled = ids[:]
        random.Random(repeat).shuffle(shuffled)
        predicted: dict[str, set[str]] = {}
        for fold in range(folds):
            held_out = set(shuffled[fold::folds])
            with keywords_seen_without(held_out) if unseen_keywords else contextlib.nullcontext():
                topic_assignment.retrain(reason=f"bench fold {fold + 1}/{folds}, split {repeat + 1}", exclude_seed=held_out)
                topic_assignment.assign_topics(Paper.objects.filter(arxiv_id__in=held_out))
            predicted.update({i: set() for i in held_out})
            predicted.update(stored_topics(held_out))
        results.append(measure(predicted))
    return results


def in_sample() -> dict:
    from newsletter import topic_assignment
    from newsletter.models import Paper

    topic_assignment.retrain(reason="bench: all seed papers")
    topic_assignment.assign_topics(Paper.objects.all())
    return measure(stored_topics())


# --- printing ---------------------------------------------------------------------------------


def line(name: str, by_mode: dict) -> str:
    cells = []
    for mode in (FULL, TITLE_ABSTRACT):
        r = by_mode[mode]
        cells.append(f"{r['precision']:5.3f} {r['recall']:5.3f} {r['f1']:5.3f} {r['primary'] * 100:6.1f}% {r['no_topic']:4.0f}")
    return f"{name:38s} | " + " | ".join(cells)


def print_tables(figures: dict, folds: int, repeats: int) -> None:
    header = f"{'P':>5s} {'R':>5s} {'F1':>5s} {'primary':>7s} {'none':>4s}"
    print(f"\n{len(LABELS)} labelled papers; model cross-validated with {folds} folds x {repeats} splits\n")
    print(f"{'':38s} | {FULL + ' (with AI keywords/summary)':^34s} | {TITLE_ABSTRACT + ' only':^34s}")
    print(f"{'method':38s} | {header} | {header}")
    print("-" * 112)
    print(line("keyword-only baseline (0002, score>=3)", figures["baseline"]))
    print(line("topic model, cross-validated", figures["cv"]))
    print(line("topic model, in-sample (not fair)", figures["in_sample"]))
    if "cv_unseen_keywords" in figures:
        print(line("cross-validated, keywords unseen", figures["cv_unseen_keywords"]))
    for key, name in (("cv", "cross-validated F1"), ("cv_unseen_keywords", "keywords unseen")):
        for mode in (FULL, TITLE_ABSTRACT):
            spread = figures.get(key, {}).get(mode, {}).get("f1_spread")
            if spread:
                print(f"  {name} over the splits ({mode}): {spread[0]:.3f} to {spread[1]:.3f}")

    slugs = sorted({s for label in LABELS for s in label["topics"]} | set(figures["cv"][FULL]["per_topic"]))
    print("\nper topic: precision / recall (labelled papers), baseline -> cross-validated model")
    print(f"{'topic':24s} {'n':>3s} | {FULL:^27s} | {TITLE_ABSTRACT:^27s}")
    for slug in slugs:
        n = sum(slug in label["topics"] for label in LABELS)
        cells = []
        for mode in (FULL, TITLE_ABSTRACT):
            pr = []
            for key in ("baseline", "cv"):
                tp, fp, fn = figures[key][mode]["per_topic"].get(slug, [0, 0, 0])
                pr.append(f"{tp / (tp + fp) if tp + fp else 0:.2f}/{tp / (tp + fn) if tp + fn else 0:.2f}")
            cells.append(f"{pr[0]:>9s} -> {pr[1]:9s}")
        print(f"{slug:24s} {n:3d} | {cells[0]:27s} | {cells[1]:27s}")


def record(figures: dict, folds: int, repeats: int) -> Path:
    path = Path(settings.VAR_DIR) / "topic_bench.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    keep = ("precision", "recall", "f1", "primary", "no_topic")
    summary = {
        "ran_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "papers": len(LABELS), "folds": folds, "repeats": repeats,
        "figures": {key: {mode: {k: round(v, 3) for k, v in figures[key][mode].items() if k in keep} for mode in figures[key]} for key in figures},
    }
    path.write_text(json.dumps(summary, indent=1))
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="Cross-validation runs with different splits (averaged).")
    parser.add_argument("--record", action="store_true", help="Write the figures to var/topic_bench.json for the admin.")
    parser.add_argument(
        "--unseen-keywords", action="store_true",
        help="Also cross-validate with keyword lines cut to those the training folds' papers match (pessimistic).",
    )
    args = parser.parse_args()
    logging.getLogger("newsletter").setLevel(logging.WARNING)  # one line per stored fixture otherwise

    from django.db import connection

    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"bench_{connection.settings_dict['NAME']}"
    config = setup_databases(verbosity=0, interactive=False, keepdb=False)
    started = time.monotonic()
    try:
        figures = {"baseline": {}, "cv": {}, "in_sample": {}}
        if args.unseen_keywords:
            figures["cv_unseen_keywords"] = {}
        for mode in (FULL, TITLE_ABSTRACT):
            load_fixtures(title_abstract_only=mode == TITLE_ABSTRACT)
            figures["baseline"][mode] = measure(keyword_baseline())
            figures["cv"][mode] = average(cross_validated(args.folds, args.repeats))
            if args.unseen_keywords:
                figures["cv_unseen_keywords"][mode] = average(cross_validated(args.folds, args.repeats, unseen_keywords=True))
            figures["in_sample"][mode] = in_sample()
    finally:
        teardown_databases(config, verbosity=0)
    print_tables(figures, args.folds, args.repeats)
    print(f"\n{time.monotonic() - started:.0f} s")
    if args.record:
        print(f"recorded in {record(figures, args.folds, args.repeats)}")


if __name__ == "__main__":
    main()
