"""Sending digests that differ for every reader (issue 11, item 4): a personal ranking makes
nearly every digest unique, and they still go out many to a provider call (a personal shell
whose papers, subject, preheader and count are each reader's merge values) or, over SMTP,
spliced from one prebuilt message per shell. Real Celery workers, the fake Mailgun speaking
its HTTP API and a real SMTP server on loopback; tests/support/rankings.PerReaderOrder gives
each reader their own order and notes."""

import random
import re
from collections import Counter

import pytest
from django.utils import timezone

from newsletter.digests import chunks, outbox, rendering
from newsletter.digests.rendering import MergeText
from newsletter.email_providers import registry
from newsletter.models import Delivery
from newsletter.scraped import merge_tags
from newsletter.tasks.digests import dispatch_now
from subscriptions import tokens

from .helpers import make_subscriber, path_of
from .support.digest_runs import wait_settled
from .support.fake_providers import FakeMailgun
from .support.links import unsubscribe_url_of
from .support.rankings import assert_own_digest, expected_digest

S = Delivery.Status
PER_READER = "tests.support.rankings.PerReaderOrder"
PAPERS = [
    dict(arxiv_id="2612.00001", title="Agents that plan — with tools", abstract="An agent paper.", authors=["Ada Lovelace"], upvotes=120,
         github_repo="https://github.com/example/agents", github_stars=31, topics={"agents": 9.0}),
    dict(arxiv_id="2612.00002", title="Code models at scale: naïve or not", ai_summary="A code model.", authors=["Grace Hopper"], upvotes=80,
         topics={"code": 8.0, "agents": 2.0}),
    dict(arxiv_id="2612.00003", title="Façades, 東京 and “quotes”: a vision-language model", abstract="Seeing & reading.",
         authors=["A", "B", "C", "D"], upvotes=60, topics={"multimodal": 7.0, "agents": 3.0}),
    dict(arxiv_id="2612.00004", title="Tool use for coding agents in Zürich", abstract="Agents write code.", authors=["Linus"], upvotes=40,
         topics={"agents": 6.0, "code": 6.0}),
    dict(arxiv_id="2612.00005", title="A plain fifth paper", ai_summary="Plain.", authors=["Eve"], upvotes=5, topics={"agents": 1.0}),
]


def personal_readers(topics, count, prefix):
    return [make_subscriber(f"{prefix}{i}@example.org", topics=[topics["agents"], topics["code"], topics["multimodal"]])
            for i in range(count)]


def send_through(settings, fake):
    """Digests go to `fake` (a fake provider from tests/support/fake_providers.py)."""
    settings.EMAIL_BACKEND = fake.backend
    settings.ANYMAIL = {**settings.ANYMAIL, **fake.anymail_settings()}


def todays_deliveries(readers) -> list[int]:
    """The ids of a new delivery for each of `readers`, for today."""
    return [Delivery.objects.create(subscriber=r, digest_date=timezone.now().date()).pk for r in readers]


def expected_digests():
    return {d.subscriber.email: expected_digest(d) for d in Delivery.objects.select_related("subscriber")}


@pytest.fixture
def personal_mailgun(digest_workers, fake_mailgun):
    def start(**env):
        worker = digest_workers({"TEST_EMAIL_BACKEND": fake_mailgun.backend, **fake_mailgun.env(), "DIGEST_RANKING": PER_READER,
                                 **{k: str(v) for k, v in env.items()}})
        worker.fake = fake_mailgun
        return worker
    return start


@pytest.mark.worker
def test_a_chunk_of_different_digests_goes_out_in_one_call_each_reader_getting_their_own(personal_mailgun, topics, make_scrape,
                                                                                        settings):
    worker = personal_mailgun()
    fake = worker.fake
    settings.DIGEST_RANKING = PER_READER  # the dispatcher and the expectations here rank as the worker does
    make_scrape(PAPERS)
    readers = personal_readers(topics, 30, "own")
    dispatch_now(ignore_hour=True)
    expected = expected_digests()
    assert len({tuple(e.arxiv_ids) + tuple(e.notes.items()) for e in expected.values()}) >= 20  # nearly all different
    wait_settled()

    assert Counter(m.to for m in fake.accepted) == Counter(r.email for r in readers), worker.output()[-3000:]
    assert len(fake.calls) == 1 and fake.calls[0].answer == 200  # thirty different digests, one call
    for message in fake.accepted:
        assert_own_digest(expected[message.to], message.subject, message.text, message.html)
        # Their own links and one-click header, as in a shared digest.
        url = unsubscribe_url_of(message)
        assert tokens.read_token(path_of(url).split("/")[2], tokens.UNSUBSCRIBE)[0].email == message.to
        [prefs] = re.findall(r"http://testserver/preferences/[^\s\"<]+", message.text)
        assert tokens.read_token(path_of(prefs).split("/")[2], tokens.PREFERENCES)[0].email == message.to
        # The preheader and the count are theirs too.
        titles = [p["title"] for p in sorted(PAPERS, key=lambda p: expected[message.to].arxiv_ids.index(p["arxiv_id"]))]
        assert f">{rendering.preheader_for(tuple(titles))}</div>" in message.html
        assert "5 papers" in message.text
    rows = Delivery.objects.select_related("subscriber", "content")
    assert {d.status for d in rows} == {S.SENT}
    for delivery in rows:
        assert [p.arxiv_id for p in delivery.content.ordered_papers()] == expected[delivery.subscriber.email].arxiv_ids


@pytest.mark.worker
def test_a_5xx_in_the_middle_of_a_chunk_is_retried_and_nobody_gets_two(personal_mailgun, topics, make_scrape, settings):
    worker = personal_mailgun(DIGEST_BATCH_SIZE=5)  # fifteen readers: three personal calls
    fake = worker.fake
    settings.DIGEST_RANKING = PER_READER
    make_scrape(PAPERS)
    readers = personal_readers(topics, 15, "retry")
    fake.fail_next(("ok",), ("500",))  # the first call goes through, the second fails
    dispatch_now(ignore_hour=True)
    expected = expected_digests()
    wait_settled()

    assert Counter(m.to for m in fake.accepted) == Counter(r.email for r in readers), worker.output()[-3000:]
    answers = [c.answer for c in fake.calls]
    assert answers[:2] == [200, 500] and set(answers[2:]) == {200} and len(answers) == 4
    assert "Retry in" in worker.output()
    # The first call was recorded before the failure: only the other ten were tried again.
    first = set(fake.calls[0].recipients)
    attempts = dict(Delivery.objects.values_list("subscriber__email", "attempts"))
    assert {email for email, n in attempts.items() if n == 1} == first and len(first) == 5
    assert set(fake.calls[1].recipients) <= {email for email, n in attempts.items() if n == 2}
    for message in fake.accepted:
        assert_own_digest(expected[message.to], message.subject, message.text, message.html)
    assert {d.status for d in Delivery.objects.all()} == {S.SENT}


@pytest.mark.worker
def test_over_smtp_each_reader_gets_their_own_digest_spliced_from_one_prebuilt_shell(digest_workers, smtp_sink, topics,
                                                                                    make_scrape, settings):
    worker = digest_workers({"TEST_EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend", "EMAIL_HOST": "127.0.0.1",
                             "EMAIL_PORT": str(smtp_sink.port), "DIGEST_RANKING": PER_READER})
    settings.DIGEST_RANKING = PER_READER
    make_scrape(PAPERS)
    readers = personal_readers(topics, 12, "smtp")
    dispatch_now(ignore_hour=True)
    expected = expected_digests()
    received = smtp_sink.wait_for(12)
    wait_settled()

    assert Counter(m["envelope_to"][0] for m in received) == Counter(r.email for r in readers), worker.output()[-3000:]
    message_ids = set()
    for item in received:
        message, to = item["message"], item["envelope_to"][0]
        assert message["To"] == to
        message_ids.add(message["Message-ID"])
        html = message.get_body(preferencelist=("html",))
        text = message.get_body(preferencelist=("plain",))
        # Spliced into 8bit parts as they are: no line over 998 octets, CRLF line ends.
        assert text["Content-Transfer-Encoding"] == "8bit" and html["Content-Transfer-Encoding"] == "8bit"
        raw = item["raw"]
        assert max(map(len, raw.split(b"\r\n"))) <= 998 and b"\n" not in raw.replace(b"\r\n", b""), raw[:300]
        # The subject is theirs, encoded as Django encodes it (a non-ASCII title among them).
        assert_own_digest(expected[to], str(message["Subject"]), text.get_content(), html.get_content())
        [url] = re.findall(r"<(https?://[^>]+)>", message["List-Unsubscribe"])
        assert tokens.read_token(path_of(url).split("/")[2], tokens.UNSUBSCRIBE)[0].email == to
    assert len(message_ids) == 12
    # Most titles are not ASCII: subjects were spliced in as encoded words.
    assert any(not str(m["message"]["Subject"]).isascii() for m in received)


# --- in this process --------------------------------------------------------------------------


def test_a_digest_many_share_keeps_its_own_call_and_the_rest_go_out_together(settings, topics, make_scrape):
    """Readers without a personal order share digests as before; a chunk's small digests go
    out in one personal batch."""
    settings.DIGEST_RANKING = "newsletter.digests.ranking.TopicScoreAndUpvotes"
    settings.DIGEST_SHARED_MIN, settings.DIGEST_PERSONAL_MIN = 4, 3
    with FakeMailgun() as fake:
        send_through(settings, fake)
        make_scrape(PAPERS)
        shared = [make_subscriber(f"shared{i}@example.org", topics=[topics["agents"]]) for i in range(5)]
        # Three readers, three different digests (their topics differ), each fewer than 4 readers.
        small = [make_subscriber("a@example.org", topics=[topics["code"]]),
                 make_subscriber("b@example.org", topics=[topics["multimodal"]]),
                 make_subscriber("c@example.org", topics=[topics["code"], topics["multimodal"]])]
        ids = todays_deliveries(shared + small)
        expected = expected_digests()

        report = chunks.send_chunk(ids, claimer="mixed")

    assert report.sent == 8 and report.digests == 4 and report.calls == 2
    calls = sorted(sorted(c.recipients) for c in fake.calls)
    assert calls == sorted([sorted(r.email for r in shared), sorted(r.email for r in small)])
    for message in fake.accepted:
        assert_own_digest(expected[message.to], message.subject, message.text, message.html)


def test_a_reader_whose_papers_exceed_what_sendgrid_takes_per_recipient_gets_a_call_of_their_own(settings, topics, make_scrape):
    """SendGrid takes at most 50,000 bytes of substitutions per recipient: a reader with many
    long papers goes alone (their digest as its own content), the others together."""
    from .support.fake_providers import FakeSendGrid

    settings.DIGEST_RANKING = PER_READER
    settings.DIGEST_PERSONAL_MIN = 3
    long_papers = [dict(arxiv_id=f"2612.1{n:04d}", title=f"Long paper {n}", abstract="Words about agents. " * 25,
                        authors=["A"], upvotes=n, topics={"code": 5.0}) for n in range(20)]
    with FakeSendGrid() as fake:
        send_through(settings, fake)
        make_scrape(PAPERS + long_papers)
        few = [make_subscriber(f"few{i}@example.org", topics=[topics["agents"]], papers_per_email=5) for i in range(4)]
        many = make_subscriber("many@example.org", topics=[topics["code"]], papers_per_email=20)
        ids = todays_deliveries([*few, many])
        expected = expected_digests()
        section = rendering.renderer.section(expected[many.email].paper_ids, chunks.selection.paper_pool("daily"), "daily",
                                             [topics["code"].pk])
        assert section.json_chars > registry.backend_class("sendgrid").max_recipient_values_bytes  # the case at hand

        report = chunks.send_chunk(ids, claimer="sendgrid-sizes")

    assert report.sent == 5 and report.calls == 2 and all(c.answer == 202 for c in fake.calls)
    assert sorted(sorted(c.recipients) for c in fake.calls) == sorted([[many.email], sorted(r.email for r in few)])
    for message in fake.accepted:
        assert_own_digest(expected[message.to], message.subject, message.text, message.html)


@pytest.mark.parametrize("limit", ["provider", "memory"])
def test_personal_batches_are_cut_by_the_providers_bytes_per_call_and_the_memory_budget(limit, settings, topics, make_scrape,
                                                                                       monkeypatch):
    settings.DIGEST_RANKING = PER_READER
    with FakeMailgun() as fake:
        send_through(settings, fake)
        make_scrape(PAPERS)
        readers = personal_readers(topics, 12, "bytes")
        ids = todays_deliveries(readers)
        expected = expected_digests()
        # About four readers' digests per call.
        shell = rendering.renderer.personal_shell("daily")
        one = rendering.renderer.section(expected[readers[0].email].paper_ids, chunks.selection.paper_pool("daily"), "daily")
        per_copy = sum(map(len, shell.html.parts + shell.text.parts)) + one.json_chars + outbox._OWN_VALUES_CHARS
        if limit == "provider":
            monkeypatch.setattr(registry.backend_class("mailgun"), "max_call_bytes", int(per_copy * 4.5))
        else:  # the smaller of the two counts
            settings.DIGEST_PERSONAL_CALL_BYTES = int(per_copy * 4.5)
        report = chunks.send_chunk(ids, claimer="bytes")

    assert report.sent == 12 and 3 <= report.calls <= 4 and all(len(c.recipients) <= 5 for c in fake.calls)
    assert Counter(m.to for m in fake.accepted) == Counter(r.email for r in readers)
    for message in fake.accepted:
        assert_own_digest(expected[message.to], message.subject, message.text, message.html)


# --- the pre-send check, without searching every reader's papers ----------------------------


def test_every_registered_merge_syntax_is_one_the_edge_check_knows():
    """MergeText.inert_edges reasons about %...%, {{ and -name- tags (rendering.py): a new
    provider syntax must be taught to it before it can be trusted."""
    from newsletter.email_providers.base import DOUBLE_BRACES, OUR_FIELDS, PERCENT_TAGS

    known = {PERCENT_TAGS.tag, DOUBLE_BRACES.tag, rf"-(?:{OUR_FIELDS})-"}
    for provider in registry.PROVIDERS:
        for syntax in registry.backend_class(provider).merge_syntaxes:
            assert syntax.tag in known, (provider, syntax)


def test_filling_inert_fields_with_clean_values_makes_no_merge_tag():
    """What lets each block be searched once per process: where inert_edges holds, the tags of
    the filled text are those of its literals plus those of its values. Fuzzed with every
    character a tag is made of."""
    rnd = random.Random(11)
    alphabet = ["%", "{", "-", "view_url", "-view", "_url-", "recipient.x", "topics_html", " ", "\n", "a", "/"]
    checked = inert = 0
    for _ in range(20000):
        parts = []
        for n in range(2 * rnd.randint(1, 3) + 1):
            parts.append("".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 8))) if n % 2 == 0 else f"f{n}")
        text = MergeText(parts)
        values = {name: "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 6))) for name in parts[1::2]}
        if any(merge_tags(v) for v in values.values()):
            continue
        checked += 1
        if text.inert_edges():
            inert += 1
            assert merge_tags(text.fill(values)) == text.literal_tags(), (parts, values)
    assert checked > 1000 and inert > 100


def test_a_paper_block_as_rendered_is_inert_whatever_the_site_url(settings, topics, make_scrape):
    """Even a host with dashes (and a path) keeps the vote links' edges inert, so readers'
    papers are never searched one by one."""
    settings.SITE_URL = "https://papers-digest.example-host.org/news-letter"
    make_scrape(PAPERS)
    pool = chunks.selection.paper_pool("daily")
    renderer = rendering.DigestRenderer()  # nothing cached with another SITE_URL
    section = renderer.section(list(pool.upvotes), pool, "daily", notes={next(iter(pool.upvotes)): "Because: %x{-a-"})
    assert "papers-digest.example-host.org/news-letter/feedback/" in section.html.parts[0]
    assert section.inert and section.tags == Counter()


def test_a_forged_key_in_a_readers_own_values_fails_that_reader_alone(settings, topics, make_scrape):
    """The check is per recipient in a personal batch: a key in one reader's values (here a
    topic name an operator wrote) fails them and the others go out."""
    settings.DIGEST_RANKING = PER_READER
    settings.DIGEST_PERSONAL_MIN = 2
    with FakeMailgun() as fake:
        send_through(settings, fake)
        make_scrape(PAPERS)
        readers = [make_subscriber(f"forged{i}@example.org", topics=[topics["agents"], topics["multimodal"]]) for i in range(4)]
        # (An update, not save(): saving a topic retrains the topic model.)
        type(topics["code"]).objects.filter(pk=topics["code"].pk).update(name="Code %recipient.unsubscribe_url%")
        odd = make_subscriber("odd@example.org", topics=[topics["code"]])
        ids = todays_deliveries([*readers, odd])

        report = chunks.send_chunk(ids, claimer="forged")

    assert report.sent == 4 and report.failed == 1
    assert Counter(m.to for m in fake.accepted) == Counter(r.email for r in readers)
    failed = Delivery.objects.get(subscriber=odd)
    assert failed.status == S.FAILED and "merge key" in failed.error


def test_a_merge_key_in_the_personal_shell_stops_the_whole_call(settings, topics, make_scrape, monkeypatch):
    """Whatever carried it into the shell (here the operator's postal address), a key the
    templates did not put there fails every reader of the call, unsent, as for a shared digest."""
    settings.DIGEST_RANKING = PER_READER
    settings.SENDER_POSTAL_ADDRESS = "1 Example Street, %RECIPIENT.PREFERENCES_URL%"
    monkeypatch.setattr(chunks, "renderer", rendering.DigestRenderer())  # shells cached so far have another address
    with FakeMailgun() as fake:
        send_through(settings, fake)
        make_scrape(PAPERS)
        readers = personal_readers(topics, 10, "shell")
        ids = todays_deliveries(readers)
        report = chunks.send_chunk(ids, claimer="shell")

    assert report.failed == 10 and report.sent == 0 and fake.calls == []
    assert all("merge key" in e for e in Delivery.objects.values_list("error", flat=True))


@pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning")
@pytest.mark.parametrize("fake_class", ["FakeMailgun", "FakeSendGrid", "FakePostmark"])
def test_forged_merge_keys_in_a_stored_paper_reach_no_reader_of_a_personal_batch(settings, topics, make_scrape, fake_class):
    """A paper stored with every provider's merge keys in its text and links (an older parser,
    a hand edit) is in every reader's papers, which are merge values now: each reader still gets
    their digest with no key any provider would fill, and no link to where the keys pointed."""
    from .support import fake_providers
    from .support.hostile_cases import FORGED_TEXT, FORGED_URLS

    settings.DIGEST_RANKING = PER_READER
    hostile = dict(arxiv_id="2612.00009", upvotes=500, authors=[f"Eve {FORGED_TEXT}"], title=f"Agents {FORGED_TEXT}",
                   ai_summary=f"See {FORGED_TEXT}", github_repo=FORGED_URLS[0], project_page=FORGED_URLS[4],
                   topics={"agents": 9.5, "code": 9.5, "multimodal": 9.5})
    with getattr(fake_providers, fake_class)() as fake:
        send_through(settings, fake)
        make_scrape([hostile, *PAPERS])
        readers = personal_readers(topics, 10, "hostile")
        ids = todays_deliveries(readers)

        report = chunks.send_chunk(ids, claimer="hostile")

    assert report.sent == 10 and report.calls == 1
    assert Counter(m.to for m in fake.accepted) == Counter(r.email for r in readers)
    for message in fake.accepted:
        everything = "\n".join([message.subject, message.text, message.html, *message.headers.values()])
        assert merge_tags(everything) == Counter()
        assert "attacker.example" not in everything and "testserver" not in message.subject
        # The paper's text shown as it was written (a zero-width space is invisible).
        assert f"Agents {FORGED_TEXT}" in " ".join(message.text.replace("\u200b", "").split())
