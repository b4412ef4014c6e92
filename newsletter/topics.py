"""Sorting papers into topics.

Each active topic's keywords (one phrase per line) become one regular expression that is
word-boundary aware (`RL` never matches inside `URL`), phrase aware (`chain of thought`,
`chain-of-thought` and `chainofthought` are one keyword), tolerant of plurals on the last word
(`agent` matches `agents`, `policy` matches `policies`, `LLM` matches `LLMs`) and of case,
except for acronyms written with capitals after the first letter (`RL`, `MoE`, `SLAM`), which
must match exactly so that `slam` or `rag` in prose do not count.

A paper's score for a topic adds, per matched keyword, TITLE_WEIGHT for the title,
KEYWORD_WEIGHT for the AI keywords and TEXT_WEIGHT (plus a little for repeats) for the
abstract and AI summary. Scores of at least settings.TOPIC_MIN_SCORE are stored as
PaperTopicScore rows: a row means "this paper belongs to this topic".
"""

import re
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
# Between the words of a phrase: spaces, hyphens and dashes, or nothing ("multiagent").
# Not newlines: the AI keywords are joined with " | " so a phrase never spans two of them.
SEPARATOR = r"[ \-\u2010\u2011\u2013_]*"


def _is_acronym(word: str) -> bool:
    """`RL`, `MoE`, `CoT`, `3D`: capitals after the first character mean "match exactly"."""
    return any(c.isupper() for c in word[1:])


def _plural_tolerant(word: str) -> str:
    escaped = re.escape(word)
    if _is_acronym(word):
        return escaped + "(?:s|es)?"
    if len(word) > 2 and word[-1] in "yY" and word[-2].lower() not in "aeiou":
        return "(?i:" + re.escape(word[:-1]) + "(?:y|ies))"
    return "(?i:" + escaped + "(?:s|es)?)"


def keyword_pattern(keyword: str) -> str | None:
    words = WORD_RE.findall(keyword)
    if not words:
        return None
    parts = [re.escape(w) if _is_acronym(w) else f"(?i:{re.escape(w)})" for w in words[:-1]]
    parts.append(_plural_tolerant(words[-1]))
    return r"(?<![^\W_])" + SEPARATOR.join(parts) + r"(?![^\W_])"


@dataclass
class TopicScore:
    score: float
    matched: list[str]


class TopicMatcher:
    """One topic's keywords compiled into a single alternation; the longest phrase wins
    where several start at the same place ("diffusion model" before "diffusion")."""

    def __init__(self, topic):
        self.topic = topic
        keywords = sorted(dict.fromkeys(topic.keyword_list), key=lambda k: (-len(k), k))
        self.keywords, alternatives = [], []
        for keyword in keywords:
            pattern = keyword_pattern(keyword)
            if pattern:
                alternatives.append(f"(?P<k{len(self.keywords)}>{pattern})")
                self.keywords.append(keyword)
        self.regex = re.compile("|".join(alternatives)) if alternatives else None

    def _hits(self, text: str) -> dict[int, int]:
        counts: dict[int, int] = {}
        if self.regex is None or not text:
            return counts
        for match in self.regex.finditer(text):
            index = int(match.lastgroup[1:])
            counts[index] = counts.get(index, 0) + 1
        return counts

    def score(self, paper: Paper) -> TopicScore:
        title = self._hits(paper.title)
        keywords = self._hits(" | ".join(paper.ai_keywords or []))
        text = self._hits(f"{paper.abstract} | {paper.ai_summary}")
        contributions = {}
        for index in set(title) | set(keywords) | set(text):
            value = TITLE_WEIGHT * (index in title) + KEYWORD_WEIGHT * (index in keywords)
            if index in text:
                value += TEXT_WEIGHT + REPEAT_WEIGHT * min(text[index] - 1, MAX_REPEATS)
            contributions[self.keywords[index]] = value
        matched = sorted(contributions, key=lambda k: (-contributions[k], k))
        return TopicScore(score=round(sum(contributions.values()), 2), matched=matched)


def active_matchers(topics=None) -> list[TopicMatcher]:
    from subscriptions.models import Topic

    topics = Topic.objects.filter(active=True) if topics is None else topics
    return [TopicMatcher(topic) for topic in topics]


def scores_for(paper: Paper, matchers: list[TopicMatcher]) -> list[PaperTopicScore]:
    rows = []
    for matcher in matchers:
        result = matcher.score(paper)
        if result.score >= settings.TOPIC_MIN_SCORE:
            rows.append(PaperTopicScore(paper=paper, topic=matcher.topic, score=result.score, matched=result.matched))
    return rows


@transaction.atomic
def score_papers(papers) -> int:
    """(Re)score `papers` against every active topic; returns the number of rows stored."""
    papers = list(papers)
    matchers = active_matchers()
    rows = [row for paper in papers for row in scores_for(paper, matchers)]
    PaperTopicScore.objects.filter(paper__in=papers).delete()
    PaperTopicScore.objects.bulk_create(rows, batch_size=1000)
    return len(rows)


@transaction.atomic
def rescore_topic(topic) -> int:
    """Recompute one topic's scores over every stored paper (after its keywords changed)."""
    PaperTopicScore.objects.filter(topic=topic).delete()
    if not topic.active:
        return 0
    matchers = active_matchers([topic])
    rows = []
    fields = ["id", "title", "abstract", "ai_summary", "ai_keywords"]
    for paper in Paper.objects.only(*fields).order_by("pk").iterator(chunk_size=2000):
        rows.extend(scores_for(paper, matchers))
    PaperTopicScore.objects.bulk_create(rows, batch_size=1000)
    return len(rows)
