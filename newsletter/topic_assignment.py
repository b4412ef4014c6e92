"""Topic assignment in the database: which trained state of the topic model is in use, training
a new one (newsletter.tasks.topics.retrain_topic_model queues it when topics or examples
change), storing each paper's topics with their evidence, and the short "why" a digest shows.

A trained state is a TopicClassifier row with a version; the newest is used. Until the first
one exists, the first scoring stores the state shipped with the code
(newsletter/topic_model_default.json, trained on the seed papers and the curated topics), or
trains one if the topics are no longer the curated ones. The topics themselves
are read afresh for every batch, so an edited or added topic counts at once: its keywords and
description are evidence without any training."""

import logging
import time

from django.db import IntegrityError, transaction
from django.db.models import Max

from newsletter.models import Paper, PaperTopicScore, TopicClassifier, TopicExample

from . import topic_model

logger = logging.getLogger(__name__)

# Process caches: the trained state of a TopicClassifier row (by pk), and states trained here
# (by fingerprint), so identical training is never repeated in one process.
_LOADED: dict[tuple[int, str], topic_model.TrainedState] = {}
_TRAINED: dict[str, topic_model.TrainedState] = {}


def active_topics():
    from subscriptions.models import Topic

    return list(Topic.objects.filter(active=True).order_by("display_order", "name", "pk"))


def training_examples(exclude_seed=()) -> list[topic_model.Example]:
    """The seed papers plus every operator mark ("teach this topic"); a mark on a seed paper
    overrides its seed label for that topic."""
    examples = topic_model.seed_examples(exclude=exclude_seed)
    by_arxiv_id = {e.paper.arxiv_id: e for e in examples}
    marks = TopicExample.objects.select_related("paper", "topic").order_by("paper_id", "topic_id")
    for mark in marks:
        example = by_arxiv_id.get(mark.paper.arxiv_id)
        if example is None:
            example = by_arxiv_id[mark.paper.arxiv_id] = topic_model.Example(paper=mark.paper, labels={}, source="operator")
            examples.append(example)
        example.labels[mark.topic.slug] = mark.belongs
    return examples


def retrain(reason: str = "", exclude_seed=()) -> TopicClassifier:
    """Train on the current topics and examples and store the result as the newest version."""
    topics = active_topics()
    examples = training_examples(exclude_seed)
    fingerprint = topic_model.fingerprint(topics, examples)
    started = time.monotonic()
    state = _TRAINED.get(fingerprint)
    if state is None:
        shipped = topic_model.shipped_default()
        if shipped and shipped[0] == fingerprint:
            state = shipped[1]
        else:
            state = topic_model.train(topics, examples)
        _TRAINED[fingerprint] = state
    marks = TopicExample.objects.values_list("topic__slug", "belongs")
    per_topic: dict[str, dict[str, int]] = {}
    for slug, belongs in marks:
        counts = per_topic.setdefault(slug, {"in": 0, "out": 0})
        counts["in" if belongs else "out"] += 1
    trained_on = {
        "seed_papers": sum(e.source == "seed" for e in examples),
        "operator_examples": sum(sum(c.values()) for c in per_topic.values()),
        "topics": per_topic,
        "active_topics": [t.slug for t in topics],
        "classifiers": sorted(state.classifiers),
        "seconds": round(time.monotonic() - started, 2),
        "reason": reason,
    }
    for _ in range(5):  # two trainings at once: the later takes the next version
        version = (TopicClassifier.objects.aggregate(v=Max("version"))["v"] or 0) + 1
        try:
            with transaction.atomic():
                row = TopicClassifier.objects.create(version=version, fingerprint=fingerprint, trained_on=trained_on, state=state.to_json())
            break
        except IntegrityError:
            continue
    else:
        raise RuntimeError("could not store the trained topic model")
    _LOADED[row.pk, row.fingerprint] = state
    logger.info("topic model v%s trained on %s examples (%s)", row.version, len(examples), reason or "no reason given")
    return row


def current() -> tuple[TopicClassifier, topic_model.TrainedState]:
    """The newest trained version and its state (trained now if there is none)."""
    newest = TopicClassifier.objects.order_by("-version").only("pk", "version", "trained_at", "fingerprint").first()
    if newest is None:
        newest = retrain(reason="first use")
    state = _LOADED.get((newest.pk, newest.fingerprint))
    if state is None:
        try:
            state = topic_model.TrainedState.from_json(TopicClassifier.objects.values_list("state", flat=True).get(pk=newest.pk))
        except ValueError:  # stored by an older version of the code: its features differ
            newest = retrain(reason=f"format {topic_model.FORMAT}")
            state = _LOADED[newest.pk, newest.fingerprint]
        _LOADED[newest.pk, newest.fingerprint] = state
    return newest, state


def scorer() -> tuple[TopicClassifier, topic_model.TopicScorer]:
    classifier, state = current()
    return classifier, topic_model.TopicScorer(active_topics(), state)


def taught_marks(paper_ids) -> dict[int, dict[int, bool]]:
    """paper id -> {topic id: belongs} for the operator's marks on these papers."""
    marks: dict[int, dict[int, bool]] = {}
    rows = TopicExample.objects.filter(paper_id__in=paper_ids).values_list("paper_id", "topic_id", "belongs")
    for paper_id, topic_id, belongs in rows:
        marks.setdefault(paper_id, {})[topic_id] = belongs
    return marks


def rows_for(paper, scorer_: topic_model.TopicScorer, version: int, taught=None) -> list[PaperTopicScore]:
    rows = []
    for a in scorer_.assess(paper, taught):
        evidence = {"terms": a.terms, "model": version}
        if a.taught is not None:
            evidence["taught"] = a.taught
        rows.append(PaperTopicScore(paper=paper, topic=a.topic, score=a.probability, matched=a.matched, primary=a.primary, evidence=evidence))
    return rows


@transaction.atomic
def assign_topics(papers) -> int:
    """(Re)assign topics to `papers` (saved Paper objects); returns the number of rows stored."""
    papers = list(papers)
    if not papers:
        return 0
    classifier, scorer_ = scorer()
    marks = taught_marks([p.pk for p in papers])
    rows = [row for paper in papers for row in rows_for(paper, scorer_, classifier.version, marks.get(paper.pk))]
    PaperTopicScore.objects.filter(paper__in=papers).delete()
    PaperTopicScore.objects.bulk_create(rows, batch_size=1000)
    return len(rows)


def rescore_all(chunk_size: int = 1000) -> int:
    """Assign topics again to every stored paper (after training or a topic change)."""
    fields = ["id", "arxiv_id", "title", "abstract", "ai_summary", "ai_keywords"]
    stored, batch = 0, []
    for paper in Paper.objects.only(*fields).order_by("pk").iterator(chunk_size=chunk_size):
        batch.append(paper)
        if len(batch) == chunk_size:
            stored += assign_topics(batch)
            batch = []
    return stored + assign_topics(batch)


# --- the "why" shown to readers -------------------------------------------------------------


def why(topic_name: str, matched, terms=(), limit: int = 3) -> str:
    """"LLM reasoning: test-time scaling, math reasoning": the topic and its strongest evidence
    (matched phrases first, then the classifier's words), or just the name."""
    reasons = list(dict.fromkeys([*matched, *terms]))[:limit]
    return f"{topic_name}: {', '.join(reasons)}" if reasons else topic_name


def reasons_for(paper_ids, topic_ids, limit: int = 3) -> dict[int, list[str]]:
    """paper id -> the "why" of each of the reader's topics (`topic_ids`) the paper belongs to,
    strongest first; one query. A digest shows the same, not every topic the paper has (built
    from its paper pool, selection.PaperPool.reasons, shortened by rendering.topic_why)."""
    reasons: dict[int, list[str]] = {}
    rows = (
        PaperTopicScore.objects.filter(paper_id__in=list(paper_ids), topic_id__in=list(topic_ids))
        .order_by("paper_id", "-primary", "-score", "topic__display_order")
        .values_list("paper_id", "topic__name", "matched", "evidence")
    )
    for paper_id, name, matched, evidence in rows:
        reasons.setdefault(paper_id, []).append(why(name, matched or [], (evidence or {}).get("terms", []), limit))
    return reasons
