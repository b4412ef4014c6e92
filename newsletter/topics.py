"""Keyword evidence: which of a topic's phrases a paper's text contains.

Keywords (one phrase per line on each topic) are matched on words, not characters:
- word-boundary aware: `RL` never matches inside `URL`, `agent` not inside `reagent`;
- phrase aware and hyphen tolerant: `chain of thought`, `chain-of-thought` and `Chain‑of‑Thought`
  are the same words; `multi-agent` also matches `multiagent`; a phrase never runs across
  other punctuation (`reward. Model` is not `reward model`);
- plural tolerant on the last word: `agent` matches `agents`, `policy` matches `policies`,
  `LLM` matches `LLMs`;
- case-insensitive, except acronyms written with capitals after the first character (`RL`,
  `MoE`, `SLAM`, `3D`), which must match as written so that `slam` or `rag` in prose do not;
- paper names are read as their words: `SegAgent` is `Seg Agent`, `KernelBench` is
  `Kernel Bench` (a capital that starts a lowercase run splits a word; `LoRA`, `MoE` stay whole);
- a line `title: language model` counts only in titles, where a phrase names what the paper
  is about rather than what it mentions;
- where phrases of two topics overlap, the longer one wins: `video diffusion model` is video
  generation, not a `diffusion model` for images; `vision-language-action` is robotics, not
  `vision-language`. Within one topic the longer of two phrases starting at one word counts.

`KeywordScore` adds, per matched phrase, TITLE_WEIGHT for the title, KEYWORD_WEIGHT for the AI
keywords and TEXT_WEIGHT (plus a little for repeats) for the abstract and AI summary: the
keyword-only score that the topic model (newsletter.topic_model) reads with other evidence.
"""

import re
from collections import defaultdict
from dataclasses import dataclass, field

TITLE_WEIGHT = 3.0
KEYWORD_WEIGHT = 2.0
TEXT_WEIGHT = 1.0
REPEAT_WEIGHT = 0.5
MAX_REPEATS = 2
TITLE_ONLY_PREFIX = "title:"

WORD_RE = re.compile(r"[^\W_]+")
# Words, or a punctuation mark that ends a phrase. Spaces, hyphens, dashes and underscores
# join the words of a phrase, so they are not tokens at all.
TOKEN_RE = re.compile(r"[^\W_]+|[^\w\s\-\u2010\u2011\u2012\u2013]")
# Where a paper name splits: after a lowercase letter, before a capitalised word ("SegAgent"),
# not before an acronym's plural ("DiTs") or inside one ("LoRA").
CAMEL_RE = re.compile(r"(?<=[a-z])(?=[A-Z][a-z]{2})")
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


def split_names(text: str) -> str:
    """`text` with paper names written as words: "SegAgent" becomes "Seg Agent"."""
    return CAMEL_RE.sub(" ", text or "")


def words_of(text: str) -> list[str]:
    """The words of a keyword or a text, paper names split into their words."""
    return WORD_RE.findall(split_names(text))


def tokenize(text: str) -> list:
    """Words of `text` as (as written, lowercased) pairs, with BREAK where a phrase must end."""
    return [(word, word.lower()) if word[0].isalnum() else BREAK for word in TOKEN_RE.findall(split_names(text))]


@dataclass(frozen=True)
class Keyword:
    topic: int  # index into TopicMatcher.topics
    text: str  # as the topic lists it (without a "title:" prefix)
    words: tuple  # comparison keys of all words but the last
    last: frozenset  # accepted keys of the last word (plurals)
    last_is_acronym: bool
    length: int  # in words
    size: int  # in characters, to prefer the longer of two alternatives
    title_only: bool = False


def parse_keyword(line: str) -> tuple[str, bool]:
    """(phrase, title only) of one keyword line."""
    line = line.strip()
    if line.lower().startswith(TITLE_ONLY_PREFIX):
        return line[len(TITLE_ONLY_PREFIX) :].strip(), True
    return line, False


@dataclass
class FieldHits:
    """{topic number: {phrase: count}} per field of one paper."""

    title: dict
    keywords: dict
    abstract: dict
    summary: dict

    def topics(self) -> set[int]:
        return set(self.title) | set(self.keywords) | set(self.abstract) | set(self.summary)


@dataclass
class KeywordScore:
    score: float
    # phrase -> its contribution, best first
    contributions: dict = field(default_factory=dict)

    @property
    def matched(self) -> list[str]:
        return list(self.contributions)


class TopicMatcher:
    """All topics' keywords in one index by first word, so a text is read once for every topic."""

    def __init__(self, topics):
        self.topics = list(topics)
        self.index: dict[str, list[Keyword]] = defaultdict(list)
        for number, topic in enumerate(self.topics):
            for line in dict.fromkeys(topic.keyword_list):
                phrase, title_only = parse_keyword(line)
                words = words_of(phrase)
                if not words:
                    continue
                self._add(number, phrase, words, title_only)
                if len(words) > 1:  # "multi-agent" is also written "multiagent"
                    self._add(number, phrase, ["".join(words)], title_only)
        for entries in self.index.values():
            entries.sort(key=lambda k: (-k.length, -k.size))

    def _add(self, topic: int, text: str, words: list[str], title_only: bool) -> None:
        entry = Keyword(
            topic=topic,
            text=text,
            words=tuple(_key(w) for w in words[:-1]),
            last=frozenset(_plural_keys(words[-1])),
            last_is_acronym=_is_acronym(words[-1]),
            length=len(words),
            size=len(text),
            title_only=title_only,
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

    def hits(self, text: str, title: bool = False) -> dict[int, dict[str, int]]:
        """{topic number: {keyword: count}} for `text` (a title if `title`); per topic, matches
        do not overlap, and across topics the longer of two overlapping matches wins."""
        tokens = tokenize(text)
        matches = []  # (start, end, keyword)
        free_from: dict[int, int] = defaultdict(int)
        for start, token in enumerate(tokens):
            if token is BREAK:
                continue
            candidates = self.index.get(token[0], [])
            if token[1] != token[0] and token[1] in self.index:
                candidates = sorted(candidates + self.index[token[1]], key=lambda k: (-k.length, -k.size))
            if not candidates:
                continue
            taken = set()
            for keyword in candidates:  # longest first (the index keeps them so)
                if keyword.topic in taken or start < free_from[keyword.topic] or (keyword.title_only and not title):
                    continue
                if self._matches_at(tokens, start, keyword):
                    matches.append((start, start + keyword.length, keyword))
                    free_from[keyword.topic] = start + keyword.length
                    taken.add(keyword.topic)
        found: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        phrases = [(s, e, k) for s, e, k in matches if k.length > 1]  # only these can cover another match
        for start, end, keyword in matches:
            if not any(
                other.length > keyword.length and other.topic != keyword.topic and s < end and start < e
                for s, e, other in phrases
            ):
                found[keyword.topic][keyword.text] += 1
        return found

    def field_hits(self, paper) -> FieldHits:
        return FieldHits(
            title=self.hits(paper.title, title=True),
            keywords=self.hits(" | ".join(paper.ai_keywords or [])),
            abstract=self.hits(paper.abstract),
            summary=self.hits(paper.ai_summary),
        )

    def score(self, paper, hits: FieldHits | None = None) -> dict[int, KeywordScore]:
        """{topic number: KeywordScore} for every topic with at least one hit."""
        hits = hits or self.field_hits(paper)
        scores = {}
        for number in hits.topics():
            t, k = hits.title.get(number, {}), hits.keywords.get(number, {})
            x = defaultdict(int)
            for part in (hits.abstract, hits.summary):
                for phrase, count in part.get(number, {}).items():
                    x[phrase] += count
            contributions = {}
            for phrase in set(t) | set(k) | set(x):
                value = TITLE_WEIGHT * (phrase in t) + KEYWORD_WEIGHT * (phrase in k)
                if phrase in x:
                    value += TEXT_WEIGHT + REPEAT_WEIGHT * min(x[phrase] - 1, MAX_REPEATS)
                contributions[phrase] = value
            ordered = dict(sorted(contributions.items(), key=lambda item: (-item[1], item[0])))
            scores[number] = KeywordScore(score=round(sum(ordered.values()), 2), contributions=ordered)
        return scores
