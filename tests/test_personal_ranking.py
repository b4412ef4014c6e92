"""Issue 11 #3: the personal ranking. Each reader's model learns from votes (cast through the
real links of received digests), follows, seed papers and their own words; it reorders later
digests; with no signal the order is today's; one opt-in paper from outside the reader's
topics; retraining in a real Celery worker, only for readers with new signal. Real
PostgreSQL; digests sent by the real sender (locmem) unless a worker is named."""

import time
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from newsletter.digests import selection
from newsletter.models import Delivery, FollowedAuthor, ReaderProfile, SeedPaper, Vote
from newsletter.personal import profiles
from newsletter.personal.ranking import OUTSIDE_NOTE
from newsletter.personal.signals import reader_told_us
from newsletter.tasks.digests import dispatch_now

from .helpers import make_subscriber
from .support.personal import Mailbox, arxiv_ids_in, notes_in, plain_text

TODAY = "newsletter.digests.ranking.TopicScoreAndUpvotes"
PERSONAL = "newsletter.personal.ranking.PersonalRanking"

ROBOT = [
    ("Dexterous robot grasping from tactile feedback", "A robot arm learns grasping and in-hand manipulation of household objects from tactile sensors."),
    ("Tactile manipulation policies for robot hands", "We train manipulation policies for a multi-fingered robot hand with tactile sensing and grasping rewards."),
    ("Grasping unknown objects with a tactile robot gripper", "A tactile gripper lets the robot grasp unseen objects; manipulation succeeds on household objects."),
    ("Learning robot manipulation from tactile demonstrations", "Tactile demonstrations teach a robot arm grasping and manipulation skills for objects in homes."),
]
SPEECH = [
    ("Robust speech recognition in noisy rooms", "We transcribe speech in noisy audio with a recognition model trained on far-field recordings."),
    ("Speaker-aware speech recognition for meetings", "Meeting audio with overlapping speakers is transcribed by speech recognition with speaker embeddings."),
    ("Noisy audio transcription with self-supervised speech models", "Self-supervised speech representations make recognition of noisy audio transcription more robust."),
    ("Streaming speech recognition on phones", "A streaming recognition model transcribes speech audio on phones with low latency and noise."),
]


# Older papers of other subjects: the background every reader's model is trained against.
FILLER = [
    ("Sparse mixture of experts at scale", "Routing tokens to experts cuts training compute of large language models."),
    ("Video diffusion with temporal attention", "A diffusion model generates coherent video clips with temporal attention layers."),
    ("Retrieval-augmented question answering", "Retrieved passages ground the answers of a language model to open questions."),
    ("Protein structure prediction with transformers", "A transformer predicts protein folds from amino acid sequences."),
    ("Quantised inference on edge devices", "Four-bit weights make inference of language models fast on small devices."),
    ("Reward models for preference alignment", "Human preference data trains reward models that align chat assistants."),
    ("Neural radiance fields for city scenes", "Radiance fields reconstruct large outdoor scenes from street images."),
    ("Benchmarking code generation agents", "Agents that write code are evaluated on repository-level programming tasks."),
    ("Multilingual machine translation for low-resource languages", "Translation quality improves for languages with little parallel text."),
    ("Mathematical reasoning with verifiers", "A verifier scores reasoning chains to solve competition mathematics problems."),
    ("Image editing from text instructions", "An image generation model edits photos following written instructions."),
    ("Time series forecasting with foundation models", "A pretrained model forecasts sensor and sales time series zero-shot."),
]


@pytest.fixture
def background(make_scrape):
    """Yesterday's scrape of papers on other subjects (the store a real site would have)."""
    return make_scrape([paper(100 + n, title, abstract, 10, {"multimodal": 0.8}) for n, (title, abstract) in enumerate(FILLER)],
                       started_at=timezone.now() - timedelta(days=2))


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run what waits for the commit (the retraining task, eagerly here) as a real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def paper(n, title, abstract, upvotes, topics=None, **fields):
    fields.setdefault("authors", [f"Author {n}"])
    return dict(arxiv_id=f"2611.5{n:04d}", title=title, abstract=abstract, upvotes=upvotes, topics=topics or {"agents": 0.9}, **fields)


def ids(*numbers):
    return [f"2611.5{n:04d}" for n in numbers]


def digest_of(email) -> list[str]:
    [message] = [m for m in mail.outbox if m.to == [email]]
    return arxiv_ids_in(plain_text(message))


def choose(readers, ranking=PERSONAL, settings=None):
    settings.DIGEST_RANKING = ranking
    pool = selection.paper_pool("daily")
    as_readers = [
        selection.Reader(r.pk, "daily", timezone.localdate(), tuple(sorted(r.topics.values_list("pk", flat=True))), r.papers_per_email)
        for r in readers
    ]
    return selection.choose(as_readers, {"daily": pool}), pool


def arxiv(pool_choice) -> list[str]:
    from newsletter.models import Paper

    by_pk = dict(Paper.objects.values_list("pk", "arxiv_id"))
    return [by_pk[pk] for pk in pool_choice]


# --- with no signal: today's order, exactly ---------------------------------------------------


def test_with_no_signal_the_order_is_exactly_todays(settings, topics, make_scrape, background, committed):
    # Ties on score and upvotes, two topics, several scores: every tie-break of today's order.
    make_scrape([
        paper(1, *ROBOT[0], 50, {"agents": 0.9}), paper(2, *SPEECH[0], 7, {"agents": 0.4, "code": 0.95}),
        paper(3, *ROBOT[1], 50, {"agents": 0.9}), paper(4, *SPEECH[1], 400, {"code": 0.5}),
        paper(5, *ROBOT[2], 0, {"agents": 0.7}), paper(6, *SPEECH[2], 3, {"agents": 0.41, "multimodal": 0.9}),
    ], started_at=timezone.now() - timedelta(hours=1))
    plain = make_subscriber("plain@example.org", topics=[topics["agents"], topics["code"]])
    opted_in = make_subscriber("outside@example.org", topics=[topics["agents"]], outside_topics=True, papers_per_email=3)
    trained_empty = make_subscriber("empty@example.org", topics=[topics["code"], topics["agents"]], papers_per_email=4)
    with committed():
        reader_told_us(trained_empty.pk)  # told us something that is gone again: trained, no weights
    assert ReaderProfile.objects.get(subscriber=trained_empty).trained_at is not None
    readers = [plain, opted_in, trained_empty]

    today, _ = choose(readers, TODAY, settings)
    personal, pool = choose(readers, PERSONAL, settings)
    assert [tuple(c) for c in personal] == [tuple(c) for c in today]
    assert [c.notes for c in personal] == [{}, {}, {}]
    assert arxiv(personal[0]) == ids(1, 3, 4, 2, 6, 5)
    assert arxiv(personal[1]) == ids(1, 3, 2)  # no paper from outside without a model

    dispatch_now(ignore_hour=True)
    assert digest_of(plain.email) == ids(1, 3, 4, 2, 6, 5)


def test_with_no_signal_many_readers_and_papers_get_todays_order(settings, topics, make_scrape):
    import random

    rng = random.Random(11)
    slugs = ["agents", "code", "multimodal", "robotics", "efficiency"]
    make_scrape([
        paper(n, f"Paper {n} on {' '.join(rng.sample(slugs, 2))}", f"Abstract {n}.", rng.choice((0, 1, 5, 5, 40, 300)),
              {slug: rng.choice((0.41, 0.5, 0.77, 0.9)) for slug in rng.sample(slugs, rng.randint(1, 3))})
        for n in range(1, 41)
    ], started_at=timezone.now() - timedelta(hours=1))
    readers = [
        make_subscriber(f"n{n}@example.org", topics=[topics[s] for s in rng.sample(slugs, rng.randint(1, 4))],
                        papers_per_email=rng.choice((3, 5, 10, 50)), outside_topics=bool(n % 2))
        for n in range(25)
    ]
    today, _ = choose(readers, TODAY, settings)
    personal, _ = choose(readers, PERSONAL, settings)
    assert [tuple(c) for c in personal] == [tuple(c) for c in today]
    assert all(c.notes == {} for c in personal) and sum(map(len, today)) > 100


# --- votes through the real links change later digests ---------------------------------------


def test_votes_through_the_links_reorder_a_later_digest_as_they_say(topics, make_scrape, background, committed):
    now = timezone.now()
    make_scrape([paper(1, *SPEECH[0], 40), paper(2, *ROBOT[0], 30), paper(3, *SPEECH[1], 20), paper(4, *ROBOT[1], 10)],
                started_at=now - timedelta(days=1, hours=1))
    voter = make_subscriber("voter@example.org", topics=[topics["agents"]])
    twin = make_subscriber("twin@example.org", topics=[topics["agents"]])
    dispatch_now(now=now - timedelta(days=1), ignore_hour=True)
    day_one = digest_of(voter.email)
    assert day_one == digest_of(twin.email) == ids(1, 2, 3, 4)

    [message] = [m for m in mail.outbox if m.to == [voter.email]]
    with committed():
        cast = Mailbox("10.0.0.1").vote(plain_text(message), {ids(2)[0]: "more", ids(4)[0]: "more", ids(1)[0]: "less", ids(3)[0]: "less"})
    assert cast == 4
    assert dict(Vote.objects.filter(subscriber=voter).values_list("paper__arxiv_id", "value")) == {
        ids(2)[0]: 1, ids(4)[0]: 1, ids(1)[0]: -1, ids(3)[0]: -1}
    profile = ReaderProfile.objects.get(subscriber=voter)  # trained on commit (tasks run eagerly here)
    assert profile.trained_at >= profile.signal_at and profile.model["liked"] == 2 and profile.model["disliked"] == 2

    # The next day's papers: today's order puts speech first (more upvotes), the voter's robots.
    mail.outbox.clear()
    make_scrape([paper(11, *SPEECH[2], 90), paper(12, *SPEECH[3], 80), paper(13, *ROBOT[2], 15), paper(14, *ROBOT[3], 12)],
                started_at=now - timedelta(hours=1))
    dispatch_now(now=now, ignore_hour=True)
    assert digest_of(twin.email) == ids(11, 12, 13, 14)
    assert digest_of(voter.email) == ids(13, 14, 11, 12)

    # Changing their mind: undoing and reversing the votes brings speech back first.
    with committed():
        cast = Mailbox("10.0.0.1").vote(plain_text(message), {ids(2)[0]: "less", ids(4)[0]: "less", ids(1)[0]: "more", ids(3)[0]: "more"})
    assert cast == 4
    mail.outbox.clear()
    Delivery.objects.filter(digest_date=timezone.localdate(now)).delete()
    dispatch_now(now=now, ignore_hour=True)
    assert set(digest_of(voter.email)[:2]) == set(ids(11, 12))


def test_votes_whose_retraining_has_not_run_yet_still_reorder_the_next_digest(settings, topics, make_scrape, background):
    """The task a vote queues may still be waiting (a busy or restarted worker) when the
    digest goes out: the sender trains that reader first. Without a commit here, the on-commit
    task never runs."""
    now = timezone.now()
    make_scrape([paper(1, *SPEECH[0], 40), paper(2, *ROBOT[0], 30), paper(3, *SPEECH[1], 20), paper(4, *ROBOT[1], 10)],
                started_at=now - timedelta(days=1, hours=1))
    voter = make_subscriber("voter@example.org", topics=[topics["agents"]])
    dispatch_now(now=now - timedelta(days=1), ignore_hour=True)
    [message] = [m for m in mail.outbox if m.to == [voter.email]]
    assert Mailbox("10.0.0.1").vote(plain_text(message), {ids(2)[0]: "more", ids(4)[0]: "more", ids(1)[0]: "less",
                                                          ids(3)[0]: "less"}) == 4
    profile = ReaderProfile.objects.get(subscriber=voter)
    assert profile.trained_at is None  # the queued retraining has not run

    mail.outbox.clear()
    make_scrape([paper(11, *SPEECH[2], 90), paper(12, *SPEECH[3], 80), paper(13, *ROBOT[2], 15), paper(14, *ROBOT[3], 12)],
                started_at=now - timedelta(hours=1))
    settings.PERSONAL_TRAIN_BEFORE_SENDING = 0  # off: the stored (untrained) model, today's order
    dispatch_now(now=now, ignore_hour=True)
    assert digest_of(voter.email) == ids(11, 12, 13, 14)
    mail.outbox.clear()
    Delivery.objects.filter(digest_date=timezone.localdate(now)).delete()
    settings.PERSONAL_TRAIN_BEFORE_SENDING = 200
    dispatch_now(now=now, ignore_hour=True)
    # Robots first, as the votes say (trained now, against today's papers too as background).
    assert set(digest_of(voter.email)[:2]) == set(ids(13, 14))
    profile.refresh_from_db()
    assert profile.trained_at >= profile.signal_at and profile.model["liked"] == 2


# --- follows, seed papers and the reader's own words count from day one -----------------------


def test_follows_seed_papers_and_own_words_count_from_day_one(settings, topics, make_scrape, background, committed):
    old = make_scrape([paper(20, *ROBOT[3], 5)], started_at=timezone.now() - timedelta(days=9))
    assert old.status == "ok"
    make_scrape([
        paper(1, *SPEECH[0], 90), paper(2, "A survey of benchmark design", "We survey how benchmarks are designed and used.", 60),
        paper(3, *ROBOT[0], 30), paper(4, "Scaling laws revisited", "Loss follows a power law in compute.", 20,
                                       authors=["Grace  Hopper", "Alan Turing"]),
    ], started_at=timezone.now() - timedelta(hours=1))
    agents = [topics["agents"]]
    nobody = make_subscriber("nobody@example.org", topics=agents)
    follower = make_subscriber("follower@example.org", topics=agents)
    seeded = make_subscriber("seeded@example.org", topics=agents)
    in_words = make_subscriber("words@example.org", topics=agents, interests="Speech recognition of noisy audio, please")
    robots_in_words = make_subscriber("robots@example.org", topics=agents, interests="robot grasping and tactile manipulation")
    with committed():  # as the preferences page saves them
        FollowedAuthor.objects.create(subscriber=follower, name="grace hopper")
        SeedPaper.objects.create(subscriber=seeded, arxiv_id=ids(20)[0], paper_id=old.ranks.get().paper_id)
        for reader in (follower, seeded, in_words, robots_in_words):
            reader_told_us(reader.pk)

    chosen, pool = choose([nobody, follower, seeded, in_words, robots_in_words], PERSONAL, settings)
    today = ids(1, 2, 3, 4)
    assert arxiv(chosen[0]) == today
    assert arxiv(chosen[1])[0] == ids(4)[0]
    assert chosen[1].notes == {pool_id(4): "Follows: Grace  Hopper"}
    assert arxiv(chosen[2]).index(ids(3)[0]) < today.index(ids(3)[0])
    assert chosen[2].notes == {pool_id(3): f"Because you liked: {ROBOT[3][0]}"}
    assert arxiv(chosen[3])[0] == ids(1)[0] and arxiv(chosen[3]) != arxiv(chosen[4])
    assert arxiv(chosen[4])[0] == ids(3)[0]
    assert chosen[3].notes == chosen[4].notes == {}


def pool_id(n) -> int:
    from newsletter.models import Paper

    return Paper.objects.get(arxiv_id=ids(n)[0]).pk


# --- the reason shown: what moved the paper up -----------------------------------------------

CODE = {"github_repo": "https://github.com/example/code"}


def voted(reader, votes, committed) -> None:
    """`votes`: paper number -> 1 ("More like this") or -1, then trained as after a vote."""
    with committed():
        for n, value in votes.items():
            Vote.objects.create(subscriber=reader, paper_id=pool_id(n), value=value)
        reader_told_us(reader.pk)


def test_a_reader_who_liked_papers_with_code_is_told_so_not_of_an_unrelated_liked_paper(settings, topics, make_scrape, background, committed):
    now = timezone.now()
    # Liked: a robot and a speech paper with code; not liked: the same subjects without.
    make_scrape([paper(1, *ROBOT[0], 40, **CODE), paper(2, *SPEECH[0], 30, **CODE), paper(3, *ROBOT[1], 20), paper(4, *SPEECH[1], 10)],
                started_at=now - timedelta(days=1))
    reader = make_subscriber("code@example.org", topics=[topics["agents"], topics["code"]])
    voted(reader, {1: 1, 2: 1, 3: -1, 4: -1}, committed)
    protein, forecast = FILLER[3], FILLER[11]
    make_scrape([paper(11, *protein, 30, **CODE), paper(12, *forecast, 20, **CODE), paper(13, *ROBOT[2], 10)], started_at=now - timedelta(hours=1))

    chosen, pool = choose([reader], PERSONAL, settings)
    assert arxiv(chosen[0])[:2] == ids(11, 12)
    # The unrelated papers with code say so; the robot paper without reads like a liked one.
    assert chosen[0].notes == {pool_id(11): "Has code, like papers you liked", pool_id(12): "Has code, like papers you liked",
                               pool_id(13): f"Because you liked: {ROBOT[0][0]}"}

    # The notes come with the papers in the email.
    dispatch_now(ignore_hour=True)
    [message] = [m for m in mail.outbox if m.to == [reader.email]]
    assert notes_in(plain_text(message))[ids(11)[0]] == "Has code, like papers you liked"


def test_a_paper_that_reads_like_a_liked_one_names_it_and_one_the_model_disfavours_has_no_note(settings, topics, make_scrape, background, committed):
    now = timezone.now()
    # Liked: a robot and a speech paper; not liked: two on quantisation (all in one topic).
    make_scrape([
        paper(1, *ROBOT[0], 40), paper(2, *SPEECH[0], 30),
        paper(3, *FILLER[4], 20), paper(4, "Four-bit quantisation of language models", "Quantised weights speed up inference on small devices.", 10),
    ], started_at=now - timedelta(days=1))
    reader = make_subscriber("words@example.org", topics=[topics["agents"], topics["code"]])
    voted(reader, {1: 1, 2: 1, 3: -1, 4: -1}, committed)
    make_scrape([
        paper(11, *ROBOT[2], 10), paper(12, *SPEECH[2], 10),
        # About what the reader did not like (its many upvotes do not make up for it).
        paper(13, "Quantised inference of language models on phones", "Four-bit quantised weights make inference fast on small devices.", 90),
    ], started_at=now - timedelta(hours=1))

    chosen, pool = choose([reader], PERSONAL, settings)
    assert arxiv(chosen[0]) == ids(11, 12, 13)  # the model moved the last one down
    assert chosen[0].notes == {pool_id(11): f"Because you liked: {ROBOT[0][0]}", pool_id(12): f"Because you liked: {SPEECH[0][0]}"}


def test_a_model_stored_in_the_old_format_still_ranks_names_no_liked_paper_and_is_retrained(settings, topics, make_scrape, background, committed):
    import importlib

    from django.apps import apps

    now = timezone.now()
    make_scrape([paper(1, *ROBOT[0], 40), paper(2, *SPEECH[0], 30)], started_at=now - timedelta(days=1))
    reader = make_subscriber("old@example.org", topics=[topics["agents"]])
    voted(reader, {1: 1, 2: -1}, committed)
    make_scrape([paper(11, *SPEECH[2], 90), paper(12, *ROBOT[2], 10)], started_at=now - timedelta(hours=1))
    chosen, _ = choose([reader], PERSONAL, settings)
    assert arxiv(chosen[0]) == ids(12, 11) and chosen[0].notes == {pool_id(12): f"Because you liked: {ROBOT[0][0]}"}

    # As format 1 stored it: the same weights, an exemplar of what the model favoured.
    profile = ReaderProfile.objects.get(subscriber=reader)
    old = {**profile.model, "format": 1}
    old["likes"] = {**old["likes"], "w": profiles.pack([7, 8], [0.6, 0.8]), "sizes": [2]}
    ReaderProfile.objects.filter(pk=profile.pk).update(model=old)
    stored = profiles.StoredModel.read(old)
    assert stored is not None and len(stored.columns) and stored.like_titles == []
    chosen, _ = choose([reader], PERSONAL, settings)
    assert arxiv(chosen[0]) == ids(12, 11) and chosen[0].notes == {}

    # The migration marks it stale; the hourly sweep trains it in the current format.
    importlib.import_module("newsletter.migrations.0009_retrain_old_reader_models").mark_stale(apps, None)
    assert profiles.retrain_stale()["trained"] == 1
    assert ReaderProfile.objects.get(pk=profile.pk).model["format"] == profiles.FORMAT
    chosen, _ = choose([reader], PERSONAL, settings)
    assert chosen[0].notes == {pool_id(12): f"Because you liked: {ROBOT[0][0]}"}


# --- outside your topics: opt-in, one paper, marked -------------------------------------------


def test_one_paper_from_outside_the_topics_only_when_opted_in_and_marked(settings, topics, make_scrape, background, committed):
    now = timezone.now()
    make_scrape([paper(1, *ROBOT[0], 40), paper(2, *SPEECH[0], 30), paper(3, *ROBOT[1], 20), paper(4, *SPEECH[1], 10)],
                started_at=now - timedelta(days=1))
    agents = [topics["agents"]]
    opted_in = make_subscriber("in@example.org", topics=agents, outside_topics=True, papers_per_email=3)
    not_opted = make_subscriber("out@example.org", topics=agents, papers_per_email=3)
    with committed():  # yesterday's votes: robots yes, speech no
        for reader in (opted_in, not_opted):
            for n, value in ((1, 1), (3, 1), (2, -1), (4, -1)):
                Vote.objects.create(subscriber=reader, paper_id=pool_id(n), value=value)
            reader_told_us(reader.pk)
    make_scrape([
        paper(11, "Scaling laws revisited", "Loss follows a power law in compute and data.", 40),
        paper(12, *SPEECH[2], 30), paper(13, *ROBOT[2], 20),
        paper(14, "A survey of benchmark design", "We survey how benchmarks are designed and used.", 10),
        # Outside the readers' topics: a robot paper, and a speech paper with many upvotes.
        paper(15, *ROBOT[3], 5, {"robotics": 0.9}), paper(16, *SPEECH[3], 500, {"speech-audio": 0.9}),
    ], started_at=now - timedelta(hours=1))

    chosen, pool = choose([opted_in, not_opted], PERSONAL, settings)
    assert arxiv(chosen[1])[0] == ids(13)[0] and len(chosen[1]) == 3
    assert not set(arxiv(chosen[1])) & set(ids(15, 16)) and OUTSIDE_NOTE not in chosen[1].notes.values()
    # The last place shown goes to the robot paper from outside, marked; never the speech one.
    assert arxiv(chosen[0]) == arxiv(chosen[1])[:2] + ids(15)
    assert chosen[0].notes[pool_id(15)] == OUTSIDE_NOTE
    assert list(chosen[0].notes.values()).count(OUTSIDE_NOTE) == 1

    # Once sent, it is not offered again, and the speech paper is no substitute.
    dispatch_now(ignore_hour=True)
    assert digest_of(opted_in.email) == arxiv(chosen[0])
    chosen, _ = choose([opted_in], PERSONAL, settings)
    assert OUTSIDE_NOTE not in chosen[0].notes.values() and not set(arxiv(chosen[0])) & set(ids(15, 16))


# --- training: only what is stale, in batches, never over a newer model -----------------------


def test_only_stale_profiles_are_retrained(topics, make_scrape):
    make_scrape([paper(1, *ROBOT[0], 40), paper(2, *SPEECH[0], 30)], started_at=timezone.now() - timedelta(hours=1))
    readers = [make_subscriber(f"r{n}@example.org", topics=[topics["agents"]], interests=f"robot grasping {n}") for n in range(3)]
    for reader in readers:
        ReaderProfile.objects.create(subscriber=reader)
    counts = profiles.retrain_stale()
    assert (counts["stale"], counts["trained"], counts["with_signal"]) == (3, 3, 3)
    versions = dict(ReaderProfile.objects.values_list("subscriber_id", "version"))
    assert set(versions.values()) == {1}
    assert profiles.retrain_stale()["stale"] == 0

    Vote.objects.create(subscriber=readers[1], paper_id=pool_id(2), value=Vote.LESS)
    ReaderProfile.objects.filter(subscriber=readers[1]).update(signal_at=timezone.now())
    assert profiles.retrain_stale([readers[0].pk, readers[2].pk])["stale"] == 0
    counts = profiles.retrain_stale()
    assert (counts["stale"], counts["trained"]) == (1, 1)
    assert dict(ReaderProfile.objects.values_list("subscriber_id", "version")) == {**versions, readers[1].pk: 2}
    assert ReaderProfile.objects.get(subscriber=readers[1]).model["disliked"] == 1

    # A training that started before the stored one never replaces it.
    newer = ReaderProfile.objects.get(subscriber=readers[0])
    ReaderProfile.objects.filter(pk=newer.pk).update(trained_at=timezone.now() + timedelta(minutes=5))
    written, _ = profiles.train_batch([readers[0].pk], profiles.background_papers())
    assert written == 0 and ReaderProfile.objects.get(pk=newer.pk).version == 1


def test_ranking_a_chunk_costs_the_same_queries_for_5_or_50_readers(settings, topics, make_scrape, background, committed):
    make_scrape([paper(n, *(ROBOT + SPEECH)[n % 8], 10 * n) for n in range(1, 9)], started_at=timezone.now() - timedelta(hours=1))
    readers = []
    with committed():
        for n in range(50):
            reader = make_subscriber(f"q{n}@example.org", topics=[topics["agents"]], outside_topics=bool(n % 2),
                                     interests="robot grasping" if n % 3 else "speech audio")
            FollowedAuthor.objects.create(subscriber=reader, name=f"Author {n % 8 + 1}")
            reader_told_us(reader.pk)
            readers.append(selection.Reader(reader.pk, "daily", timezone.localdate(), (topics["agents"].pk,), 10))
    settings.DIGEST_RANKING = PERSONAL
    pool = selection.paper_pool("daily")
    selection.choose(readers, {"daily": pool})  # the pool's features, once per process

    def queries(some) -> tuple[int, list]:
        pool._chosen.clear()
        with CaptureQueriesContext(connection) as captured:
            chosen = selection.choose(some, {"daily": pool})
        return len(captured), chosen

    few, chosen_few = queries(readers[:5])
    many, chosen_many = queries(readers)
    assert few == many <= 4
    assert chosen_many[:5] == chosen_few
    assert len({tuple(c) for c in chosen_many}) > 2
    assert all(any(note.startswith("Follows: Author") for note in c.notes.values()) for c in chosen_many)


# --- retraining in a real worker -----------------------------------------------------------


@pytest.mark.worker
def test_a_vote_retrains_the_reader_in_a_real_worker(celery_worker, topics, make_scrape):
    make_scrape([paper(1, *ROBOT[0], 40), paper(2, *SPEECH[0], 30)], started_at=timezone.now() - timedelta(hours=1))
    reader = make_subscriber("worker@example.org", topics=[topics["agents"]])
    ReaderProfile.objects.create(subscriber=reader, trained_at=timezone.now())  # trained, nothing new since
    Vote.objects.create(subscriber=reader, paper_id=pool_id(1), value=Vote.MORE)
    reader_told_us(reader.pk)  # autocommit: queued to the worker at once

    deadline = time.monotonic() + 60
    profile = ReaderProfile.objects.get(subscriber=reader)
    while time.monotonic() < deadline and profile.version == 0:
        time.sleep(0.2)
        profile.refresh_from_db()
    assert profile.version == 1, celery_worker.output()[-3000:]
    assert profile.trained_at >= profile.signal_at
    assert profile.model["liked"] == 1 and profile.model["w"]
    assert profile.model["likes"]["titles"] == [ROBOT[0][0]]
    assert "newsletter.tasks.personal.retrain_readers" in celery_worker.output()
    assert "succeeded" in celery_worker.output()
