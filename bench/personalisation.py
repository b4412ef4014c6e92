"""Simulated readers with a hidden taste: does voting from the email make later digests better?

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/nl_bench .venv/bin/python bench/personalisation.py [--readers 10] [--rotations 5]

Works in a throwaway database (bench_<name of DATABASE_URL's database>, created and dropped
here); email goes to Django's in-memory outbox and Celery tasks run in this process. Nothing
here needs the network.

The fixture days (tests/fixtures/hf, five real days of Hugging Face papers) arrive one a
day, each scored into topics by a topic model trained without that day's papers (they are
among its seed papers). Each simulated reader subscribes to three topics and has a hidden
taste (tests/support/personal.py), judged on the shared topic labels:
- "one topic": only one of its three topics;
- "code": only papers with code;
- "author": only papers by one author (whom it follows on its preferences page).
Every reader has a twin with the same subscription (topics, papers per email, followed
author) who never votes. Each day both get their digest through the real dispatcher and
sender; the voting reader then reads the received email and votes on its first
--votes-per-day papers by its taste exactly as a person would: it opens the "More like this"
or "Less like this" link of the email, presses the button on the page, and rates the next
papers on the "rate this digest" page it lands on (CSRF tokens, cookies, its own IP). The
vote views queue the retraining as they do in production.

Printed, per taste, on the days the voting reader had already cast --after votes (10):
precision@5 against the taste of the voting reader's digest, of its twin's, of today's
ranking (TopicScoreAndUpvotes) for the twin, of Hugging Face's trending order for the day,
and the best any order of the reader's candidates could do (they are the reader's topics'
papers: the ranking reorders them, and adds at most one paper from outside). The days are
taken in --rotations different orders (each starting a day later, wrapping round), so that
each day is a later day in some of them.

Then a check of the learner itself (`--no-learners` skips it): on each day held out, each
reader's model is trained on --after random votes on its candidates of the other days, and
its candidates of that day are ordered by the model alone and by the blend the ranking uses,
for the logistic regression (profiles.py) and a Rocchio centroid.

Tune nothing on these figures alone: 110 papers on five days is little, and the maintainers
run their own simulated readers on papers no one here has seen.
"""

import argparse
import os
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsletter.settings.test")

import django  # noqa: E402

django.setup()

from tests.support.personal import (  # noqa: E402
    DAYS, Mailbox, Taste, arxiv_ids_in, day_papers, load_day, note_kind, notes_in, plain_text, sim_times, tastes,
)
from tests.support.seeding import make_subscriber  # noqa: E402

TODAY = "newsletter.digests.ranking.TopicScoreAndUpvotes"
PERSONAL = "newsletter.personal.ranking.PersonalRanking"
KINDS = ("one topic", "code", "author")


def precision_at_5(arxiv_ids, likes) -> float | None:
    top = arxiv_ids[:5]
    return sum(likes(a) for a in top) / len(top) if top else None


class Pair:
    """A voting reader and its twin who never votes."""

    def __init__(self, number: int, taste: Taste, topics: dict, rotation: int = 0):
        from newsletter.models import FollowedAuthor
        from newsletter.personal.signals import reader_told_us

        self.taste = taste
        # Its own address, as readers have (votes are counted per reader, FEEDBACK_RATE_LIMIT).
        self.mailbox = Mailbox(ip=f"10.{rotation}.{number // 250}.{number % 250 + 1}")
        # Every other pair opted in to one paper from outside its topics.
        self.voter, self.twin = (
            make_subscriber(f"{role}{number}@example.org", topics=[topics[t] for t in taste.topics], papers_per_email=10,
                            send_hour=0, outside_topics=bool(number % 2))
            for role in ("voter", "twin")
        )
        for reader in (self.voter, self.twin):
            for name in taste.follows:  # as the preferences page stores a follow
                FollowedAuthor.objects.create(subscriber=reader, name=name)
                reader_told_us(reader.pk)
        self.votes = 0


def todays_order(pairs, topics_of, now) -> dict[int, list[str]]:
    """What today's ranking would send each twin now (before the dispatcher sends them anything)."""
    from django.conf import settings
    from django.utils import timezone

    from newsletter.digests import selection
    from newsletter.models import Paper

    settings.DIGEST_RANKING = TODAY
    try:
        pool = selection.paper_pool("daily", now)
        readers = [selection.Reader(p.twin.pk, "daily", timezone.localdate(now), topics_of[p.twin.pk], 10) for p in pairs]
        chosen = selection.choose(readers, {"daily": pool})
    finally:
        settings.DIGEST_RANKING = PERSONAL
    arxiv = dict(Paper.objects.values_list("pk", "arxiv_id"))
    return {p.twin.pk: [arxiv[pk] for pk in c] for p, c in zip(pairs, chosen)}


def candidates_of(topic_ids, day_ids) -> set[str]:
    from newsletter.models import PaperTopicScore

    return set(PaperTopicScore.objects.filter(topic_id__in=topic_ids, paper__arxiv_id__in=day_ids).values_list("paper__arxiv_id", flat=True))


def simulate(rotation: int, count: int, votes_per_day: int, after: int, results: dict) -> int:
    """One pass over the days in the order starting at DAYS[rotation]; returns the votes cast."""
    from django.core import mail

    from newsletter.models import Delivery, DigestContent, Paper, ScrapeRun
    from newsletter.tasks.digests import dispatch_now
    from subscriptions.models import Subscriber, Topic

    Subscriber.objects.all().delete()
    Delivery.objects.all().delete()
    DigestContent.objects.all().delete()
    ScrapeRun.objects.all().delete()
    Paper.objects.all().delete()
    topics = {t.slug: t for t in Topic.objects.all()}
    pairs = [Pair(n, taste, topics, rotation) for n, taste in enumerate(tastes(count, seed=rotation))]
    topics_of = {s.pk: tuple(sorted(topics[t].pk for t in p.taste.topics)) for p in pairs for s in (p.voter, p.twin)}
    days = DAYS[rotation:] + DAYS[:rotation]
    cast = 0
    for (scrape_at, send_at), path in zip(sim_times(len(days)), days):
        load_day(path, scrape_at, held_out=True)
        papers = {p.arxiv_id: p for p in Paper.objects.all()}
        day_ids = [p["id"] for p in day_papers(path)]
        today = todays_order(pairs, topics_of, send_at)
        mail.outbox.clear()
        dispatch_now(now=send_at, ignore_hour=True)
        received = {m.to[0]: m for m in mail.outbox}
        for pair in pairs:
            likes = (lambda a, taste=pair.taste: taste.likes(papers[a]))
            message = received.get(pair.voter.email)
            voter_ids = arxiv_ids_in(plain_text(message)) if message else []
            twin_message = received.get(pair.twin.email)
            twin_ids = arxiv_ids_in(plain_text(twin_message)) if twin_message else []
            stage = "after" if pair.votes >= after else "before" if pair.votes else None
            if stage and voter_ids:
                row = results[stage][pair.taste.kind]
                row["voter"].append(precision_at_5(voter_ids, likes))
                row["twin"].append(precision_at_5(twin_ids, likes))
                row["today"].append(precision_at_5(today[pair.twin.pk], likes))
                row["hf"].append(precision_at_5(day_ids, likes))
                shown = candidates_of(topics_of[pair.voter.pk], day_ids)
                row["best"].append(min(sum(map(likes, shown)), 5) / min(len(shown), 5) if shown else 0.0)
                row["candidates"].append(len(shown))
            if message:
                for arxiv_id, note in notes_in(plain_text(message)).items():
                    results["notes"][note_kind(note)].append((likes(arxiv_id), pair.taste.kind, papers[arxiv_id].title, note))
                results["notes"]["papers"].append(len(voter_ids))
                choices = {a: "more" if likes(a) else "less" for a in voter_ids[:votes_per_day]}
                done = pair.mailbox.vote(plain_text(message), choices)
                pair.votes += done
                cast += done
    return cast


# --- the learner alone ---------------------------------------------------------------------


def learner_check(count: int, votes: int) -> dict:
    """Model-only and blended p@5 on held-out days, per learner (see the module docstring)."""
    import numpy as np

    from newsletter.app_settings import app_settings
    from newsletter.models import Paper, PaperTopicScore
    from newsletter.personal import features, profiles
    from subscriptions.models import Topic

    papers = {p.arxiv_id: p for p in Paper.objects.all()}
    found = features.paper_features([p.pk for p in papers.values()])
    day_of = {item["id"]: path.name for path in DAYS for item in day_papers(path)}
    slug_of = dict(Topic.objects.values_list("pk", "slug"))
    scores: dict[str, dict[str, float]] = defaultdict(dict)
    for arxiv_id, topic_id, score in PaperTopicScore.objects.values_list("paper__arxiv_id", "topic_id", "score"):
        scores[arxiv_id][slug_of[topic_id]] = score
    weight = app_settings.PERSONAL_MODEL_WEIGHT
    out: dict[str, dict] = {}
    saved = profiles.LEARNER
    try:
        for learner in ("logistic", "centroid"):
            profiles.LEARNER = learner
            rows = out[learner] = defaultdict(lambda: defaultdict(list))
            for taste in tastes(count, seed=99):
                if taste.kind == "author":
                    continue
                mine = [a for a in papers if set(scores.get(a, {})) & set(taste.topics)]
                for day in DAYS:
                    test = [a for a in mine if day_of[a] == day.name]
                    train = [a for a in mine if day_of[a] != day.name]
                    if len(test) < 6 or len(train) < votes:
                        continue
                    rng = random.Random(f"{taste.kind}{taste.topics}{day.name}")
                    voted = rng.sample(train, votes)
                    examples = profiles.Examples()
                    examples.add(found.rows([papers[a].pk for a in voted if taste.likes(papers[a])]), 1, 1.0)
                    examples.add(found.rows([papers[a].pk for a in voted if not taste.likes(papers[a])]), 0, 1.0)
                    rest = [a for a in train if a not in voted]
                    background = found.rows([papers[a].pk for a in rng.sample(rest, min(profiles.BACKGROUND_PAPERS, len(rest)))])
                    columns, w, bias = profiles.fit(examples, background)
                    x = found.rows([papers[a].pk for a in test])
                    model = np.asarray(x[:, columns] @ w).ravel() + bias
                    topic = np.array([max(s for t, s in scores[a].items() if t in taste.topics) for a in test])
                    upvotes = np.array([papers[a].upvotes for a in test], dtype=float)
                    base = np.log(topic * np.log2(2 + upvotes))
                    good = np.array([taste.likes(papers[a]) for a in test])

                    def p5(score):
                        return float(good[np.lexsort((-upvotes, -score))[:5]].mean())

                    row = rows[taste.kind]
                    row["today"].append(p5(base))
                    row["model alone"].append(p5(model))
                    row["blend"].append(p5(base + weight * model))
                    row["best"].append(min(int(good.sum()), 5) / 5)
    finally:
        profiles.LEARNER = saved
    return out


# --- printing -----------------------------------------------------------------------------


def mean(values) -> float:
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else float("nan")


def print_results(results: dict, after: int, votes_per_day: int) -> None:
    columns = ("voter", "twin", "today", "hf", "best")
    names = {"voter": "voting", "twin": "twin", "today": "today's", "hf": "HF trend", "best": "best"}
    for stage, title in (("after", f"after {after}+ votes"), ("before", f"after 1-{after - 1} votes")):
        print(f"\nprecision@5 on later days, {title} ({votes_per_day} votes a day at most)")
        print(f"{'taste':12s} {'digests':>7s} " + " ".join(f"{names[c]:>9s}" for c in columns) + f" {'lift':>7s} {'twin-today':>10s} {'cands':>6s}")
        every = defaultdict(list)
        for kind in KINDS:
            row = results[stage].get(kind)
            if not row or not row["voter"]:
                continue
            for c in (*columns, "candidates"):
                every[c] += row[c]
            print(f"{kind:12s} {len(row['voter']):7d} " + " ".join(f"{mean(row[c]):9.3f}" for c in columns)
                  + f" {mean(row['voter']) - mean(row['twin']):+7.3f} {mean(row['twin']) - mean(row['today']):+10.3f} {mean(row['candidates']):6.1f}")
        if every["voter"]:
            print(f"{'all':12s} {len(every['voter']):7d} " + " ".join(f"{mean(every[c]):9.3f}" for c in columns)
                  + f" {mean(every['voter']) - mean(every['twin']):+7.3f} {mean(every['twin']) - mean(every['today']):+10.3f} {mean(every['candidates']):6.1f}")


def print_notes(notes: dict, examples: int = 4) -> None:
    """Each kind of note: how many papers carry it, how many of those are to the reader's
    taste (overall and per taste), and a few of them."""
    from newsletter.personal.reasons import PREFIXES

    papers = sum(notes.get("papers", ()))
    if not papers:
        return
    print(f"\nnotes on the voting readers' {papers} papers (every other pair opted in to the outside slot):")
    kinds = [note_kind(prefix) for prefix in PREFIXES]
    width = max(map(len, kinds))
    for kind in kinds:
        rows = notes.get(kind, [])
        liked = sum(1 for like, *_ in rows if like)
        by_taste = " ".join(
            f"{taste} {sum(1 for like, t, *_ in rows if t == taste and like)}/{sum(1 for _, t, *_ in rows if t == taste)}"
            for taste in KINDS
        )
        print(f"  {kind:{width}s} {len(rows):5d} papers ({len(rows) / papers:5.1%}), "
              f"{liked / len(rows) if rows else 0:5.1%} of them to the reader's taste ({by_taste})")
    for kind in kinds:
        rows = notes.get(kind, [])
        for like, taste, title, note in rows[:: max(1, len(rows) // examples)][:examples]:
            print(f"    {taste:9s} {'+' if like else '-'} {title[:62]!r:66s} <- {note[:80]}")
def print_learners(out: dict, votes: int) -> None:
    print(f"\nthe learner alone: each held-out day's candidates ordered after {votes} random votes on the other days (p@5)")
    print(f"{'learner':10s} {'taste':10s} {'n':>4s} {'today':>7s} {'model':>7s} {'blend':>7s} {'best':>7s}")
    for learner, rows in out.items():
        for kind, row in rows.items():
            # The blend's weight is tuned to the logistic regression's log-odds, not to a centroid's scale.
            blend = f"{mean(row['blend']):7.3f}" if learner == "logistic" else f"{'-':>7s}"
            print(f"{learner:10s} {kind:10s} {len(row['today']):4d} {mean(row['today']):7.3f} {mean(row['model alone']):7.3f} "
                  f"{blend} {mean(row['best']):7.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=10, help="Voting readers of each taste (each with a twin).")
    parser.add_argument("--rotations", type=int, default=len(DAYS), help="Orders of the days (1 to 5).")
    parser.add_argument("--votes-per-day", type=int, default=5)
    parser.add_argument("--after", type=int, default=10, help="Votes cast before a digest counts as 'after'.")
    parser.add_argument("--no-learners", action="store_true")
    args = parser.parse_args()

    import logging

    logging.disable(logging.WARNING)
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_databases, setup_test_environment, teardown_databases

    from newsletter.celery import app as celery_app

    setup_test_environment()  # email to mail.outbox
    celery_app.conf.task_always_eager = True  # the vote views' retraining runs here, after each commit
    settings.DIGEST_RANKING = PERSONAL
    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"bench_{connection.settings_dict['NAME']}"
    config = setup_databases(verbosity=0, interactive=False, keepdb=False)
    started = time.monotonic()
    results = {"after": defaultdict(lambda: defaultdict(list)), "before": defaultdict(lambda: defaultdict(list)),
               "notes": defaultdict(list)}
    cast = 0
    try:
        for rotation in range(min(args.rotations, len(DAYS))):
            cast += simulate(rotation, args.readers, args.votes_per_day, args.after, results)
            print(f"rotation {rotation + 1}: {cast} votes cast through the links so far ({time.monotonic() - started:.0f} s)", flush=True)
        learners = None if args.no_learners else learner_check(args.readers * 3, args.after)
    finally:
        connection.close()
        teardown_databases(config, verbosity=0)
    print(f"\n{args.readers} readers of each taste, each with a twin; {len(DAYS)} fixture days in {min(args.rotations, len(DAYS))} orders; "
          f"{cast} votes, each through a link of a received email and the page it opens")
    print("voting: the reader who votes; twin: the same subscription, never votes; today's: TopicScoreAndUpvotes for the twin;")
    print("HF trend: the day's trending order (all papers); best: the best order of the reader's candidates; lift: voting - twin")
    print_results(results, args.after, args.votes_per_day)
    print_notes(results["notes"])
    if learners:
        print_learners(learners, args.after)
    print(f"\n{time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
