"""Data the tests, chaos and bench runs start from: scrapes, subscribers, sent digests.
(Django must be set up; the models are imported where they are used.)"""

import random
import uuid
from datetime import timedelta

from .hf_server import SAMPLE_PAGE

SOURCE = "https://huggingface.co/papers/trending"


def make_subscriber(email="reader@example.org", status=None, topics=(), **fields):
    from subscriptions.models import Subscriber

    subscriber = Subscriber.objects.create(email=email, status=status or Subscriber.Status.ACTIVE, **fields)
    if topics:
        subscriber.topics.set(topics)
    return subscriber


def make_scrape(papers=(), status="ok", started_at=None, kind="trending", **run_fields):
    """Store a finished scrape run with papers and their topic scores, as the scraper would:
    `make_scrape([{"arxiv_id": ..., "title": ..., "topics": {"agents": 9.0}, ...}], status="ok")`."""
    from django.utils import timezone

    from newsletter.models import Paper, PaperRank, PaperTopicScore, ScrapeRun
    from subscriptions.models import Topic

    started_at = started_at or timezone.now()
    run = ScrapeRun.objects.create(
        source=SOURCE, kind=kind, status=status, started_at=started_at, finished_at=started_at,
        papers_found=len(papers), **run_fields,
    )
    topic_ids = dict(Topic.objects.values_list("slug", "pk"))
    for rank, spec in enumerate(papers, start=1):
        spec = dict(spec)
        scores = spec.pop("topics", {})
        paper, _ = Paper.objects.update_or_create(arxiv_id=spec.pop("arxiv_id"), defaults=spec)
        PaperRank.objects.create(run=run, paper=paper, rank=rank, upvotes=paper.upvotes)
        for slug, score in scores.items():
            PaperTopicScore.objects.update_or_create(paper=paper, topic_id=topic_ids[slug], defaults={"score": score})
    return run


def seed_scrape():
    """A good scrape of the sample trending page through the real scraper (parse, store,
    topic scores)."""
    from newsletter.scraping.run import scrape_file

    run = scrape_file(SAMPLE_PAGE)
    if run.status != run.Status.OK:
        raise RuntimeError(f"seed scrape failed: {run.error}")
    return run


def seed_subscribers(count: int, seed: int = 1, inactive_every: int = 40, prefix: str = "reader",
                     topic_sets: int = 8) -> tuple[set[str], set[str]]:
    """`count` subscribers, each with one of `topic_sets` sets of one to three topics that have
    papers in the newest good scrape (readers cluster on popular choices, so digests are
    shared) and 5 or 10 papers per email; every `inactive_every`-th one is unsubscribed or
    paused. Returns (addresses that must get exactly one digest, addresses that must get none)."""
    from django.utils import timezone

    from newsletter.digests import selection
    from newsletter.models import PaperRank, PaperTopicScore
    from subscriptions.models import Subscriber

    rng = random.Random(seed)
    _, data_run = selection.source_runs()
    papers = PaperRank.objects.filter(run=data_run).values("paper_id")
    topic_ids = sorted(set(
        PaperTopicScore.objects.filter(paper_id__in=papers)
        .values_list("topic_id", flat=True)
    ))
    if not topic_ids:
        raise RuntimeError("no topic has papers in the seed scrape")
    menu = [rng.sample(topic_ids, rng.randint(1, min(3, len(topic_ids)))) for _ in range(topic_sets)]
    now = timezone.now()
    expected, excluded = set(), set()
    rows, chosen = [], []
    for i in range(count):
        email = f"{prefix}{i}@example.org"
        status, paused = Subscriber.Status.ACTIVE, False
        if inactive_every and i % inactive_every == inactive_every - 1:
            if (i // inactive_every) % 2:
                paused = True
            else:
                status = Subscriber.Status.UNSUBSCRIBED
        (expected if status == Subscriber.Status.ACTIVE and not paused else excluded).add(email)
        rows.append(Subscriber(email=email, status=status, paused=paused, confirmed_at=now,
                               papers_per_email=rng.choice((5, 10))))
        chosen.append(rng.choice(menu))
    through = Subscriber.topics.through
    for start in range(0, count, 2000):
        batch = Subscriber.objects.bulk_create(rows[start : start + 2000])
        through.objects.bulk_create(
            [through(subscriber_id=s.pk, topic_id=t) for s, topics in zip(batch, chosen[start : start + 2000]) for t in topics]
        )
    return expected, excluded


def sent_digest(subscriber, esp: str) -> str:
    """Record a digest as sent to `subscriber` through `esp` (as the sender stores Anymail's
    message id) and return that id as the provider's webhook events carry it."""
    from django.utils import timezone

    from newsletter.models import Delivery

    if esp == "mailgun":  # the send API answers "<id>"; events carry the bare id
        carried = f"{timezone.now():%Y%m%d%H%M%S}.{uuid.uuid4().hex[:12]}@mg.example.org"
        stored = f"<{carried}>"
    else:  # Postmark's MessageID; SendGrid: Anymail's own anymail_id (a UUID) in custom_args
        stored = carried = str(uuid.uuid4())
    Delivery.objects.create(
        subscriber=subscriber, digest_date=timezone.now().date() - timedelta(days=subscriber.deliveries.count()),
        status=Delivery.Status.SENT, sent_at=timezone.now(), provider_message_id=stored,
    )
    return carried
