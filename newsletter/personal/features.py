"""Papers as features a reader's model can weigh.

A paper is one sparse row over N_FEATURES hashed columns (scikit-learn's FeatureHasher,
murmurhash: the same column for the same token in every process, on every day, with nothing
to fit), so a model trained last month scores today's papers without refitting:
- its words: the title (counted twice) and abstract and AI keywords, read the way the topic
  model reads them (topic_model.terms: words and bigrams, stop words out), sublinear counts,
  the block l2-normalised so long abstracts weigh no more than short ones;
- tokens that say what a paper is beyond its words, each with its own weight: every author
  (author_key), "has code" (a GitHub repository), every topic the topic model put it in and
  its organisation.

A reader's own words ("what I want to read about") and the authors they follow are hashed the
same way, so they count as papers they like from day one (profiles.py).

A day's pool is hashed once per process (for_pool); a chunk of readers is then scored with
one sparse product (ranking.py). The words and the other tokens are also kept apart, so that
a reason shown with a paper can say which of them the reader's model favoured (reasons.py).
"""

import math
from dataclasses import dataclass, field

import numpy as np

from newsletter.topic_model import terms

from .authors import author_key

N_FEATURES = 2**18
TITLE_REPEAT = 2  # a word of the title counts as much as two of the abstract
# The words of a paper have norm 1; these tokens are added on top of them.
AUTHOR_WEIGHT = 0.3
CODE_WEIGHT = 0.4
TOPIC_WEIGHT = 0.4
ORGANISATION_WEIGHT = 0.3
MAX_AUTHORS = 30  # of huge author lists only the first ones count (and get hashed)

CODE_TOKEN = "has:code"


def is_word(token: str) -> bool:
    """A word or bigram, not one of the other tokens: those all have a colon, which words
    (topic_model.terms: letters and digits) never do."""
    return ":" not in token


def author_token(key: str) -> str:
    return f"author:{key}"


def topic_token(topic_id: int) -> str:
    return f"topic:{topic_id}"


def _hasher():
    global _HASHER
    if _HASHER is None:
        from sklearn.feature_extraction import FeatureHasher

        _HASHER = FeatureHasher(n_features=N_FEATURES, input_type="dict", alternate_sign=False, dtype=np.float32)
    return _HASHER


_HASHER = None


def hash_tokens(rows: list[dict[str, float]]):
    """Token dicts -> a CSR matrix (rows x N_FEATURES), float32; colliding tokens add up."""
    matrix = _hasher().transform(rows)
    matrix.sum_duplicates()
    return matrix.tocsr()


def words(title: str = "", text: str = "", keywords=()) -> dict[str, float]:
    """The word tokens of a text, sublinear counts, l2-normalised (empty dict if none)."""
    counts: dict[str, float] = {}
    for term in terms(title or ""):
        counts[term] = counts.get(term, 0.0) + TITLE_REPEAT
    for part in (text or "", *(k for k in keywords or () if isinstance(k, str))):
        for term in terms(part):
            counts[term] = counts.get(term, 0.0) + 1.0
    if not counts:
        return {}
    weighted = {term: 1.0 + math.log(count) for term, count in counts.items()}
    norm = math.sqrt(sum(v * v for v in weighted.values()))
    return {term: v / norm for term, v in weighted.items()}


def paper_tokens(paper: dict, topic_ids=()) -> dict[str, float]:
    """One paper (a dict of Paper fields) as weighted tokens."""
    keywords = paper.get("ai_keywords") if isinstance(paper.get("ai_keywords"), list) else ()
    tokens = words(paper.get("title", ""), paper.get("abstract", ""), keywords)
    authors = paper.get("authors") if isinstance(paper.get("authors"), list) else []
    for name in authors[:MAX_AUTHORS]:
        key = author_key(name) if isinstance(name, str) else ""
        if key:
            tokens[author_token(key)] = AUTHOR_WEIGHT
    if paper.get("github_repo"):
        tokens[CODE_TOKEN] = CODE_WEIGHT
    for topic_id in topic_ids:
        tokens[topic_token(topic_id)] = TOPIC_WEIGHT
    organisation = author_key(paper.get("organization") or "")
    if organisation:
        tokens[f"org:{organisation}"] = ORGANISATION_WEIGHT
    return tokens


def text_vector(text: str):
    """A reader's own words as a 1 x N_FEATURES row, hashed like a paper's words."""
    return hash_tokens([words(text=text)])


def authors_vector(keys):
    """Followed authors (author keys) as a 1 x N_FEATURES row: a paper by all of them."""
    return hash_tokens([{author_token(k): AUTHOR_WEIGHT for k in keys if k}])


# --- papers from the database --------------------------------------------------------------

PAPER_FIELDS = ("pk", "title", "abstract", "ai_keywords", "authors", "github_repo", "organization")


@dataclass
class PaperFeatures:
    """Papers as rows of `matrix` (CSR, float32), in the order of `paper_ids`; `words` and
    `others` are the same rows split into the words and the other tokens (matrix = their sum)."""

    paper_ids: list[int]
    matrix: object
    titles: dict[int, str]
    # paper id -> author keys (the first MAX_AUTHORS), with the name as the paper spells it
    authors: dict[int, dict[str, str]]
    # paper id -> the topics it is in
    topics: dict[int, list[int]]
    words: object = None
    others: object = None
    # paper id -> {column: token} of its other tokens ("has:code", "topic:3", ...)
    tokens: dict[int, dict[int, str]] = field(default_factory=dict)
    # paper id -> its organisation as the paper spells it
    organisations: dict[int, str] = field(default_factory=dict)

    def __post_init__(self):
        self.row = {pk: n for n, pk in enumerate(self.paper_ids)}

    def rows(self, paper_ids):
        """The rows of these papers (those that are here), in that order."""
        return self.matrix[[self.row[pk] for pk in paper_ids if pk in self.row]]


def no_papers() -> "PaperFeatures":
    empty = hash_tokens([{}])[:0]
    return PaperFeatures([], empty, {}, {}, {}, empty, empty)


def _split(rows: list[dict[str, float]]):
    """(matrix, words, others, {token: column} of the other tokens) of these token rows."""
    word_rows = [{t: v for t, v in row.items() if is_word(t)} for row in rows]
    other_rows = [{t: v for t, v in row.items() if not is_word(t)} for row in rows]
    words, others = (hash_tokens(part or [{}])[: len(rows)] for part in (word_rows, other_rows))
    # The sum is the matrix a hashing of whole rows gives (colliding tokens add up either way).
    matrix = (words + others).tocsr()
    names = sorted({t for row in other_rows for t in row})
    columns = dict(zip(names, hash_tokens([{t: 1.0} for t in names]).indices.tolist())) if names else {}
    return matrix, words, others, columns


def paper_features(paper_ids, topics_of=None) -> PaperFeatures:
    """The features of these papers (two queries; one if `topics_of`, paper id -> topic ids,
    is given)."""
    from newsletter.models import Paper, PaperTopicScore

    paper_ids = list(paper_ids)
    papers = list(Paper.objects.filter(pk__in=paper_ids).order_by("pk").values(*PAPER_FIELDS))
    if topics_of is None:
        topics_of = {}
        for paper_id, topic_id in PaperTopicScore.objects.filter(paper_id__in=paper_ids).values_list("paper_id", "topic_id"):
            topics_of.setdefault(paper_id, []).append(topic_id)
    rows = [paper_tokens(p, sorted(topics_of.get(p["pk"], ()))) for p in papers]
    matrix, words, others, columns = _split(rows)
    tokens = {p["pk"]: {columns[t]: t for t in row if not is_word(t)} for p, row in zip(papers, rows)}
    organisations = {p["pk"]: p["organization"] for p in papers if author_key(p["organization"] or "")}
    authors = {}
    for p in papers:
        names = p["authors"] if isinstance(p["authors"], list) else []
        authors[p["pk"]] = {author_key(n): n for n in names[:MAX_AUTHORS] if isinstance(n, str) and author_key(n)}
    topics = {p["pk"]: sorted(topics_of.get(p["pk"], ())) for p in papers}
    return PaperFeatures([p["pk"] for p in papers], matrix, {p["pk"]: p["title"] for p in papers}, authors, topics,
                         words, others, tokens, organisations)


_POOL_FEATURES: dict[tuple, PaperFeatures] = {}


def for_pool(pool) -> PaperFeatures:
    """The features of a selection.PaperPool's papers, kept per process while the pool is
    (a few pools at once: daily and weekly, and a new day's)."""
    found = _POOL_FEATURES.get(pool.key)
    if found is None:
        topics_of: dict[int, list[int]] = {pk: [] for pk in pool.upvotes}
        for topic_id, scored in pool.by_topic.items():
            for paper_id, _score in scored:
                topics_of.setdefault(paper_id, []).append(topic_id)
        found = paper_features(pool.upvotes, topics_of)
        _POOL_FEATURES[pool.key] = found
        for old in list(_POOL_FEATURES)[:-4]:  # the oldest pools go first
            _POOL_FEATURES.pop(old, None)
    return found
