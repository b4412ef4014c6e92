"""Digests that differ for every reader, for the tests and benches of sending them.

`PerReaderOrder` (DIGEST_RANKING points at it by its dotted path, in this process or a
worker's environment) gives every reader their own order and their own notes without any model
or stored signal: each reader's candidates sorted by a hash of (reader, paper), and a personal
note on some of them. It stands in for a personal ranking where the point is that nearly every
digest is different, not how good the order is. `seed_votes` gives readers votes and stale
profiles for the real personal ranking (newsletter.personal) to learn from; `distinct_digests`
counts what a ranking makes different; `expected_digest` and `assert_own_digest` check that a
received digest is exactly its reader's: papers in order, notes, feedback tokens, subject.
(Django must be set up for all but the ranking's hash.)"""

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field

from newsletter.digests.ranking import Ranking


def reader_hash(subscriber_id: int, paper_id: int) -> int:
    """A stable pseudo-random number per (reader, paper): the same in every process."""
    return int.from_bytes(hashlib.blake2b(f"{subscriber_id}:{paper_id}".encode(), digest_size=8).digest(), "big")


class PerReaderOrder(Ranking):
    personal = True
    NOTE_EVERY = 4  # about one paper in four carries a note

    def order(self, reader, relevance, pool):
        return sorted(relevance, key=lambda paper_id: (reader_hash(reader.subscriber_id, paper_id), paper_id))

    def notes(self, reader, paper_ids, pool):
        return {
            paper_id: f"Because you liked paper {reader_hash(reader.subscriber_id, -paper_id) % 997}"
            for paper_id in paper_ids
            if reader_hash(reader.subscriber_id, paper_id) % self.NOTE_EVERY == 0
        }


def seed_votes(subscriber_ids, paper_ids, rnd, votes=(4, 10), liked=0.6) -> int:
    """Each of `subscriber_ids` has voted on 4 to 10 of `paper_ids` ("More like this" with
    probability `liked`, else "Less like this") and has a stale reader profile, so the next
    retraining (newsletter.personal.profiles.retrain_stale) learns a model for each. Returns the
    number of votes. (Django must be set up.)"""
    from newsletter.models import ReaderProfile, Vote

    paper_ids = list(paper_ids)
    rows = []
    for sid in subscriber_ids:
        for paper_id in rnd.sample(paper_ids, min(len(paper_ids), rnd.randint(*votes))):
            rows.append(Vote(subscriber_id=sid, paper_id=paper_id, value=Vote.MORE if rnd.random() < liked else Vote.LESS))
    Vote.objects.bulk_create(rows, batch_size=5000, ignore_conflicts=True)
    ReaderProfile.objects.bulk_create([ReaderProfile(subscriber_id=sid) for sid in subscriber_ids], batch_size=5000,
                                      ignore_conflicts=True)
    return len(rows)


def distinct_digests(readers, pools) -> int:
    """How many different digests (papers, notes, kind and topics) the configured ranking gives
    `readers` (selection.Reader) from `pools`, ignoring what each was sent before."""
    from newsletter.digests import selection

    return len({(tuple(choice), choice.notes_key, reader.kind, tuple(sorted(reader.topic_ids)))
                for reader, choice in zip(readers, selection.choose(readers, pools, history=False))})


@dataclass
class ExpectedDigest:
    """What one delivery's digest must hold, as the configured ranking chooses it."""

    delivery_id: int
    subscriber_id: int
    arxiv_ids: list[str]
    paper_ids: list[int]
    notes: dict[str, str] = field(default_factory=dict)  # arxiv id -> note as shown
    subject: str = ""


def expected_digest(delivery) -> ExpectedDigest:
    """`delivery`'s digest as the configured ranking chooses it now (what each reader was sent
    before ignored: call it before sending, or for readers sent nothing else)."""
    from newsletter.digests import selection
    from newsletter.digests.links import short_date_label
    from newsletter.digests.rendering import dated_subject, note_text, subject_for, subject_topics
    from newsletter.models import Paper

    topics = selection.topics_of([delivery.subscriber_id]).get(delivery.subscriber_id, ((), ()))[0]
    reader = selection.Reader(delivery.subscriber_id, delivery.kind, delivery.digest_date, topics,
                              delivery.subscriber.papers_per_email)
    pools, _ = selection.pools_for({delivery.kind})
    [choice] = selection.choose([reader], pools, history=False)
    papers = Paper.objects.in_bulk(list(choice))
    shown = subject_topics([r.name for r in selection.shown_reasons(pools[delivery.kind], pk, topics)] for pk in choice)
    arxiv = [papers[pk].arxiv_id for pk in choice]
    return ExpectedDigest(
        delivery_id=delivery.pk, subscriber_id=delivery.subscriber_id, arxiv_ids=arxiv, paper_ids=list(choice),
        notes={papers[pk].arxiv_id: note_text(note) for pk, note in choice.notes.items() if note},
        subject=dated_subject(subject_for(delivery.kind, shown, len(choice)), short_date_label(delivery.digest_date))
        if choice else "",
    )


_ARXIV_LINE = re.compile(r"^arXiv: https://arxiv\.org/abs/([0-9.]+)$", re.MULTILINE)
_VOTE = re.compile(r"/feedback/([^/\s\"<>]+)/(more|less)/")


def assert_own_digest(expected: ExpectedDigest, subject: str, text: str, html: str) -> None:
    """The received digest (subject and both parts, as its reader got them) holds exactly
    `expected`'s papers in order, each with its note (and no other) and vote links whose
    tokens name this delivery and that paper, in both parts; no merge tag is left anywhere."""
    from django.utils.html import escape

    from newsletter.feedback import tokens as feedback_tokens
    from newsletter.scraped import merge_tags

    text, html = text.replace("\r\n", "\n"), html.replace("\r\n", "\n")  # as a parsed SMTP message has them
    assert subject.strip() == expected.subject, (subject, expected.subject)
    assert _ARXIV_LINE.findall(text) == expected.arxiv_ids, (_ARXIV_LINE.findall(text), expected.arxiv_ids)
    # Each paper's part of the text runs from after the previous paper's arXiv line to after its own votes.
    ends = [m.end() for m in _ARXIV_LINE.finditer(text)]
    starts = [0, *ends[:-1]]
    paper_of = dict(zip(expected.arxiv_ids, expected.paper_ids))
    for arxiv_id, start, end in zip(expected.arxiv_ids, starts, ends):
        lines = set(text[start:end].splitlines())  # a note is a line of its own
        note = expected.notes.get(arxiv_id)
        shown = lines & set(expected.notes.values())
        assert shown == ({note} if note else set()), (arxiv_id, note, shown)
    for part, per_paper in ((text, 2), (html, 2)):
        votes = _VOTE.findall(part)
        assert len(votes) == per_paper * len(expected.paper_ids), votes
        named = Counter()
        for token, _action in votes:
            target = feedback_tokens.read(token)
            assert target.delivery.pk == expected.delivery_id and target.subscriber.pk == expected.subscriber_id
            named[target.paper.pk] += 1
        assert named == Counter({pk: per_paper for pk in paper_of.values()}), named
    for note in expected.notes.values():
        assert escape(note) in html, note
    assert merge_tags("\n".join([subject, text, html])) == Counter()
