"""Sorting papers into topics.

Keywords (one phrase per line on each topic) are matched on words, not characters:
- word-boundary aware: `RL` never matches inside `URL`, `agent` not inside `reagent`;
- phrase aware and hyphen tolerant: `chain of thought`, `chain-of-thought` and `Chain‑of‑Thought`
  are the same words; `multi-agent` also matches `multiagent`; a phrase never runs across
  other punctuation (`reward. Model` is not `reward model`);
- plural tolerant on the last word: `agent` matches `agents`, `policy` matches `policies`,
  `LLM` matches `LLMs`;
- case-insensitive, except acronyms written with capitals after the first character (`RL`,
  `MoE`, `SLAM`, `3D`), which must match as written so that `slam` or `rag` in prose do not.

A paper's score for a topic adds, per matched keyword, TITLE_WEIGHT for the title,
KEYWORD_WEIGHT for the AI keywords and TEXT_WEIGHT (plus a little for repeats) for the
abstract and AI summary. Where two keywords of one topic start at the same word, the longer
one counts ("diffusion model" rather than "diffusion"). Scores of at least
settings.TOPIC_MIN_SCORE are stored as PaperTopicScore rows: a row means "this paper belongs
to this topic".
"""

import re
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from newsletter.models import Paper, PaperTopicScore

TITLE_WEIGHT = 3.0
KEYWORD_WEIGHT = 2.0
TEXT_WEIGHT = 1.0
REPEAT_WEIGHT = 0.5
MAX_REPEATS = 2

WORD_RE = re.compile(r"[^\W_]+")
# Words, or a punctuation mark that ends a phrase. Spaces, hyphens, dashes and underscores
# join the words of a phrase, so they are not tokens at all.
TOKEN_RE = re.compile(r"[^\W_]+|[^\w\s\-\u2010\u2011\u2012\u2013]")
BREAK = None


def _is_acronym(word: str) -> bool:
    return any(c.isupper() for c in word[1:])


def _key(word: str) -> str:
    """How a keyword word is compared: as written for acronyms, else lowercased."""
    return word if _is_acronym(word) else word.lower()


def _plural_keys(word: str) -> set[str]:
    key = _key(word)
    keys = {key, key + "s", key + "es"}
    if not _is_acronym(word) and len(key) > 2 and key[-1] == "y" and key[-2] not in "aeiou":
        keys.add(key[:-1] + "ies")
    return keys


def tokenize(text: str) -> list:
    """Words of `text` as (as written, lowercased) pairs, with BREAK where a phrase must end."""
    tokens = []
    for match in TOKEN_RE.finditer(text or ""):
        word = match.group()
        tokens.append((word, word.lower()) if word[0].isalnum() else BREAK)
    return tokens


@dataclass(frozen=True)
class Keyword:
    topic: int  # index into TopicMatcher.topics
    text: str  # as the topic lists it
    words: tuple  # comparison keys of all words but the last
    last: frozenset  # accepted keys of the last word (plurals)
    last_is_acronym: bool
    length: int  # in words
    size: int  # in characters, to prefer the longer of two alternatives


class TopicMatcher:
    """All topics' keywords in one index by first word, so a text is read once for every topic."""

    def __init__(self, topics):
        self.topics = list(topics)
        self.index: dict[str, list[Keyword]] = defaultdict(list)
        for number, topic in enumerate(self.topics):
            for keyword in dict.fromkeys(topic.keyword_list):
                words = WORD_RE.findall(keyword)
                if not words:
                    continue
                self._add(number, keyword, words)
                if len(words) > 1:  # "multi-agent" is also written "multiagent"
                    self._add(number, keyword, ["".join(words)])
        for entries in self.index.values():
            entries.sort(key=lambda k: (-k.length, -k.size))

    def _add(self, topic: int, text: str, words: list[str]) -> None:
        entry = Keyword(
            topic=topic,
            text=text,
            words=tuple(_key(w) for w in words[:-1]),
            last=frozenset(_plural_keys(words[-1])),
            last_is_acronym=_is_acronym(words[-1]),
            length=len(words),
            size=len(text),
        )
        for first in (entry.words[:1] or entry.last):
            self.index[first].append(entry)

    def _matches_at(self, tokens: list, start: int, keyword: Keyword) -> bool:
        end = start + keyword.length
        if end > len(tokens):
            return False
        for offset, key in enumerate(keyword.words):
            token = tokens[start + offset]
            if token is BREAK or key not in token:
                return False
        token = tokens[end - 1]
        if token is BREAK:
            return False
        return (token[0] if keyword.last_is_acronym else token[1]) in keyword.last

    def hits(self, text: str) -> dict[int, dict[str, int]]:
        """{topic number: {keyword: count}} for `text`; per topic, matches do not overlap."""
        tokens = tokenize(text)
        found: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        free_from: dict[int, int] = defaultdict(int)
        for start, token in enumerate(tokens):
            if token is BREAK:
                continue
            candidates = self.index.get(token[0], [])
            if token[1] != token[0]:
                candidates = candidates + self.index.get(token[1], [])
            taken = set()
            for keyword in sorted(candidates, key=lambda k: (-k.length, -k.size)):
                if keyword.topic in taken or start < free_from[keyword.topic]:
                    continue
                if self._matches_at(tokens, start, keyword):
                    found[keyword.topic][keyword.text] += 1
                    free_from[keyword.topic] = start + keyword.length
                    taken.add(keyword.topic)
        return found

    def score(self, paper: Paper) -> dict[int, "TopicScore"]:
        """{topic number: TopicScore} for every topic with at least one hit."""
        title = self.hits(paper.title)
        keywords = self.hits(" | ".join(paper.ai_keywords or []))
        text = self.hits(f"{paper.abstract} | {paper.ai_summary}")
        scores = {}
        for number in set(title) | set(keywords) | set(text):
            t, k, x = title.get(number, {}), keywords.get(number, {}), text.get(number, {})
            contributions = {}
            for keyword in set(t) | set(k) | set(x):
                value = TITLE_WEIGHT * (keyword in t) + KEYWORD_WEIGHT * (keyword in k)
                if keyword in x:
                    value += TEXT_WEIGHT + REPEAT_WEIGHT * min(x[keyword] - 1, MAX_REPEATS)
                contributions[keyword] = value
            matched = sorted(contributions, key=lambda kw: (-contributions[kw], kw))
            scores[number] = TopicScore(score=round(sum(contributions.values()), 2), matched=matched)
        return scores

    def rows_for(self, paper: Paper) -> list[PaperTopicScore]:
        return [
            PaperTopicScore(paper=paper, topic=self.topics[number], score=result.score, matched=result.matched)
            for number, result in sorted(self.score(paper).items())
            if result.score >= settings.TOPIC_MIN_SCORE
        ]


@dataclass
class TopicScore:
    score: float
    matched: list[str]


def active_topics():
    from subscriptions.models import Topic

    return Topic.objects.filter(active=True)


@transaction.atomic
def score_papers(papers) -> int:
    """(Re)score `papers` against every active topic; returns the number of rows stored."""
    papers = list(papers)
    matcher = TopicMatcher(active_topics())
    rows = [row for paper in papers for row in matcher.rows_for(paper)]
    PaperTopicScore.objects.filter(paper__in=papers).delete()
    PaperTopicScore.objects.bulk_create(rows, batch_size=1000)
    return len(rows)


@transaction.atomic
def rescore_topic(topic) -> int:
    """Recompute one topic's scores over every stored paper (after its keywords changed)."""
    PaperTopicScore.objects.filter(topic=topic).delete()
    if not topic.active:
        return 0
    matcher = TopicMatcher([topic])
    rows = []
    fields = ["id", "title", "abstract", "ai_summary", "ai_keywords"]
    for paper in Paper.objects.only(*fields).order_by("pk").iterator(chunk_size=2000):
        rows.extend(matcher.rows_for(paper))
    PaperTopicScore.objects.bulk_create(rows, batch_size=1000)
    return len(rows)
