"""The reason shown with a paper of a personal digest: what moved it up for this reader.

A reader's model scores a paper as the sum of its weights times the paper's features
(features.py): its words, and tokens for its code, topics, authors and organisation. The
reason is a liked paper that reads like this one, if there is one; else the biggest single part
of that sum: one token, or the words as a whole.
- a liked paper: "Because you liked: <title>", the liked paper (exemplar) nearest by words
  alone, if it is close (LIKED_SIMILARITY), whatever else weighed more: it says most;
- one token: "Has code, like papers you liked", "You liked papers in <topic>" (not to a
  reader of that one topic: all their papers are in it), "... by <author>", "... from
  <organisation>";
- the words, with no liked paper close: no reason, as the topic evidence is shown already;
- none at all when the model's sum is not positive: the model did not move the paper up.
"Follows: <author>" and "Outside your topics" come first (ranking.py).

Per reader this is a few numpy operations over the papers shown: the products it reads are
made once per block of readers and pool (ranking.Block.tokens, .scored).
"""

import numpy as np

from .features import CODE_TOKEN

OUTSIDE = "Outside your topics"
FOLLOWS = "Follows: "
LIKED = "Because you liked: "
CODE = "Has code, like papers you liked"
TOPIC = "You liked papers in "
AUTHOR = "You liked papers by "
ORGANISATION = "You liked papers from "
# Every note starts with one of these (tests and benches tell the kinds apart by them).
PREFIXES = (LIKED, FOLLOWS, OUTSIDE, CODE, TOPIC, AUTHOR, ORGANISATION)

# Cosine of a paper's words to a liked paper's (exemplar) for "Because you liked". Papers' words
# rarely come closer than 0.25. In bench/personalisation.py's digests 91% of the papers at 0.15
# or more from their nearest liked paper share a labelled topic with it (62% of all do), and
# from 0.15 up the titles read alike ("UniPool: ... Mixture-of-Experts" <- "Mixture of Experts
# Made Intrinsically Interpretable"); below, mostly not ("TaskCraft: Automated Generation of
# Agentic Tasks" <- "VidProM: A Million-scale Real Prompt-Gallery Dataset", 0.14).
LIKED_SIMILARITY = 0.15


def token_note(token: str, paper_id: int, features, topic_names: dict[int, str], reader_topics=()) -> str:
    """The reason for a paper moved up mainly by one of its tokens ("" if it cannot be named,
    or says nothing: the topic of a reader of that topic alone, which all their papers are in)."""
    kind, _, key = token.partition(":")
    if token == CODE_TOKEN:
        return CODE
    if kind == "topic" and key.isdigit() and topic_names.get(int(key)) and tuple(reader_topics) != (int(key),):
        return TOPIC + topic_names[int(key)]
    if kind == "author" and key in features.authors.get(paper_id, {}):
        return AUTHOR + features.authors[paper_id][key]
    if kind == "org" and features.organisations.get(paper_id):
        return ORGANISATION + features.organisations[paper_id]
    return ""


def notes(paper_ids, view, score, token_weights, tokens, similarities, model, reader_topics=()) -> dict[int, str]:
    """paper id -> reason, for these papers of the pool `view` (ranking.PoolView) shown to a
    reader of `reader_topics` (topic ids), given the reader's model's `score` of every paper of
    the pool (no bias, no follows), `token_weights` and `tokens` (ranking.Block.tokens: the
    reader's weights of the pool's tokens, the pool's papers' values of them and their
    columns), the `similarities` of the reader's exemplars to every paper's words, and `model`
    (ranking.ReaderModel: the liked papers' ids and titles)."""
    rows = np.fromiter((view.row[pk] for pk in paper_ids), dtype=np.int64, count=len(paper_ids))
    total = score[rows]
    # Papers shown x the pool's tokens, after a column of zeros: argmax never fails, and where it
    # picks that column no token counted for more than nothing.
    products = np.zeros((len(rows), len(token_weights) + 1))
    products[:, 1:] = tokens.values[rows] * token_weights
    strongest = products.argmax(axis=1)
    best = products[np.arange(len(rows)), strongest]
    by_words = total - products.sum(axis=1)
    # The liked papers by their words' cosine (a row of -1 after them, for a reader with none);
    # a liked paper is not its own reason.
    close = np.full((len(model.likes) + 1, len(rows)), -1.0)
    close[:-1] = similarities[:, rows]
    close[:-1][np.asarray(model.liked_papers, dtype=np.int64)[:, None] == view.ids[rows][None, :]] = -1.0
    nearest = close.argmax(axis=0)
    closeness = close[nearest, np.arange(len(rows))]
    found = {}
    for n, paper_id in enumerate(paper_ids):
        if total[n] <= 0:
            continue  # the model did not move it up
        note = ""
        if closeness[n] >= LIKED_SIMILARITY:
            # A liked paper that reads like this one says most, whatever else weighed more.
            note = LIKED + model.titles[nearest[n]]
        elif best[n] > by_words[n]:  # so best[n] > 0: a token, not the column of zeros
            token = view.features.tokens.get(paper_id, {}).get(int(tokens.columns[strongest[n] - 1]), "")
            note = token_note(token, paper_id, view.features, view.topic_names, reader_topics)
        if note:
            found[paper_id] = note
    return found
