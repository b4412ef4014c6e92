"""Deciding which topics a paper belongs to.

Three kinds of evidence per topic, all from the paper's title and abstract (and its AI
keywords and summary where the source has them):
- keyword evidence (newsletter.topics.TopicMatcher): the topic's phrases in each field, each
  weighted by how rare its rarest word is (idf), so "LLM" counts little and "Gaussian
  splatting" much, and titles count more than abstracts;
- description similarity: tf-idf cosine between the paper and the topic's name, description
  and keywords;
- example similarity: tf-idf cosine between the paper and what the topic's labelled papers look
  like (their normalised mean, plus half the description), and its share of the best topic's.
  It ranks a paper's best topic better than the per-topic classifiers do on a hundred papers,
  and needs no keyword a reader wrote after seeing the paper (bench/relevance.py
  --unseen-keywords: +0.02 to +0.04 F1, primary topic +5 points);
- a linear classifier per topic over tf-idf words and bigrams (logistic regression, the way
  arxiv-sanity ranks papers for a tag), trained on labelled examples: the shipped seed papers
  (newsletter/topic_seed.json) and the papers an operator marked in or out of a topic.

One small logistic regression shared by all topics (the combiner) turns a topic's evidence
into a probability. Its inputs do not depend on which topic it is, so a topic added in the
admin is scored at once, by its keywords and description, before any retraining. A paper's
most probable topic is its primary one (when there is any evidence at all); further topics
need their own probability to reach the threshold. Papers an operator marked in or out of a
topic are in or out whatever the evidence says.

A paper with title and abstract only (older papers, other sources) lacks the keyword evidence
of the AI fields, so it has a combiner of its own, trained on the examples with those fields
removed. It also reads how firmly the classifier says no, and its threshold is the one that
did best on those training rows (bench/relevance.py: +0.01 to +0.02 F1 on title + abstract,
every split, papers with AI fields scored as before).

The vectorizer folds plurals ("agents" is "agent"): with so few papers a plural is otherwise
an unrelated word.

Scoring needs numpy only; training (train()) imports scikit-learn, and runs in a Celery task
(newsletter.tasks.topics) or once at first use when no trained state is stored yet.
"""

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .topics import TopicMatcher, words_of

FORMAT = 2  # 2: vocabulary with plurals folded, example similarity
SEED_PATH = Path(__file__).resolve().parent / "topic_seed.json"
# The state trained on the seed papers with the curated topics, so that a fresh installation
# scores without training (and without loading scikit-learn). `manage.py train_topic_model
# --write-default` writes it; tests/test_topics.py checks it is current.
DEFAULT_PATH = Path(__file__).resolve().parent / "topic_model_default.json"

# Tuned by cross-validation on the seed papers (bench/relevance.py), not per topic.
THRESHOLD = 0.4  # probability a further topic needs
PRIMARY_FLOOR = 0.08  # below this even the best topic is no fit: the paper gets none
LINEAR_C = 4.0
COMBINER_C = 1.0
FOLDS = 5
DESCRIPTION_SHARE = 0.5  # of a topic's description in what its papers look like
MAX_TERMS = 4  # top features kept as evidence
KEEP_WEIGHTS = 200  # a classifier keeps its strongest weights only: small to store, fast to load

FEATURES = [
    "title phrases", "AI keyword phrases", "abstract phrases", "AI summary phrases",
    "description similarity", "share of best keyword score", "best keyword score", "keyword score",
    "classifier", "example similarity", "share of best example similarity",
]
# The title + abstract combiner also reads the classifier's "no": without the AI fields there is
# less keyword evidence, and how sure the classifier is that a topic does not fit counts more.
PLAIN_FEATURES = [*FEATURES, "classifier's no"]
NO = len(FEATURES)
# Thresholds the title + abstract combiner chooses from, in training.
PLAIN_THRESHOLDS = [round(0.2 + 0.025 * i, 3) for i in range(17)]

# Common English words and paper boilerplate that say nothing about a topic.
STOP_WORDS = frozenset(
    """a about above across after again against all also an and any are as at be because been
    before being between both but by can could did do does doing done during each either et
    etc few for from further had has have having here how however i if in into is it its itself
    just may more most much must no nor not now of off on once only or other our out over own
    per same she should so some such than that the their them then there these they this those
    through thus to too under until up upon us very via was we were what when where whether
    which while who whom why will with within without would yet you your al paper papers
    propose proposed proposes present presents introduce introduces show shows shown
    demonstrate demonstrates approach approaches method methods results result work novel new
    based using use used existing extensive experiments experimental art significantly
    significant outperforms performance achieve achieves achieving available""".split()
)


def terms(text: str) -> list[str]:
    """Lowercased words (no stop words, no bare numbers) and the bigrams of neighbouring ones."""
    words = [w.lower() for w in words_of(text)]
    words = [w for w in words if len(w) > 1 and w not in STOP_WORDS and not w.isdigit()]
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


def singular(word: str) -> str:
    """"agents" -> "agent", "policies" -> "policy": with a hundred papers to learn from, the
    plural of a word is otherwise a different word."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith("sses"):  # "addresses"
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is", "as")):
        return word[:-1]
    return word


def stemmed_terms(text: str) -> list[str]:
    """terms() with plurals folded: what the topic model's vectorizer reads."""
    words = [w.lower() for w in words_of(text)]
    words = [singular(w) for w in words if len(w) > 1 and w not in STOP_WORDS and not w.isdigit()]
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


def paper_text(paper) -> str:
    """What the classifiers read: title and abstract, which every paper has."""
    return f"{paper.title}. {paper.abstract or ''}"


def has_ai_fields(paper) -> bool:
    return bool(paper.ai_summary or paper.ai_keywords)


def topic_text(topic) -> str:
    return " . ".join([topic.name, topic.description or "", *topic.keyword_list]).replace("title:", "")


class Vectorizer:
    """tf-idf with sublinear tf and l2 norm over a fixed vocabulary; unknown terms are left out."""

    def __init__(self, vocabulary: list[str], idf: list[float], default_idf: float):
        self.vocabulary = vocabulary
        self.index = {term: i for i, term in enumerate(vocabulary)}
        self.idf = np.asarray(idf, dtype=float)
        self.default_idf = default_idf

    @classmethod
    def fit(cls, texts: list[str], keep=None) -> "Vectorizer":
        """Vocabulary: terms of at least two of `texts` (and, if given, for which keep(term))."""
        df = Counter(term for text in texts for term in set(stemmed_terms(text)))
        n = len(texts)
        vocabulary = sorted(t for t, c in df.items() if c >= 2 and (keep is None or keep(t)))
        idf = [math.log((n + 1) / (df[t] + 1)) + 1 for t in vocabulary]
        return cls(vocabulary, idf, math.log((n + 1) / 2) + 1)

    def sparse(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(indices, values) of the normalised vector of `text`."""
        counts = Counter(self.index[t] for t in stemmed_terms(text) if t in self.index)
        if not counts:
            return np.zeros(0, dtype=int), np.zeros(0)
        idx = np.fromiter(counts, dtype=int, count=len(counts))
        tf = 1 + np.log(np.fromiter(counts.values(), dtype=float, count=len(counts)))
        values = tf * self.idf[idx]
        return idx, values / np.linalg.norm(values)

    def dense(self, text: str) -> np.ndarray:
        vector = np.zeros(len(self.vocabulary))
        idx, values = self.sparse(text)
        vector[idx] = values
        return vector

    def term_idf(self, term: str) -> float:
        i = self.index.get(term)
        return float(self.idf[i]) if i is not None else self.default_idf


@dataclass
class TrainedState:
    """What training produces; stored as JSON in TopicClassifier.state."""

    vocabulary: list[str]
    idf: list[float]
    default_idf: float
    # slug -> ({term: weight}, intercept) of the topic's linear classifier
    classifiers: dict[str, tuple[dict[str, float], float]]
    combiner: list[float]  # one weight per FEATURES entry
    combiner_intercept: float
    threshold: float = THRESHOLD
    primary_floor: float = PRIMARY_FLOOR
    # For papers without AI fields: one weight per PLAIN_FEATURES entry, and their threshold.
    # States stored before these existed have none and score those papers with `combiner`.
    plain_combiner: list[float] | None = None
    plain_combiner_intercept: float = 0.0
    plain_threshold: float = THRESHOLD
    # "Classifier's no" of a topic without a classifier: the average over training rows.
    no_classifier_no: float = 0.0
    # slug -> {term: weight}: the normalised mean of the topic's labelled papers
    centroids: dict = field(default_factory=dict)
    format: int = FORMAT

    def to_json(self) -> dict:
        return {
            "format": self.format, "vocabulary": self.vocabulary, "idf": [round(v, 5) for v in self.idf],
            "default_idf": self.default_idf,
            "classifiers": {slug: {"weights": {t: round(w, 5) for t, w in weights.items()}, "intercept": round(b, 5)} for slug, (weights, b) in self.classifiers.items()},
            "combiner": self.combiner, "combiner_intercept": self.combiner_intercept,
            "threshold": self.threshold, "primary_floor": self.primary_floor,
            "plain_combiner": self.plain_combiner, "plain_combiner_intercept": self.plain_combiner_intercept,
            "plain_threshold": self.plain_threshold, "no_classifier_no": self.no_classifier_no,
            "centroids": {slug: {t: round(w, 5) for t, w in c.items()} for slug, c in self.centroids.items()},
        }

    @classmethod
    def from_json(cls, data: dict) -> "TrainedState":
        if data.get("format") != FORMAT:
            raise ValueError(f"trained state format {data.get('format')!r}, expected {FORMAT}")
        return cls(
            vocabulary=data["vocabulary"], idf=data["idf"], default_idf=data["default_idf"],
            classifiers={slug: (c["weights"], c["intercept"]) for slug, c in data["classifiers"].items()},
            combiner=data["combiner"], combiner_intercept=data["combiner_intercept"],
            threshold=data["threshold"], primary_floor=data["primary_floor"],
            plain_combiner=data.get("plain_combiner"), plain_combiner_intercept=data.get("plain_combiner_intercept", 0.0),
            plain_threshold=data.get("plain_threshold", data["threshold"]), no_classifier_no=data.get("no_classifier_no", 0.0),
            centroids=data.get("centroids", {}),
        )


@dataclass
class Assessment:
    """One topic's verdict on one paper."""

    topic: object
    probability: float
    matched: list[str]  # phrases, strongest first
    terms: list[str] = field(default_factory=list)  # the classifier's strongest features here
    primary: bool = False
    taught: bool | None = None  # an operator marked the paper in (True) or out (False)


def combine(state: TrainedState, x: np.ndarray, plain: bool = False) -> np.ndarray:
    """Each topic's probability from its row of features; `plain`: with the combiner for papers
    without AI fields."""
    if plain:
        z = x @ np.asarray(state.plain_combiner) + state.plain_combiner_intercept
    else:
        z = x[:, : len(FEATURES)] @ np.asarray(state.combiner) + state.combiner_intercept
    return 1 / (1 + np.exp(-z))


class TopicScorer:
    """Scores papers against `topics` with a trained state; built once per batch of papers."""

    def __init__(self, topics, state: TrainedState):
        self.topics = list(topics)
        self.state = state
        self.matcher = TopicMatcher(self.topics)
        self.vectorizer = Vectorizer(state.vocabulary, state.idf, state.default_idf)
        size = len(state.vocabulary)
        # Vocabulary x topics: the classifiers' weights (zero for a topic without one yet).
        self.weights = np.zeros((size, len(self.topics)))
        self.intercepts = np.zeros(len(self.topics))
        self.has_classifier = np.zeros(len(self.topics), dtype=bool)
        for n, topic in enumerate(self.topics):
            if topic.slug in state.classifiers:
                weights, intercept = state.classifiers[topic.slug]
                for term, weight in weights.items():
                    self.weights[self.vectorizer.index[term], n] = weight
                self.intercepts[n] = intercept
                self.has_classifier[n] = True
        self.descriptions = np.column_stack([self.vectorizer.dense(topic_text(t)) for t in self.topics]) if self.topics else np.zeros((size, 0))
        # What a topic's papers look like: the mean of its labelled papers plus half its
        # description (read now, so an edit counts before retraining); a new topic has only the
        # description.
        self.examples = self.descriptions.copy()
        for n, topic in enumerate(self.topics):
            if topic.slug in state.centroids:
                self.examples[:, n] *= DESCRIPTION_SHARE
                for term, weight in state.centroids[topic.slug].items():
                    self.examples[self.vectorizer.index[term], n] += weight
        self._phrase_idf: dict[str, float] = {}

    def phrase_idf(self, phrase: str) -> float:
        """How telling a phrase is: the idf of its rarest pair of neighbouring words (pairs too
        rare to be in the vocabulary count as the rarest), or of its word."""
        value = self._phrase_idf.get(phrase)
        if value is None:
            parts = stemmed_terms(phrase)
            pairs = [t for t in parts if " " in t] or parts
            value = max((self.vectorizer.term_idf(t) for t in pairs), default=self.state.default_idf)
            self._phrase_idf[phrase] = value
        return value

    def features(self, paper) -> tuple[np.ndarray, dict, tuple]:
        """(topics x PLAIN_FEATURES matrix, keyword scores by topic number, (indices, values) of
        the text); the combiner for papers with AI fields reads the FEATURES columns."""
        count = len(self.topics)
        x = np.zeros((count, len(PLAIN_FEATURES)))
        hits = self.matcher.field_hits(paper)
        for column, part in enumerate((hits.title, hits.keywords, hits.abstract, hits.summary)):
            for number, phrases in part.items():
                total = 0.0
                for phrase, times in phrases.items():
                    repeat = 1 + 0.5 * min(times - 1, 2) if column >= 2 else 1
                    total += self.phrase_idf(phrase) * repeat
                x[number, column] = math.log1p(total)
        keyword_scores = self.matcher.score(paper, hits)
        raw = np.zeros(count)
        for number, result in keyword_scores.items():
            raw[number] = result.score
        best = raw.max() if count else 0.0
        if best > 0:
            x[:, 5] = raw / best
            x[:, 6] = (raw == best).astype(float)
        x[:, 7] = np.log1p(raw)
        idx, values = self.vectorizer.sparse(paper_text(paper))
        if len(idx):
            x[:, 4] = values @ self.descriptions[idx]
            decision = values @ self.weights[idx] + self.intercepts
            similar = values @ self.examples[idx]
            x[:, 9] = similar
            if similar.max() > 0:
                x[:, 10] = similar / similar.max()
        else:
            decision = self.intercepts.copy()
        # The classifier's "yes" and "no" are separate inputs: a topic without a classifier (new)
        # gets no "yes" and the average "no".
        x[:, 8] = np.where(self.has_classifier, np.maximum(decision, 0.0), 0.0)
        x[:, NO] = np.where(self.has_classifier, np.minimum(decision, 0.0), self.state.no_classifier_no)
        return x, keyword_scores, (idx, values)

    def uses_plain_combiner(self, paper) -> bool:
        return self.state.plain_combiner is not None and not has_ai_fields(paper)

    def probabilities(self, x: np.ndarray, plain: bool = False) -> np.ndarray:
        return combine(self.state, x, plain)

    def assess(self, paper, taught: dict | None = None) -> list[Assessment]:
        """The topics `paper` belongs to, primary first. `taught`: {topic pk: belongs} marks."""
        if not self.topics:
            return []
        taught = taught or {}
        x, keyword_scores, (idx, values) = self.features(paper)
        plain = self.uses_plain_combiner(paper)
        probabilities = self.probabilities(x, plain)
        threshold = self.state.plain_threshold if plain else self.state.threshold
        candidates = [n for n, t in enumerate(self.topics) if taught.get(t.pk) is not False]
        chosen = {n for n in candidates if probabilities[n] >= threshold}
        chosen |= {n for n, t in enumerate(self.topics) if taught.get(t.pk)}
        ranked = sorted(candidates, key=lambda n: (-(taught.get(self.topics[n].pk) is True), -probabilities[n], n))
        if ranked and (probabilities[ranked[0]] >= self.state.primary_floor or taught.get(self.topics[ranked[0]].pk)):
            chosen.add(ranked[0])
        result = []
        for n in sorted(chosen, key=ranked.index):
            topic = self.topics[n]
            matched = keyword_scores[n].matched if n in keyword_scores else []
            # A paper an operator put in the topic is as sure as it gets (digests rank by this).
            probability = 1.0 if taught.get(topic.pk) else round(float(probabilities[n]), 4)
            result.append(Assessment(
                topic=topic, probability=probability, matched=matched,
                terms=self._top_terms(n, idx, values), primary=not result, taught=taught.get(topic.pk),
            ))
        return result

    def _top_terms(self, number: int, idx, values) -> list[str]:
        if not self.has_classifier[number] or not len(idx):
            return []
        contributions = values * self.weights[idx, number]
        order = np.argsort(-contributions)[:MAX_TERMS]
        return [self.vectorizer.vocabulary[idx[i]] for i in order if contributions[i] > 0]


# --- training --------------------------------------------------------------------------------


@dataclass
class Example:
    """A labelled paper: `labels` maps topic slug -> belongs. Seed papers label every seed
    topic; an operator's mark labels one."""

    paper: object
    labels: dict[str, bool]
    source: str = "seed"


def seed_examples(exclude=()) -> list[Example]:
    """The shipped labelled papers (minus the arXiv ids in `exclude`, for cross-validation)."""
    from newsletter.models import Paper

    seed = json.loads(SEED_PATH.read_text())
    slugs = seed["topics"]
    examples = []
    for item in seed["papers"]:
        if item["arxiv_id"] in exclude:
            continue
        paper = Paper(arxiv_id=item["arxiv_id"], title=item["title"], abstract=item["abstract"],
                      ai_summary=item.get("ai_summary", ""), ai_keywords=item.get("ai_keywords", []))
        examples.append(Example(paper=paper, labels={slug: slug in item["topics"] for slug in slugs}))
    return examples


def shipped_default() -> tuple[str, TrainedState] | None:
    """(fingerprint, state) of the shipped trained state, if there is one of this format."""
    try:
        data = json.loads(DEFAULT_PATH.read_text())
        return data["fingerprint"], TrainedState.from_json(data["state"])
    except (OSError, ValueError, KeyError):
        return None


def write_default(topics) -> str:
    examples = seed_examples()
    digest = fingerprint(topics, examples)
    state = train(topics, examples)
    DEFAULT_PATH.write_text(json.dumps({"fingerprint": digest, "state": state.to_json()}, separators=(",", ":")) + "\n")
    return digest


def without_ai_fields(paper):
    from newsletter.models import Paper

    return Paper(arxiv_id=paper.arxiv_id, title=paper.title, abstract=paper.abstract)


def fingerprint(topics, examples: list[Example]) -> str:
    """What a trained state depends on: the topics' definitions and the labelled examples."""
    digest = hashlib.sha256()
    for topic in sorted(topics, key=lambda t: t.slug):
        digest.update(json.dumps([topic.slug, topic.name, topic.description, topic.keyword_list]).encode())
    for example in examples:
        digest.update(json.dumps([example.paper.arxiv_id, example.paper.title, sorted(example.labels.items())]).encode())
    return digest.hexdigest()[:16]


def chosen_topics(probabilities: np.ndarray, threshold: float, primary_floor: float) -> set[int]:
    """What assess() picks without operator marks: the best topic, and any other at the threshold."""
    chosen = set(np.flatnonzero(probabilities >= threshold).tolist())
    best = int(np.argmax(probabilities))
    if probabilities[best] >= primary_floor:
        chosen.add(best)
    return chosen


def best_threshold(papers: list[tuple[np.ndarray, set[int]]], primary_floor: float) -> float:
    """The PLAIN_THRESHOLDS entry with the best micro F1 over (probabilities, topics) pairs."""
    best_f1, best = -1.0, THRESHOLD
    for threshold in PLAIN_THRESHOLDS:
        tp = wrong = 0
        for probabilities, labelled in papers:
            chosen = chosen_topics(probabilities, threshold, primary_floor)
            tp += len(chosen & labelled)
            wrong += len(chosen ^ labelled)
        f1 = 2 * tp / (2 * tp + wrong) if tp else 0.0
        if f1 > best_f1 + 1e-9:
            best_f1, best = f1, threshold
    return best


def train(topics, examples: list[Example], folds: int = FOLDS, seed: int = 0) -> TrainedState:
    """Fit the per-topic classifiers and the combiners on `examples`. The combiners learn from
    classifier outputs on papers the classifier did not see (k-fold), so they trust them no more
    than they deserve on new papers. The main one also learns from every paper without its AI
    fields, since older papers and other sources have none; the title + abstract one learns
    from those alone, and picks its threshold on them."""
    from sklearn.linear_model import LogisticRegression

    topics = list(topics)
    texts = [paper_text(e.paper) for e in examples]
    vectorizer = Vectorizer.fit(texts)
    matrix = np.vstack([vectorizer.dense(text) for text in texts]) if texts else np.zeros((0, len(vectorizer.vocabulary)))

    def fit_classifiers(rows) -> tuple[dict[str, tuple[dict[str, float], float]], dict]:
        fitted, centroids = {}, {}
        for topic in topics:
            known = [i for i in rows if topic.slug in examples[i].labels]
            y = np.array([examples[i].labels[topic.slug] for i in known], dtype=int)
            if y.sum():
                centroid = matrix[[i for i, label in zip(known, y) if label]].sum(axis=0)
                centroid = centroid / (np.linalg.norm(centroid) or 1.0)
                strongest = np.argsort(-centroid)[:KEEP_WEIGHTS]
                centroids[topic.slug] = {vectorizer.vocabulary[i]: float(centroid[i]) for i in sorted(strongest) if centroid[i] > 0}
            if y.sum() < 2 or (1 - y).sum() < 2:
                continue
            model = LogisticRegression(C=LINEAR_C, class_weight="balanced", solver="liblinear", random_state=0).fit(matrix[known], y)
            weights = model.coef_[0]
            strongest = np.argsort(-np.abs(weights))[:KEEP_WEIGHTS]
            kept = {vectorizer.vocabulary[i]: float(weights[i]) for i in sorted(strongest) if weights[i]}
            fitted[topic.slug] = (kept, float(model.intercept_[0]))
        return fitted, centroids

    classifiers, centroids = fit_classifiers(range(len(examples)))
    state = TrainedState(
        vocabulary=vectorizer.vocabulary, idf=vectorizer.idf.tolist(), default_idf=vectorizer.default_idf,
        classifiers=classifiers, combiner=[0.0] * len(FEATURES), combiner_intercept=0.0, centroids=centroids,
    )

    # Out-of-fold classifiers: each paper's combiner rows use classifiers trained without it.
    # A topic without a classifier in a fold gets NaN as its "no", filled in below.
    order = np.random.default_rng(seed).permutation(len(examples))
    rows_x, rows_y, rows_plain, plain_papers = [], [], [], []
    for fold in range(folds):
        held_out = set(order[fold::folds].tolist())
        training_rows = [i for i in range(len(examples)) if i not in held_out]
        fold_classifiers, fold_centroids = fit_classifiers(training_rows)
        fold_state = TrainedState(**{**state.__dict__, "classifiers": fold_classifiers, "centroids": fold_centroids, "no_classifier_no": math.nan})
        scorer = TopicScorer(topics, fold_state)
        for i in sorted(held_out):
            example = examples[i]
            versions = [example.paper]
            if has_ai_fields(example.paper):
                versions.append(without_ai_fields(example.paper))
            for paper in versions:
                x, _, _ = scorer.features(paper)
                known = [n for n, topic in enumerate(topics) if topic.slug in example.labels]
                rows_x.extend(x[known])
                rows_y.extend(int(example.labels[topics[n].slug]) for n in known)
                rows_plain.extend([not has_ai_fields(paper)] * len(known))
                if not has_ai_fields(paper) and len(known) == len(topics):
                    plain_papers.append((len(rows_x) - len(known), {n for n in known if example.labels[topics[n].slug]}))
    if len(set(rows_y)) < 2:
        return state
    x, y, plain = np.vstack(rows_x), np.asarray(rows_y), np.asarray(rows_plain, dtype=bool)
    combiner = LogisticRegression(C=COMBINER_C, max_iter=5000).fit(x[:, : len(FEATURES)], y)
    state.combiner = [round(float(w), 6) for w in combiner.coef_[0]]
    state.combiner_intercept = round(float(combiner.intercept_[0]), 6)

    missing = np.isnan(x[:, NO])
    state.no_classifier_no = round(float(x[~missing, NO].mean()), 6) if (~missing).any() else 0.0
    x[missing, NO] = state.no_classifier_no
    if len(set(y[plain].tolist())) == 2:
        combiner = LogisticRegression(C=COMBINER_C, max_iter=5000).fit(x[plain], y[plain])
        state.plain_combiner = [round(float(w), 6) for w in combiner.coef_[0]]
        state.plain_combiner_intercept = round(float(combiner.intercept_[0]), 6)
        papers = [(combine(state, x[start : start + len(topics)], plain=True), labelled) for start, labelled in plain_papers]
        state.plain_threshold = best_threshold(papers, state.primary_floor) if papers else state.threshold
    return state
