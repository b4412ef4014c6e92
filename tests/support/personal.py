"""Days of real papers and readers with a taste, for the personal ranking's tests and benches
(tests/test_personal_ranking.py, bench/personalisation.py, bench/personal_scale.py).

The fixture days are the Hugging Face API responses of tests/fixtures/hf/, in date order;
the shared topic labels (tests/fixtures/relevance/labels.json) say which topics each paper
is really about. (Django must be set up; models are imported where they are used.)"""

import json
import random
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from .relevance import LABELS

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
DAYS = sorted((FIXTURES / "hf").glob("api_daily_papers_20*.json"))
LABELLED = {label["arxiv_id"]: label for label in LABELS}


def day_papers(path: Path) -> list[dict]:
    """A fixture day's papers as the API gave them (item["paper"]), in the page's order."""
    return [item["paper"] for item in json.loads(path.read_text())]


def load_day(path: Path, started_at=None, held_out: bool = True):
    """Store a fixture day as a scrape of the real path (parse, store, assign topics) and date
    its run `started_at`. With `held_out` its topics come from a topic model trained without
    that day's papers (they are among the seed papers), as tomorrow's papers would be scored."""
    from newsletter import topic_assignment
    from newsletter.scraping.run import scrape_file

    if held_out:
        topic_assignment.retrain(reason=f"held out {path.name}", exclude_seed={p["id"] for p in day_papers(path)})
    run = scrape_file(path)
    if run.status != run.Status.OK:
        raise RuntimeError(f"{path.name}: {run.error}")
    if started_at is not None:
        type(run).objects.filter(pk=run.pk).update(started_at=started_at, finished_at=started_at)
    return run


ARXIV_RE = re.compile(r"arXiv: https://arxiv.org/abs/([0-9.]+)")


def arxiv_ids_in(text: str) -> list[str]:
    """The papers of a digest's plain-text part, in order."""
    return ARXIV_RE.findall(text)


def note_kind(note: str) -> str:
    """The kind of a personal note: the start every note of its kind shares ("Follows")."""
    from newsletter.personal.reasons import PREFIXES

    return next((p.rstrip(": ") for p in PREFIXES if note.startswith(p)), "")


def notes_in(text: str) -> dict[str, str]:
    """arXiv id -> the personal note shown with the paper in a digest's plain-text part."""
    found, pending = {}, None
    for line in text.splitlines():
        if note_kind(line):
            pending = line.strip()
            continue
        arxiv = ARXIV_RE.match(line)
        if arxiv:
            if pending:
                found[arxiv.group(1)] = pending
            pending = None
    return found


def received(message):
    """A sent message (Django's locmem outbox) as the parsed email a mailbox would get."""
    from email import message_from_bytes, policy

    return message_from_bytes(message.message().as_bytes(), policy=policy.default)


def plain_text(message) -> str:
    return received(message).get_body(preferencelist=("plain",)).get_content()


# --- readers with a hidden taste ----------------------------------------------------------


@dataclass
class Taste:
    """What a simulated reader really wants, which it never tells: `likes(paper)` on a Paper."""

    kind: str  # "one topic", "code", "author"
    topics: tuple[str, ...]  # the three topic slugs it subscribes to
    topic: str = ""  # "one topic": the one it reads
    author: str = ""  # "author": the author whose papers it reads (author_key)
    follows: tuple[str, ...] = field(default_factory=tuple)  # names it follows on its preferences page

    def likes(self, paper) -> bool:
        from newsletter.personal.authors import author_key

        if self.kind == "one topic":
            return self.topic in LABELLED.get(paper.arxiv_id, {}).get("topics", ())
        if self.kind == "code":
            return bool(paper.github_repo)
        if self.kind == "author":
            return self.author in {author_key(a) for a in paper.authors if isinstance(a, str)}
        raise ValueError(self.kind)


def tastes(count: int, seed: int = 0) -> list[Taste]:
    """`count` tastes of each kind. Topic sets are drawn among the topics the labelled papers
    use often; an author taste is an author of papers on several fixture days, subscribed to
    the topics of those papers (they would never see them otherwise) and following them."""
    from newsletter.personal.authors import author_key

    rng = random.Random(seed)
    frequency: dict[str, int] = {}
    for label in LABELS:
        for slug in label["topics"]:
            frequency[slug] = frequency.get(slug, 0) + 1
    common = sorted(slug for slug, n in frequency.items() if n >= 8)
    days_of: dict[str, set] = {}
    names: dict[str, str] = {}
    topics_of: dict[str, set] = {}
    for path in DAYS:
        for paper in day_papers(path):
            for author in paper.get("authors", []):
                key = author_key(author.get("name", ""))
                names.setdefault(key, author.get("name", ""))
                days_of.setdefault(key, set()).add(path.name)
                topics_of.setdefault(key, set()).update(LABELLED.get(paper["id"], {}).get("topics", ()))
    prolific = sorted(k for k, days in days_of.items() if len(days) >= 2)
    found = []
    for _ in range(count):
        three = tuple(rng.sample(common, 3))
        found.append(Taste("one topic", three, topic=rng.choice(three)))
        found.append(Taste("code", tuple(rng.sample(common, 3))))
        key = rng.choice(prolific)
        own = sorted(topics_of[key])
        rng.shuffle(own)
        three = tuple(own[:3]) if len(own) >= 3 else tuple(own + rng.sample([s for s in common if s not in own], 3 - len(own)))
        found.append(Taste("author", three, author=key, follows=(names[key],)))
    return found


def sim_times(days: int, start=None):
    """(scrape time, dispatch time) per simulated day, a day apart from now on. (Sending checks
    the newest scrape's age against the real clock; a scrape dated later is never too old.)"""
    from django.utils import timezone

    start = start or timezone.now().replace(microsecond=0)
    return [(start + timedelta(days=n), start + timedelta(days=n, hours=1)) for n in range(days)]


# --- a reader following the links of a received digest ------------------------------------

VOTE_LINE_RE = re.compile(r"^(More like this|Less like this): (\S+)\s*$")
FORM_RE = re.compile(
    r'<form method="post" action="([^"]+)">\s*<input type="hidden" name="csrfmiddlewaretoken" value="([^"]+)">'
)


def vote_links(text: str) -> dict[str, dict[str, str]]:
    """arXiv id -> {"more": url, "less": url} of each paper of a digest's plain-text part (the
    links follow the paper's arXiv line, a GitHub line perhaps between)."""
    found: dict[str, dict[str, str]] = {}
    paper = None
    for line in text.splitlines():
        arxiv = ARXIV_RE.match(line)
        if arxiv:
            paper = arxiv.group(1)
            continue
        vote = VOTE_LINE_RE.match(line)
        if vote and paper:
            found.setdefault(paper, {})["more" if vote.group(1).startswith("More") else "less"] = vote.group(2)
    return {paper: links for paper, links in found.items() if len(links) == 2}


class Mailbox:
    """A reader at their own address (IP) and browser (cookies, CSRF tokens), doing what a
    person does with a digest: open "More like this" or "Less like this" from the email,
    press the button, then rate more papers on the "rate this digest" page it lands on."""

    def __init__(self, ip: str = "127.0.0.1"):
        from django.test import Client

        self.client = Client(enforce_csrf_checks=True, REMOTE_ADDR=ip)

    def _post_form(self, page: str, action: str) -> str:
        """Press the button of the form posting to `action` on `page`; the page it lands on."""
        forms = dict(FORM_RE.findall(page))
        if action not in forms:
            raise AssertionError(f"no form posting to {action}")
        answer = self.client.post(action, {"csrfmiddlewaretoken": forms[action]})
        if answer.status_code != 303:
            raise AssertionError(f"POST {action}: {answer.status_code}")
        landed = self.client.get(answer["Location"])
        if landed.status_code != 200:
            raise AssertionError(f"GET {answer['Location']}: {landed.status_code}")
        return landed.content.decode()

    def vote(self, text: str, choices: dict[str, str]) -> int:
        """Vote `choices` (arXiv id -> "more" or "less") on the digest whose plain text is
        `text`: the first through its link in the email, the others on the page that follows.
        Returns the number of votes cast."""
        from .links import path_of

        links = vote_links(text)
        missing = set(choices) - set(links)
        if missing:
            raise AssertionError(f"no vote links for {sorted(missing)} in the digest")
        wanted = [(arxiv_id, choices[arxiv_id]) for arxiv_id in links if arxiv_id in choices]
        if not wanted:
            return 0
        first_id, first_action = wanted[0]
        action = path_of(links[first_id][first_action])
        opened = self.client.get(action)
        if opened.status_code != 200:
            raise AssertionError(f"GET {action}: {opened.status_code}")
        page = self._post_form(opened.content.decode(), action)
        for arxiv_id, choice in wanted[1:]:
            page = self._post_form(page, path_of(links[arxiv_id][choice]))
        return len(wanted)
