"""The labelled papers of tests/fixtures/relevance/ and how well a topic assignment matches
them: shared by tests/test_topics.py and bench/relevance.py."""

import json
from pathlib import Path

LABELS = json.loads((Path(__file__).resolve().parent.parent / "fixtures" / "relevance" / "labels.json").read_text())


def measure(predicted: dict, labels=LABELS) -> dict:
    """predicted: arxiv id -> set of topic slugs. Micro P/R/F1, primary share, papers with none,
    and per topic (tp, fp, fn)."""
    tp = fp = fn = primary = none = 0
    per_topic: dict[str, list[int]] = {}
    for label in labels:
        got, gold = predicted.get(label["arxiv_id"], set()), set(label["topics"])
        tp, fp, fn = tp + len(got & gold), fp + len(got - gold), fn + len(gold - got)
        for slug in got | gold:
            counts = per_topic.setdefault(slug, [0, 0, 0])
            counts[0 if slug in got & gold else 1 if slug in got else 2] += 1
        primary += bool(label["primary"]) and label["primary"] in got
        none += not got
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    with_primary = sum(1 for label in labels if label["primary"])
    return {"precision": precision, "recall": recall, "f1": f1, "primary": primary / with_primary, "no_topic": none, "per_topic": per_topic}
