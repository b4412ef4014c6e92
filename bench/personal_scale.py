"""Training and scoring the personal ranking for 100,000 readers, on this machine.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/nl_bench .venv/bin/python bench/personal_scale.py [--readers 100000]

Works in a throwaway database (bench_<name of DATABASE_URL's database>, created, migrated
and dropped here). Stores the 110 fixture papers (tests/fixtures/hf, through the real scraper
and topic model) and a day's pool of all of them, then N readers with synthetic signal: one
to three topics, 10 votes on fixture papers of those topics cast as a reader with a taste
would (More on the papers of its first topic, Less on the others), one followed author and a
sentence of their own words. Each phase runs in a process of its own, so its peak memory is
its own:

1. training: newsletter.personal.profiles.retrain_stale() for every reader (what the hourly
   sweep does when everyone has new signal), readers per second and peak RSS; beside it the
   same batches read without training (the queries alone), and on a sample the solve alone:
   profiles.logistic_regression beside scikit-learn's liblinear on the same examples;
2. scoring: selection.choose() for every reader in chunks of --chunk (1,000, as the sender
   does), time spent in the ranking's prepare()/order()/notes() per chunk and queries per
   chunk, beside today's ranking (TopicScoreAndUpvotes) on the same readers; then one
   choose() over every reader at once (the dispatcher's send order), time and peak RSS.

Nothing here needs the network. Other processes share the CPU: the load average is printed.
"""

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsletter.settings.test")

from tests.support.databases import load_average  # noqa: E402
from tests.support.personal import DAYS, load_day  # noqa: E402

INTERESTS = [
    "efficient inference of large language models on small GPUs",
    "video generation with diffusion models",
    "robot manipulation learned from demonstrations",
    "retrieval augmented generation for question answering",
    "reinforcement learning for reasoning in language models",
    "speech recognition and audio generation",
    "agents that use tools and browse the web",
    "3D reconstruction and gaussian splatting",
    "alignment, safety and red teaming of chat models",
    "benchmarks that measure what models really know",
    "multimodal models reading documents and charts",
    "code generation and software engineering agents",
]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu() -> float:
    """CPU seconds this process has used (what other processes on the machine do not change)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- setting up (parent process) -------------------------------------------------------------


def seed(readers: int, seed_value: int = 1) -> None:
    """The fixture papers, today's pool of all of them, and `readers` readers with signal."""
    from django.db import connection
    from django.utils import timezone

    from newsletter.models import Paper, PaperRank, PaperTopicScore, ScrapeRun
    from newsletter.personal.authors import author_key
    from subscriptions.models import Subscriber

    rng = random.Random(seed_value)
    for path in DAYS:
        load_day(path, held_out=False)
    now = timezone.now()
    run = ScrapeRun.objects.create(source="bench: every fixture paper", kind="trending", status="ok",
                                   started_at=now, finished_at=now)
    papers = list(Paper.objects.order_by("-upvotes", "pk").values_list("pk", "upvotes", "authors"))
    PaperRank.objects.bulk_create([PaperRank(run=run, paper_id=pk, rank=n, upvotes=up) for n, (pk, up, _) in enumerate(papers, 1)])
    by_topic: dict[int, list[int]] = {}
    for paper_id, topic_id in PaperTopicScore.objects.values_list("paper_id", "topic_id"):
        by_topic.setdefault(topic_id, []).append(paper_id)
    topic_ids = sorted(t for t, ids in by_topic.items() if len(ids) >= 5)
    names = sorted({a for _, _, authors in papers for a in authors if isinstance(a, str)})
    paper_ids = [pk for pk, _, _ in papers]

    started = time.perf_counter()
    rows = [Subscriber(email=f"reader{n}@example.org", status=Subscriber.Status.ACTIVE, confirmed_at=now,
                       papers_per_email=rng.choice((5, 10)), interests=rng.choice(INTERESTS), outside_topics=rng.random() < 0.3)
            for n in range(readers)]
    ids = []
    for start in range(0, readers, 5000):
        ids += [s.pk for s in Subscriber.objects.bulk_create(rows[start : start + 5000])]
    through = Subscriber.topics.through._meta.db_table
    with connection.cursor() as cursor:
        raw = cursor.connection
        with raw.cursor() as c, c.copy(f"COPY {through} (subscriber_id, topic_id) FROM STDIN") as copy:
            chosen = {}
            for sid in ids:
                chosen[sid] = rng.sample(topic_ids, rng.randint(1, 3))
                for topic_id in chosen[sid]:
                    copy.write_row((sid, topic_id))
        with raw.cursor() as c, c.copy("COPY newsletter_vote (subscriber_id, paper_id, value, created_at, updated_at) FROM STDIN") as copy:
            for sid in ids:
                # Votes as a reader with a taste casts them: More on its first topic's papers.
                favourite = set(by_topic[chosen[sid][0]])
                mine = sorted({p for t in chosen[sid] for p in by_topic[t]})
                for paper_id in rng.sample(mine, 10) if len(mine) >= 10 else rng.sample(paper_ids, 10):
                    copy.write_row((sid, paper_id, 1 if paper_id in favourite else -1, now, now))
        with raw.cursor() as c, c.copy("COPY newsletter_followedauthor (subscriber_id, name, key, created_at) FROM STDIN") as copy:
            for sid in ids:
                name = rng.choice(names)
                copy.write_row((sid, name[:200], author_key(name), now))
        with raw.cursor() as c, c.copy("COPY newsletter_readerprofile (subscriber_id, version, signal_at, model) FROM STDIN") as copy:
            for sid in ids:
                copy.write_row((sid, 0, now, "{}"))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"seeded {readers:,} readers (10 votes, 1 follow, own words each) and a pool of {len(paper_ids)} papers "
          f"in {time.perf_counter() - started:.0f} s")


# --- phases (each in a child process) --------------------------------------------------------


def phase_train(args) -> dict:
    from newsletter.models import ReaderProfile
    from newsletter.personal import profiles

    baseline_rss = rss_mb()
    started, started_cpu = time.perf_counter(), cpu()
    counts = profiles.retrain_stale()
    seconds, cpu_seconds = time.perf_counter() - started, cpu() - started_cpu
    sizes = [len(json.dumps(m)) for m in ReaderProfile.objects.values_list("model", flat=True)[:1000]]
    return {"readers": counts["trained"], "with_signal": counts["with_signal"], "seconds": seconds, "cpu": cpu_seconds,
            "rss_before": baseline_rss, "peak_rss": peak_rss_mb(), "model_bytes": sum(sizes) / max(len(sizes), 1)}


def phase_read_only(args) -> dict:
    """The same batches of signal read as training reads them, nothing fitted: the floor."""
    from newsletter.models import FollowedAuthor, ReaderProfile, Vote
    from subscriptions.models import Subscriber

    ids = list(ReaderProfile.objects.order_by("subscriber_id").values_list("subscriber_id", flat=True))
    started = time.perf_counter()
    rows = 0
    for start in range(0, len(ids), 500):
        batch = ids[start : start + 500]
        rows += len(list(Vote.objects.filter(subscriber_id__in=batch).values_list("subscriber_id", "paper_id", "value")))
        rows += len(list(FollowedAuthor.objects.filter(subscriber_id__in=batch).values_list("subscriber_id", "key")))
        rows += len(list(Subscriber.objects.filter(pk__in=batch).values_list("pk", "interests")))
    return {"readers": len(ids), "seconds": time.perf_counter() - started, "rows": rows}


def phase_liblinear(args) -> dict:
    """scikit-learn's LogisticRegression (liblinear) on the same examples, for a sample."""
    import numpy as np
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    from newsletter.models import ReaderProfile
    from newsletter.personal import profiles

    sample = list(ReaderProfile.objects.order_by("subscriber_id").values_list("subscriber_id", flat=True)[: args.sample])
    captured = []
    fit = profiles.fit
    profiles.fit = lambda examples, background: captured.append((examples, background)) or fit(examples, background)
    try:
        profiles.train_batch(sample, profiles.background_papers())
    finally:
        profiles.fit = fit
    ours = liblinear = 0.0  # CPU seconds
    for examples, background in captured:
        # The same rows, labels and weights as fit() gives its solver, columns compacted alike.
        share = max(profiles.BACKGROUND_MIN, profiles.BACKGROUND_SHARE * len(examples.labels)) / background.shape[0]
        x = sparse.vstack([*examples.rows, background], format="csr")
        columns, compact = np.unique(x.indices, return_inverse=True)
        x = sparse.csr_matrix((x.data, compact.ravel(), x.indptr), shape=(x.shape[0], len(columns)))
        y = np.asarray(examples.labels + [0] * background.shape[0])
        w = np.asarray(examples.weights + [share] * background.shape[0])
        t = cpu()
        profiles.logistic_regression(x.astype(np.float64), y.astype(np.float64), w.astype(np.float64), profiles.C)
        ours += cpu() - t
        t = cpu()
        LogisticRegression(C=profiles.C, solver="liblinear").fit(x, y, sample_weight=w)
        liblinear += cpu() - t
    return {"readers": len(captured), "ours": ours, "liblinear": liblinear}


def phase_score(args) -> dict:
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from newsletter.digests import selection
    from newsletter.digests.ranking import get_ranking
    from subscriptions.models import Subscriber

    settings.DIGEST_RANKING = args.ranking
    pool = selection.paper_pool("daily")
    topics = selection.topics_of(Subscriber.objects.values_list("pk", flat=True))
    today = timezone.localdate()
    readers = [selection.Reader(sid, "daily", today, topic_ids, per_email)
               for sid, per_email in Subscriber.objects.order_by("pk").values_list("pk", "papers_per_email")
               for topic_ids in [topics.get(sid, ((), ()))[0]]]
    ranking = get_ranking()
    spent = {"prepare": 0.0, "order": 0.0, "notes": 0.0}
    spent_cpu = dict(spent)

    def timed(name, method):
        def call(*a, **k):
            t, c = time.perf_counter(), time.thread_time()
            try:
                return method(*a, **k)
            finally:
                spent[name] += time.perf_counter() - t
                spent_cpu[name] += time.thread_time() - c
        return call

    for name in spent:
        setattr(ranking, name, timed(name, getattr(ranking, name)))
    queries = {"n": 0}

    def count(execute, sql, params, many, context):
        queries["n"] += 1
        return execute(sql, params, many, context)

    selection.choose(readers[:10], {"daily": pool})  # the pool's features: once per process and scrape
    for name in spent:
        spent[name] = spent_cpu[name] = 0.0
    baseline_rss = rss_mb()
    chunk_times, chunk_cpu = [], []
    distinct = 0
    with connection.execute_wrapper(count):
        for start in range(0, len(readers), args.chunk):
            pool._chosen.clear()  # as a fresh worker process would
            t, c = time.perf_counter(), time.thread_time()
            chosen = selection.choose(readers[start : start + args.chunk], {"daily": pool})
            chunk_times.append(time.perf_counter() - t)
            chunk_cpu.append(time.thread_time() - c)
            distinct += len({(tuple(c), tuple(sorted(c.notes.items()))) for c in chosen})
    chunks = len(chunk_times)
    result = {
        "readers": len(readers), "chunks": chunks, "choose_per_chunk": sum(chunk_times) / chunks,
        "choose_cpu_per_chunk": sum(chunk_cpu) / chunks, "ranking_per_chunk": {k: v / chunks for k, v in spent.items()},
        "ranking_cpu_per_chunk": {k: v / chunks for k, v in spent_cpu.items()}, "queries_per_chunk": queries["n"] / chunks,
        "distinct_per_chunk": distinct / chunks, "pool": len(pool.paper_ids),
    }
    # The dispatcher's send order: every reader in one choose(), nothing sent considered.
    pool._chosen.clear()
    t = time.perf_counter()
    selection.choose(readers, {"daily": pool}, history=False)
    result.update(all_at_once=time.perf_counter() - t, rss_before=baseline_rss, peak_rss=peak_rss_mb())
    return result


PHASES = {"train": phase_train, "read": phase_read_only, "liblinear": phase_liblinear, "score": phase_score}


def child(argv) -> None:
    import django

    django.setup()
    import logging

    logging.disable(logging.INFO)
    parser = argparse.ArgumentParser()
    parser.add_argument("phase")
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=1000)
    parser.add_argument("--ranking", default="newsletter.personal.ranking.PersonalRanking")
    args = parser.parse_args(argv)
    print("RESULT " + json.dumps(PHASES[args.phase](args)), flush=True)


def run_child(database_url: str, *argv) -> dict:
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, __file__, "_phase", *argv], env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"phase {argv} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=1000, help="Readers trained with liblinear for comparison.")
    args = parser.parse_args()

    import django

    django.setup()
    import logging

    logging.disable(logging.INFO)
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"bench_{connection.settings_dict['NAME']}"
    config = setup_databases(verbosity=0, interactive=False, keepdb=False)
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    print(f"load average at start: {load_average()}")
    try:
        seed(args.readers)
        connection.close()
        read = run_child(url, "read")
        train = run_child(url, "train")
        sample = run_child(url, "liblinear", "--sample", str(args.sample))
        today = run_child(url, "score", "--chunk", str(args.chunk), "--ranking", "newsletter.digests.ranking.TopicScoreAndUpvotes")
        personal = run_child(url, "score", "--chunk", str(args.chunk))
    finally:
        connection.close()
        teardown_databases(config, verbosity=0)

    n = train["readers"]
    print(f"\n== training {n:,} readers (one process; {train['with_signal']:,} models with weights) ==")
    print(f"retrain_stale()                 {train['seconds']:8.1f} s wall, {train['cpu']:6.1f} s CPU   "
          f"{n / train['seconds']:6.0f} readers/s   peak RSS {train['peak_rss']:.0f} MB (started at {train['rss_before']:.0f} MB)")
    print(f"  reading the signal alone      {read['seconds']:8.1f} s wall                {read['readers'] / read['seconds']:6.0f} readers/s   (same batches, no fit)")
    per_ours = sample["ours"] / sample["readers"] * 1000
    per_lib = sample["liblinear"] / sample["readers"] * 1000
    print(f"  the solve alone, ours         {per_ours:8.2f} ms CPU/reader -> {per_ours * n / 1000:6.0f} s for {n:,}   (profiles.logistic_regression)")
    print(f"  the solve alone, liblinear    {per_lib:8.2f} ms CPU/reader -> {per_lib * n / 1000:6.0f} s for {n:,}   (same examples, sample of {sample['readers']:,})")
    print(f"  stored model                  {train['model_bytes']:8.0f} bytes of JSON per reader")

    print(f"\n== scoring {personal['readers']:,} readers against a pool of {personal['pool']} papers, chunks of {args.chunk} ==")
    print(f"{'per chunk of readers, ms (wall / CPU)':40s} {'PersonalRanking':>17s} {'TopicScoreAndUpvotes':>21s}")

    def both(wall, cpu_) -> str:
        return f"{wall * 1000:7.1f} / {cpu_ * 1000:6.1f}"

    print(f"{'choose()':40s} {both(personal['choose_per_chunk'], personal['choose_cpu_per_chunk']):>17s} "
          f"{both(today['choose_per_chunk'], today['choose_cpu_per_chunk']):>21s}")
    for part in ("prepare", "order", "notes"):
        print(f"{'  ' + part + '()':40s} {both(personal['ranking_per_chunk'][part], personal['ranking_cpu_per_chunk'][part]):>17s} "
              f"{both(today['ranking_per_chunk'][part], today['ranking_cpu_per_chunk'][part]):>21s}")
    ranking = sum(personal["ranking_per_chunk"].values()), sum(personal["ranking_cpu_per_chunk"].values())
    baseline = sum(today["ranking_per_chunk"].values()), sum(today["ranking_cpu_per_chunk"].values())
    print(f"{'  the ranking in all':40s} {both(*ranking):>17s} {both(*baseline):>21s}")
    print(f"{'queries per chunk':40s} {personal['queries_per_chunk']:17.1f} {today['queries_per_chunk']:21.1f}")
    print(f"{'distinct digests per chunk':40s} {personal['distinct_per_chunk']:17.0f} {today['distinct_per_chunk']:21.0f}")
    print(f"{'all readers in one choose() (s, wall)':40s} {personal['all_at_once']:17.1f} {today['all_at_once']:21.1f}")
    print(f"{'peak RSS (MB)':40s} {personal['peak_rss']:17.0f} {today['peak_rss']:21.0f}   (both start at ~{personal['rss_before']:.0f} MB)")
    total = personal["choose_per_chunk"] * personal["chunks"]
    print(f"\nscoring every reader in chunks: {total:.1f} s in one process ({personal['readers'] / total:,.0f} readers/s); "
          f"the ranking's share of a chunk of {args.chunk}: {ranking[0] * 1000:.0f} ms wall, {ranking[1] * 1000:.0f} ms CPU (target: well under 100 ms)")
    print(f"training every reader: {train['seconds'] / 60:.1f} min in one process (the daily window is 24 h; only readers with new signal retrain)")
    print(f"load average at the end: {load_average()}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["_phase"]:
        child(sys.argv[2:])
    else:
        main()
