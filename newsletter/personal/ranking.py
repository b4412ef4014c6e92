"""The personal ranking: today's order (topic score x log2(2 + upvotes)) moved by what each
reader's own model thinks of each paper.

    score = ln(topic score x log2(2 + upvotes)) + PERSONAL_MODEL_WEIGHT x (model + FOLLOW_BONUS if by a followed author)

`model` is the reader's logistic regression (profiles.py) in log-odds: a model trained on a
vote or two is unsure and moves papers a little, one trained on many agreeing votes moves
them a lot. Ties keep today's tie-breaks (more upvotes, then the paper id). A reader who told
us nothing (no trained weight, no followed author) gets exactly today's order.

Candidates stay the reader's topics. A reader who opted in to "outside your topics" may get one
paper from the rest of the pool in the last place shown, if their model rates it highly: among
its OUTSIDE_TOP best of the whole pool, and above the paper it displaces.

Each paper may carry a reason (selection.Choice.notes): "Outside your topics", "Follows: <the
author as the paper spells them>", else why the model moved it up (reasons.py): "Because you
liked: <title>" if its words are close to a liked paper's (the exemplars stored with the
model), else the token that counted most in the model's score ("Has code, like papers you
liked", "You liked papers in <topic>", "... by <author>", "... from <organisation>"). None
where the model did not move it up, or its words counted most and no liked paper is close:
the topic evidence is shown already.

Cost: choose() hands over all its readers (a chunk of 1,000, or every pending reader for the
dispatcher's send order); they are loaded a block of BLOCK readers at a time, as order()
reaches them, with two queries per block (profiles, followed authors), and each block is
scored against a pool with one sparse product, so nothing is asked or multiplied per reader
(the reasons: a few numpy operations over the papers shown). bench/personal_scale.py measures it.
"""

import json
import threading

import numpy as np
from django.db import connection
from scipy import sparse

from newsletter.app_settings import app_settings
from newsletter.digests.ranking import TopicScoreAndUpvotes
from newsletter.models import FollowedAuthor, ReaderProfile
from subscriptions.models import Subscriber

from . import features, profiles, reasons

BLOCK = 1000
FOLLOW_BONUS = 1.0  # in log-odds: a followed author's paper is a strong "more like this"
OUTSIDE_TOP = 3  # a paper from outside the reader's topics must be among the model's best this many

OUTSIDE_NOTE = reasons.OUTSIDE


class PoolView:
    """A pool's papers as arrays, in the order of their feature rows (kept per pool)."""

    def __init__(self, pool):
        self.features = features.for_pool(pool)
        self.ids = np.asarray(self.features.paper_ids, dtype=np.int64)
        self.row = self.features.row
        upvotes = np.asarray([pool.upvotes.get(pk, 0) for pk in self.features.paper_ids], dtype=np.float64)
        self.upvotes = upvotes
        self.ln_boost = np.log(np.log2(2 + upvotes))
        self.by_author: dict[str, list[int]] = {}
        for pk, authors in self.features.authors.items():
            for key in authors:
                self.by_author.setdefault(key, []).append(self.row[pk])
        self.x_t = self.features.matrix.T.tocsr()
        self.words_t = self.features.words.T.tocsr()
        # The columns of the papers' other tokens (code, topics, authors, organisation).
        self.token_columns = np.unique(self.features.others.indices)
        self.topic_names = {r.topic_id: r.name for found in pool.reasons.values() for r in found}


_VIEWS: dict[tuple, PoolView] = {}


def pool_view(pool) -> PoolView:
    view = _VIEWS.get(pool.key)
    if view is None:
        view = _VIEWS[pool.key] = PoolView(pool)
        for old in list(_VIEWS)[:-4]:  # the oldest pools go first
            _VIEWS.pop(old, None)
    return view


class ReaderModel:
    """What one reader's ranking needs: their row of the block's weight matrix (None without
    weights), the rows of their exemplars, their followed authors (key -> name as typed)."""

    __slots__ = ("bias", "row", "likes", "liked_papers", "titles", "follows", "outside_topics")

    def __init__(self, bias=0.0, row=None, likes=(), liked_papers=(), titles=(), follows=None, outside_topics=False):
        self.bias, self.row, self.likes, self.liked_papers, self.titles = bias, row, likes, liked_papers, titles
        self.follows = follows or {}
        self.outside_topics = outside_topics


class Tokens:
    """The tokens of a pool's papers that a block's models weigh: their `columns`, each paper's
    `values` of them (papers x columns) and each reader's `weights` of them (readers x columns).
    Dense, as few: the pool's topics, code, and the authors and organisations readers liked."""

    def __init__(self, block_weights, view):
        self.columns = np.intersect1d(block_weights.indices, view.token_columns)
        self.values = view.features.others[:, self.columns].toarray()
        self.weights = block_weights[:, self.columns].toarray()


class Block:
    """The models of one block of readers and, per pool, their scores of its papers."""

    def __init__(self, subscriber_ids):
        self.models: dict[int, ReaderModel] = {}
        follows: dict[int, dict[str, str]] = {}
        weights, exemplars, exemplar_sizes = [], [], []
        for sid, key, name in _rows(FOLLOWS_SQL, lambda: FollowedAuthor.objects.filter(subscriber_id__in=subscriber_ids)
                                    .values_list("subscriber_id", "key", "name"), subscriber_ids):
            follows.setdefault(sid, {})[key] = name
        rows = _rows(PROFILES_SQL, lambda: ReaderProfile.objects.filter(subscriber_id__in=subscriber_ids)
                     .values_list("subscriber_id", "model", "subscriber__outside_topics"), subscriber_ids)
        for sid, model, outside in rows:
            stored = profiles.StoredModel.read(json.loads(model) if isinstance(model, str) else model)
            if stored is None and sid not in follows:
                continue  # told us nothing: today's order
            reader = self.models[sid] = ReaderModel(follows=follows.pop(sid, None), outside_topics=outside)
            if stored is not None:
                reader.bias = stored.bias
                reader.row = len(weights)
                weights.append((stored.columns, stored.weights, [len(stored.columns)]))
                reader.likes = list(range(len(exemplar_sizes), len(exemplar_sizes) + len(stored.like_sizes)))
                reader.titles, reader.liked_papers = stored.like_titles, stored.like_papers
                exemplar_sizes.extend(stored.like_sizes)
                exemplars.append((stored.like_columns, stored.like_values, stored.like_sizes))
        for sid, authors in follows.items():  # follows and no profile (yet)
            self.models[sid] = ReaderModel(follows=authors)
        self.weights = _csr(weights)
        self.exemplars = _csr(exemplars)
        self._scored: dict[tuple, tuple] = {}
        self._tokens: dict[tuple, Tokens] = {}

    def scored(self, pool) -> tuple[PoolView, np.ndarray, np.ndarray]:
        """(the pool's view, model scores: readers x papers, exemplar similarities by words alone:
        exemplars x papers)."""
        found = self._scored.get(pool.key)
        if found is None:
            view = pool_view(pool)
            found = self._scored[pool.key] = (
                view, (self.weights @ view.x_t).toarray(), (self.exemplars @ view.words_t).toarray(),
            )
        return found

    def tokens(self, pool, view) -> Tokens:
        found = self._tokens.get(pool.key)
        if found is None:
            found = self._tokens[pool.key] = Tokens(self.weights, view)
        return found

    def personal_scores(self, model: ReaderModel, view: PoolView, scores) -> np.ndarray:
        """The reader's model score of every paper of the pool (view order), follows included."""
        found = scores[model.row] + model.bias if model.row is not None else np.full(len(view.ids), model.bias)
        for key in model.follows:
            rows = view.by_author.get(key)
            if rows:
                found[rows] += FOLLOW_BONUS
        return found


FOLLOWS_SQL = f"SELECT subscriber_id, key, name FROM {FollowedAuthor._meta.db_table} WHERE subscriber_id = ANY(%s)"
PROFILES_SQL = (
    f"SELECT p.subscriber_id, p.model, s.outside_topics FROM {ReaderProfile._meta.db_table} p "
    f"JOIN {Subscriber._meta.db_table} s ON s.id = p.subscriber_id WHERE p.subscriber_id = ANY(%s)"
)


def _rows(sql: str, queryset, subscriber_ids) -> list[tuple]:
    """The rows of `queryset()`; on PostgreSQL the same by `sql`, with the ids as one array
    parameter rather than a thousand placeholders and the JSON left to us (a third of the
    time for a block)."""
    if connection.vendor != "postgresql":
        return list(queryset())
    with connection.cursor() as cursor:
        cursor.execute(sql, [list(subscriber_ids)])
        return cursor.fetchall()


def _csr(parts):
    """A CSR matrix (rows x N_FEATURES) from (columns, values, row sizes) parts."""
    sizes = [n for _, _, row_sizes in parts for n in row_sizes]
    indptr = np.zeros(len(sizes) + 1, dtype=np.int64)
    if not sizes:
        return sparse.csr_matrix((0, features.N_FEATURES), dtype=np.float32)
    indptr[1:] = np.cumsum(sizes)
    values = np.concatenate([values for _, values, _ in parts]).astype(np.float32)
    columns = np.concatenate([columns for columns, _, _ in parts])
    return sparse.csr_matrix((values, columns, indptr), shape=(len(sizes), features.N_FEATURES))


class _Prepared:
    """One choose() call's readers, loaded a block at a time."""

    def __init__(self, readers, sent):
        self.sent = sent
        self.block_of: dict[int, int] = {}
        self.blocks: list[list[int]] = []
        for reader in readers:
            sid = reader.subscriber_id
            if sid not in self.block_of:
                if not self.blocks or len(self.blocks[-1]) >= BLOCK:
                    self.blocks.append([])
                self.block_of[sid] = len(self.blocks) - 1
                self.blocks[-1].append(sid)
        self.loaded: tuple[int, Block] | None = None
        self.outside: dict[tuple, int] = {}
        self.todays: dict[tuple, list[int]] = {}

    def block(self, subscriber_id) -> Block:
        number = self.block_of.get(subscriber_id)
        if number is None:  # a reader choose() did not announce: a block of its own
            self.block_of[subscriber_id] = number = len(self.blocks)
            self.blocks.append([subscriber_id])
        if self.loaded is None or self.loaded[0] != number:
            self.loaded = (number, Block(self.blocks[number]))
            self.outside.clear()
        return self.loaded[1]


class PersonalRanking(TopicScoreAndUpvotes):
    personal = True

    def __init__(self):
        # One instance per process; threads (a gthread web worker's previews) each prepare their own.
        self._local = threading.local()

    def _prepared(self) -> _Prepared:
        prepared = getattr(self._local, "prepared", None)
        if prepared is None:
            prepared = self._local.prepared = _Prepared((), {})
        return prepared

    def refresh(self, subscriber_ids) -> None:
        """Train the readers whose signal is newer than their model before their digests are
        chosen: the task a vote queued may not have run yet (a busy or restarted worker, a vote
        minutes before the send), and a digest should follow yesterday's votes. At most
        PERSONAL_TRAIN_BEFORE_SENDING a chunk; one query when none is stale."""
        limit = app_settings.PERSONAL_TRAIN_BEFORE_SENDING
        if limit <= 0:
            return
        stale = list(profiles.stale_profiles(subscriber_ids).order_by("signal_at").values_list("subscriber_id", flat=True)[:limit])
        if stale:
            profiles.retrain_stale(stale)

    def prepare(self, readers, sent) -> None:
        self._local.prepared = _Prepared(readers, sent or {})

    def order(self, reader, relevance, pool):
        prepared = self._prepared()
        block = prepared.block(reader.subscriber_id)
        model = block.models.get(reader.subscriber_id)
        if model is None or (model.row is None and not model.follows):
            # Today's order, shared by the readers with the same candidates.
            key = (pool.key, frozenset(relevance), tuple(reader.topic_ids))
            found = prepared.todays.get(key)
            if found is None:
                found = prepared.todays[key] = super().order(reader, relevance, pool)
            return list(found)
        view, scores, _ = block.scored(pool)
        personal = block.personal_scores(model, view, scores)
        weight = app_settings.PERSONAL_MODEL_WEIGHT
        try:
            rows = np.array([view.row[pk] for pk in relevance], dtype=np.int64)
        except KeyError:  # a candidate outside the pool's features (never, in a pool): today's order
            return super().order(reader, relevance, pool)
        topic = np.fromiter(relevance.values(), dtype=np.float64, count=len(relevance))
        score = np.log(topic) + view.ln_boost[rows] + weight * personal[rows]
        # Best score first, then more upvotes, then the paper id (today's tie-breaks).
        ordered = view.ids[rows[np.lexsort((view.ids[rows], -view.upvotes[rows], -score))]].tolist()
        if model.outside_topics and model.row is not None:
            self._add_outside(prepared, reader, rows, view, personal, ordered)
        return ordered

    def _add_outside(self, prepared, reader, candidate_rows, view, personal, ordered) -> None:
        """One paper from outside the reader's topics, in the last place shown, if the model
        rates it highly (among its OUTSIDE_TOP best of everything not sent yet, and in its
        better half) and prefers it to the paper it displaces."""
        unseen = np.ones(len(view.ids), dtype=bool)
        sent = prepared.sent.get(reader.subscriber_id)
        if sent:
            unseen[[view.row[pk] for pk in sent if pk in view.row]] = False
        outside = unseen.copy()
        outside[candidate_rows] = False
        outside_rows = np.flatnonzero(outside)
        if not len(outside_rows):
            return
        best = int(outside_rows[np.lexsort((view.ids[outside_rows], -view.upvotes[outside_rows], -personal[outside_rows]))[0]])
        shown = max(reader.papers_per_email, 1)
        ranked = np.sort(personal[unseen])[::-1]
        # Among the model's OUTSIDE_TOP best, and in its better half however small the pool.
        top, median = ranked[: OUTSIDE_TOP][-1], ranked[len(ranked) // 2]
        place = min(len(ordered), shown - 1)
        beats = place == len(ordered) or personal[best] > personal[view.row[ordered[place]]]
        if personal[best] >= top and personal[best] > median and beats:
            paper_id = int(view.ids[best])
            ordered.insert(place, paper_id)
            prepared.outside[(reader.subscriber_id, reader.digest_date, reader.kind)] = paper_id

    def notes(self, reader, paper_ids, pool):
        prepared = self._prepared()
        block = prepared.block(reader.subscriber_id)
        model = block.models.get(reader.subscriber_id)
        if model is None or not paper_ids:
            return {}
        view, scores, similarities = block.scored(pool)
        outside = prepared.outside.get((reader.subscriber_id, reader.digest_date, reader.kind))
        found = {}
        for paper_id in paper_ids:
            authors = view.features.authors.get(paper_id, {})
            followed = [authors[k] for k in model.follows if k in authors]
            if paper_id == outside:
                found[paper_id] = OUTSIDE_NOTE
            elif followed:
                found[paper_id] = f"{reasons.FOLLOWS}{followed[0]}"
        rest = [pk for pk in paper_ids if pk not in found and pk in view.row]
        if rest and model.row is not None:
            tokens = block.tokens(pool, view)
            found.update(reasons.notes(rest, view, scores[model.row], tokens.weights[model.row], tokens,
                                       similarities[model.likes], model, reader.topic_ids))
        return found
