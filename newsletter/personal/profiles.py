"""Training each reader's model from what they told us.

A reader's examples, as rows of paper features (features.py):
- liked: papers they voted "More like this" on and the seed papers they named;
- their own words ("what I want to read about") and the authors they follow, each as one
  more liked pseudo-paper, so both count from day one, before any vote;
- disliked: papers they voted "Less like this" on;
- a light background of recent papers (the newest BACKGROUND_PAPERS stored) as weak "not
  especially this" examples, so a reader who only ever liked things still has a well-posed
  model, and words every paper uses (model, language, data) do not pass for a taste.

The model is a logistic regression per reader (the way Scholar Inbox learns from thumbs up and
down, and arxiv-sanity per tag), fitted on the columns the reader's examples use and kept as
its MAX_WEIGHTS strongest weights, a bias and a few liked papers (exemplars: their strongest
words, which name a paper in the digest that reads like one: "Because you liked: <title>"). On held-out fixture days a Rocchio
centroid (mean liked minus mean disliked and background) orders papers about as well
(bench/personalisation.py, "the learner alone"); the regression is kept because its scores
are log-odds that grow with agreeing evidence, which the ranking's blend and its "outside your
topics" slot rely on: one vote moves a paper a little, ten agreeing votes a lot. A reader with
only one kind of example (only "Less" votes) gets the centroid, which needs no second kind.

retrain_stale() trains only the profiles that are stale (signal_at after trained_at, or never
trained), a batch of readers at a time with a handful of queries per batch, and writes a
model only over one that is older, so two retrain tasks for one reader never leave the
older model in place.
"""

import base64
import binascii
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from django.db.models import F, Q
from django.utils import timezone
from scipy import sparse

from newsletter.app_settings import app_settings
from newsletter.logs import EventLog
from newsletter.models import FollowedAuthor, Paper, ReaderProfile, SeedPaper, Vote
from newsletter.models.readers import STALE
from subscriptions.models import Subscriber

from . import features

log = EventLog(__name__)

# 2: exemplars are a liked paper's own words (1: what of it the model favoured, words, code,
# topics and authors mixed; read without them, and retrained: migration 0008).
FORMAT = 2
READABLE = (1, 2)
# The strongest weights kept per reader: small to store, fast to load and score. Keeping 40
# to all of them ranks the same on held-out days (bench/personalisation.py's learner check).
MAX_WEIGHTS = 64
MAX_LIKES = 4  # liked papers kept as exemplars for "Because you liked: <title>"
# The strongest words kept of each exemplar. More keep more of the paper: of the labelled
# fixture papers' pairs at reasons.LIKED_SIMILARITY, 70% share a topic with 12 words, 77% with
# 24, 87% with 48; 24 keep a model with four 120-character titles under PostgreSQL's 2 kB.
EXEMPLAR_WORDS = 24
MAX_TITLE = 120  # characters of an exemplar's title kept (the note shows fewer)
BACKGROUND_PAPERS = 60
# The background as a whole weighs this many examples (at least BACKGROUND_MIN), so it
# anchors the model without outvoting the reader.
BACKGROUND_SHARE = 0.5
BACKGROUND_MIN = 1.0
INTERESTS_WEIGHT = 1.0  # the reader's own words, as liked papers
FOLLOWS_WEIGHT = 1.0
C = 4.0  # inverse L2 strength of each reader's logistic regression
LEARNER = "logistic"  # or "centroid" (bench/personalisation.py compares them)


# --- the stored model ----------------------------------------------------------------------


# Columns and their values, packed together: one base64 string per array pair.
PAIRS = np.dtype([("column", "<i4"), ("value", "<f2")])


def pack(columns, values) -> str:
    """Columns and values as base64 of little-endian (int32, float16) pairs: a short JSON
    string, decoded at C speed (float16 keeps three significant digits, plenty to rank by)."""
    pairs = np.empty(len(columns), dtype=PAIRS)
    pairs["column"], pairs["value"] = columns, values
    return base64.b64encode(pairs.tobytes()).decode()


def unpack(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(columns, values) views of packed pairs (int32, float16: convert after joining many)."""
    pairs = np.frombuffer(binascii.a2b_base64(text), dtype=PAIRS)
    return pairs["column"], pairs["value"]


@dataclass
class StoredModel:
    """A reader's model as ReaderProfile.model keeps it (columns are features.py's):

        {"format": 2, "w": packed (column, weight) pairs, "bias": b, "liked": n, "disliked": n,
         "likes": {"papers": [paper id, ...], "titles": [...], "sizes": [columns of each, ...],
                   "w": packed (column, value) pairs of all of them}}

    The liked papers (exemplars: their words, exemplar()) are the newest first; arrays are packed (pack()) so that a
    thousand models load in a few milliseconds, and a model stays under PostgreSQL's 2 kB
    (stored in its row, not compressed aside)."""

    columns: np.ndarray
    weights: np.ndarray
    bias: float
    like_papers: list[int] = field(default_factory=list)
    like_titles: list[str] = field(default_factory=list)
    like_sizes: list[int] = field(default_factory=list)
    like_columns: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    like_values: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float16))

    @classmethod
    def read(cls, model) -> "StoredModel | None":
        """The model, or None if it has no weight (or is not one this version reads). An older
        format's weights still rank; its exemplars, not words alone, are left out."""
        if not isinstance(model, dict) or model.get("format") not in READABLE or not model.get("w"):
            return None
        try:
            found = cls(*unpack(model["w"]), float(model.get("bias", 0.0)))
            likes = model.get("likes") or {}
            if likes and model["format"] == FORMAT:
                found.like_papers, found.like_titles, found.like_sizes = likes["papers"], likes["titles"], likes["sizes"]
                found.like_columns, found.like_values = unpack(likes["w"])
                counts = {len(found.like_papers), len(found.like_titles), len(found.like_sizes)}
                if len(counts) != 1 or sum(found.like_sizes) != len(found.like_columns):
                    return None
        except (KeyError, TypeError, ValueError, binascii.Error):
            return None
        return found

    def to_json(self, liked: int, disliked: int) -> dict:
        model = {"format": FORMAT, "w": pack(self.columns, self.weights), "bias": round(self.bias, 4),
                 "liked": liked, "disliked": disliked}
        if self.like_titles:
            model["likes"] = {"papers": self.like_papers, "titles": self.like_titles, "sizes": self.like_sizes,
                              "w": pack(self.like_columns, self.like_values)}
        return model


# --- one reader ----------------------------------------------------------------------------


class Examples:
    """One reader's training rows: liked (label 1) and disliked (label 0) with weights."""

    def __init__(self):
        self.rows, self.labels, self.weights = [], [], []

    def add(self, matrix, label: int, weight: float) -> None:
        if matrix is None or matrix.shape[0] == 0 or matrix.nnz == 0:
            return
        self.rows.append(matrix)
        self.labels.extend([label] * matrix.shape[0])
        self.weights.extend([weight] * matrix.shape[0])

    @property
    def liked(self) -> int:
        return sum(self.labels)

    @property
    def disliked(self) -> int:
        return len(self.labels) - self.liked


def fit(examples: Examples, background) -> tuple[np.ndarray, np.ndarray, float]:
    """(columns, weights, bias) of a reader's model; empty arrays when there is nothing to learn."""
    if not examples.rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), 0.0
    signals = len(examples.labels)
    rows = list(examples.rows)
    labels = list(examples.labels)
    weights = list(examples.weights)
    if background is not None and background.shape[0]:
        share = max(BACKGROUND_MIN, BACKGROUND_SHARE * signals) / background.shape[0]
        rows.append(background)
        labels.extend([0] * background.shape[0])
        weights.extend([share] * background.shape[0])
    matrix = sparse.vstack(rows, format="csr")
    # Fit on the columns the examples use only (a few thousand of the 2**18).
    columns, compact = np.unique(matrix.indices, return_inverse=True)
    x = sparse.csr_matrix((matrix.data.astype(np.float64), compact.ravel(), matrix.indptr), shape=(matrix.shape[0], len(columns)))
    y = np.asarray(labels, dtype=np.float64)
    c = np.asarray(weights, dtype=np.float64)
    if LEARNER == "logistic" and 0 < y.sum() < len(y):
        coef, bias = logistic_regression(x, y, c, C)
    else:
        # A centroid (Rocchio): towards the mean of what they liked, away from the mean of what
        # they disliked. Also for one kind of example only (only "less like this", or likes
        # before any paper was stored), which a logistic regression cannot separate.
        liked, other = y > 0, y == 0
        coef = np.zeros(x.shape[1])
        if liked.any():
            coef += np.asarray(x[liked].T @ c[liked]).ravel() / c[liked].sum()
        if other.any():
            coef -= np.asarray(x[other].T @ c[other]).ravel() / c[other].sum()
        bias = 0.0
    keep = np.argsort(-np.abs(coef))[:MAX_WEIGHTS]
    keep = keep[coef[keep] != 0]
    keep.sort()
    return columns[keep], coef[keep].astype(np.float32), bias


def logistic_regression(x, y, c, C, iterations=30, tol=1e-8) -> tuple[np.ndarray, float]:
    """Weights and bias of an L2-regularised logistic regression (bias not regularised) with
    example weights `c`: the problem scikit-learn's LogisticRegression(C=C) solves, solved
    over one unknown per example instead of one per column (the weights are x.T @ alpha: a
    reader has tens of examples but thousands of columns), by Newton's method. About 1 ms
    for a reader, where liblinear takes 100 (bench/personal_scale.py)."""
    n = x.shape[0]
    kernel = np.asarray((x @ x.T).todense())
    sign = 2.0 * y - 1.0
    alpha, bias = np.zeros(n), 0.0

    def objective(alpha, bias):
        f = kernel @ alpha + bias
        return float(c @ np.logaddexp(0.0, -sign * f) + alpha @ kernel @ alpha / (2 * C))

    current = objective(alpha, bias)
    system = np.empty((n + 1, n + 1))
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(kernel @ alpha + bias)))
        gradient = c * (p - y)
        curvature = c * p * (1.0 - p)
        # Newton's step, its first n rows multiplied by the kernel's inverse (the same step
        # for the scores, and defined when the kernel is singular).
        system[:n, :n] = curvature[:, None] * kernel
        system[:n, :n][np.diag_indices(n)] += 1.0 / C
        system[:n, n] = curvature
        system[n, :n] = curvature @ kernel
        system[n, n] = curvature.sum() + 1e-12
        step = np.linalg.solve(system, -np.append(gradient + alpha / C, gradient.sum()))
        size = 1.0
        while True:
            trial_alpha, trial_bias = alpha + size * step[:n], bias + size * step[n]
            trial = objective(trial_alpha, trial_bias)
            if trial <= current or size < 1e-4:
                break
            size /= 2
        alpha, bias = trial_alpha, trial_bias
        converged = current - trial < tol * max(1.0, abs(current))
        current = trial
        if converged:
            break
    return np.asarray(x.T @ alpha).ravel(), float(bias)


def exemplar(title: str, words) -> tuple:
    """(title, columns, values) of a liked paper as an explanation: its EXEMPLAR_WORDS strongest
    words (a features.PaperFeatures.words row), unit length. A paper whose words are close to
    them reads like it: "Because you liked" it (ranking.py)."""
    idx, values = words.indices, words.data
    top = np.argsort(-values, kind="stable")[:EXEMPLAR_WORDS]
    top = top[values[top] > 0]
    idx, values = idx[top], values[top]
    norm = float(np.linalg.norm(values)) or 1.0
    order = np.argsort(idx)
    return " ".join(title.split())[:MAX_TITLE], idx[order], values[order] / norm


# --- batches of readers --------------------------------------------------------------------


def stale_profiles(subscriber_ids=None):
    stale = ReaderProfile.objects.filter(STALE)
    if subscriber_ids is not None:
        stale = stale.filter(subscriber_id__in=list(subscriber_ids))
    return stale


_BACKGROUND: dict[tuple, "features.PaperFeatures"] = {}


def background_papers():
    """The newest papers stored, as the background every reader's model is trained against
    (kept per process while they are the newest)."""
    ids = tuple(Paper.objects.order_by("-last_seen_at", "-pk").values_list("pk", flat=True)[:BACKGROUND_PAPERS])
    if not ids:
        return None
    found = _BACKGROUND.get(ids)
    if found is None:
        _BACKGROUND.clear()
        found = _BACKGROUND[ids] = features.paper_features(ids)
    return found


def retrain_stale(subscriber_ids=None, batch_size=None) -> dict:
    """Train the stale profiles among `subscriber_ids` (None: every stale profile). Returns
    {"stale": found, "trained": written, "with_signal": models with any weight, "seconds": s}."""
    started = time.perf_counter()
    batch_size = batch_size or app_settings.PERSONAL_TRAIN_BATCH
    ids = list(stale_profiles(subscriber_ids).order_by("subscriber_id").values_list("subscriber_id", flat=True))
    counts = {"stale": len(ids), "trained": 0, "with_signal": 0}
    if ids:
        background = background_papers()
        for start in range(0, len(ids), batch_size):
            trained, with_signal = train_batch(ids[start : start + batch_size], background)
            counts["trained"] += trained
            counts["with_signal"] += with_signal
    counts["seconds"] = round(time.perf_counter() - started, 3)
    if ids:
        log("personal.retrained", **counts)
    return counts


def train_batch(subscriber_ids, background) -> tuple[int, int]:
    """Train these readers' models (seven queries, whatever the number) and store them unless a
    newer training got there first. Returns (profiles written, models with any weight)."""
    started_at = timezone.now()  # anything the reader tells us from now on makes it stale again
    profile_ids = dict(ReaderProfile.objects.filter(subscriber_id__in=subscriber_ids).values_list("subscriber_id", "pk"))
    subscriber_ids = [sid for sid in subscriber_ids if sid in profile_ids]
    liked, disliked = defaultdict(list), defaultdict(list)
    # Newest first, so the exemplars are the latest likes.
    votes = Vote.objects.filter(subscriber_id__in=subscriber_ids).order_by("-updated_at", "-pk")
    for sid, paper_id, value in votes.values_list("subscriber_id", "paper_id", "value"):
        (liked if value > 0 else disliked)[sid].append(paper_id)
    seeds = SeedPaper.objects.filter(subscriber_id__in=subscriber_ids, paper__isnull=False).order_by("-created_at", "-pk")
    for sid, paper_id in seeds.values_list("subscriber_id", "paper_id"):
        if paper_id not in liked[sid] and paper_id not in disliked[sid]:
            liked[sid].append(paper_id)
    follows = defaultdict(list)
    for sid, key in FollowedAuthor.objects.filter(subscriber_id__in=subscriber_ids).values_list("subscriber_id", "key"):
        follows[sid].append(key)
    interests = dict(Subscriber.objects.filter(pk__in=subscriber_ids).exclude(interests="").values_list("pk", "interests"))

    wanted = {pk for ids in (*liked.values(), *disliked.values()) for pk in ids}
    papers = features.paper_features(wanted) if wanted else features.no_papers()
    bg_ids = background.paper_ids if background is not None else []

    updated = []
    with_signal = 0
    for sid in subscriber_ids:
        examples = Examples()
        likes = [pk for pk in liked.get(sid, ()) if pk in papers.row]
        dislikes = [pk for pk in disliked.get(sid, ()) if pk in papers.row]
        examples.add(papers.rows(likes), 1, 1.0)
        if sid in interests:
            examples.add(features.text_vector(interests[sid]), 1, INTERESTS_WEIGHT)
        if follows.get(sid):
            examples.add(features.authors_vector(follows[sid]), 1, FOLLOWS_WEIGHT)
        examples.add(papers.rows(dislikes), 0, 1.0)
        bg = None
        if examples.rows and background is not None:
            voted = set(likes) | set(dislikes)
            bg = background.rows([pk for pk in bg_ids if pk not in voted])
        columns, weights, bias = fit(examples, bg)
        with_signal += bool(len(columns))
        stored = StoredModel(columns, weights, bias)
        shown = likes[:MAX_LIKES] if len(columns) else []
        for pk in shown:
            title, like_columns, like_values = exemplar(papers.titles[pk], papers.words[papers.row[pk]])
            if not len(like_columns):
                continue
            stored.like_papers.append(pk)
            stored.like_titles.append(title)
            stored.like_sizes.append(len(like_columns))
            stored.like_columns = np.concatenate([stored.like_columns, like_columns])
            stored.like_values = np.concatenate([stored.like_values, like_values])
        model = stored.to_json(examples.liked, examples.disliked)
        updated.append(ReaderProfile(pk=profile_ids[sid], model=model, trained_at=started_at, version=F("version") + 1))

    # Only over older trainings: a task that started later may already have stored a newer model.
    older = ReaderProfile.objects.filter(Q(trained_at__isnull=True) | Q(trained_at__lt=started_at))
    written = older.bulk_update(updated, ["model", "trained_at", "version"], batch_size=1000) if updated else 0
    return written, with_signal
