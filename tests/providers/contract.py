"""The contract every batch email provider meets, written once: each provider's test file
subclasses `ProviderContract` and names its fake (the way Anymail tests each ESP over shared
test bases). ADDING_A_PROVIDER.md says how to add one.

Real parts only: the fake speaks the provider's HTTP API on 127.0.0.1 (tests/support/
fake_providers.py), Anymail's backend for the provider goes through ours
(newsletter/email_providers), digests go through a real Celery worker where queueing is the
point, and the fake makes the provider's own webhook calls, signed as the provider signs them,
about the messages it accepted.
"""

import dataclasses
import re
from collections import Counter

import pytest
from django.test import Client
from django.utils import timezone

from newsletter.app_settings import app_settings
from newsletter.digests import chunks
from newsletter.models import Delivery
from newsletter.scraped import merge_tags
from newsletter.tasks.digests import dispatch_now
from subscriptions import tokens
from subscriptions.models import ConsentEvent, Subscriber

from ..helpers import make_subscriber, path_of
from ..support.digest_runs import wait_settled
from ..support.links import unsubscribe_url_of
from ..support.rankings import assert_own_digest, expected_digest

S = Delivery.Status
PAPERS = [
    dict(arxiv_id="2611.70001", title="Agents that plan", abstract="An agent paper.", authors=["Ada Lovelace"],
         upvotes=120, github_repo="https://github.com/example/agents", topics={"agents": 9.0}),
    dict(arxiv_id="2611.70002", title="Code models at scale", ai_summary="A code model.", authors=["Grace Hopper"],
         upvotes=80, topics={"code": 8.0}),
    dict(arxiv_id="2611.70003", title="Seeing and reading", abstract="A vision-language model.", authors=["A", "B"],
         upvotes=60, topics={"multimodal": 7.0, "agents": 3.0}),
]
# More papers of those topics, so that readers of all three get five to order as they like.
PERSONAL_PAPERS = [
    dict(arxiv_id="2611.70004", title="Planning with tools", abstract="Agents call tools.", authors=["Alan Kay"],
         upvotes=40, topics={"agents": 6.0, "code": 4.0}),
    dict(arxiv_id="2611.70005", title="Pictures and words: un café à Zürich", ai_summary="A multimodal model.", authors=["C"],
         upvotes=20, topics={"multimodal": 5.0}),
]
# Readers with the same topics share one digest, so one provider call.
TOPIC_SETS = [("agents",), ("code",), ("agents", "code"), ("multimodal",)]


def post_event(esp: str, call: tuple[str, dict]):
    """Post a provider's webhook call (body, HTTP headers) to our tracking webhook."""
    body, headers = call
    meta = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}
    return Client(enforce_csrf_checks=True).post(f"/anymail/{esp}/tracking/", data=body, content_type="application/json", **meta)


class ProviderContract:
    fake_class = None  # the provider's fake, a tests.support.fake_providers.FakeProvider

    @pytest.fixture
    def fake(self):
        with self.fake_class() as fake:
            yield fake

    @pytest.fixture
    def provider(self, settings, fake):
        """This process sends through the provider's Anymail backend to the fake, and our
        webhook takes the provider's events."""
        settings.EMAIL_BACKEND = fake.backend
        settings.ANYMAIL = {**settings.ANYMAIL, **fake.anymail_settings(), **fake.webhook_settings()}
        settings.WEBHOOK_PROVIDER = fake.esp
        return fake

    @staticmethod
    def readers(topics, count: int, prefix: str = "reader", topic_sets=TOPIC_SETS) -> list[Subscriber]:
        return [
            make_subscriber(f"{prefix}{i}@example.org", topics=[topics[slug] for slug in topic_sets[i % len(topic_sets)]])
            for i in range(count)
        ]

    @staticmethod
    def due(readers) -> list[int]:
        """A delivery due today for each reader (what the dispatcher creates)."""
        return [Delivery.objects.create(subscriber=r, digest_date=timezone.now().date()).pk for r in readers]

    # --- sending -------------------------------------------------------------------------

    @pytest.mark.worker
    def test_each_reader_gets_their_own_digest_in_shared_batch_calls(self, digest_workers, fake, topics, make_scrape):
        worker = digest_workers({"TEST_EMAIL_BACKEND": fake.backend, **fake.env()})
        make_scrape(PAPERS)
        readers = self.readers(topics, 10)

        report = dispatch_now(ignore_hour=True)
        assert report.queued == 10
        wait_settled()

        received = fake.accepted
        assert Counter(m.to for m in received) == Counter(r.email for r in readers), worker.output()[-3000:]
        # One call per distinct digest, every reader of it in that call.
        assert len(fake.calls) == len(TOPIC_SETS) and all(call.accepted for call in fake.calls)
        by_email = {r.email: r for r in readers}
        for message in received:
            reader = by_email[message.to]
            # Their own one-click unsubscribe header and links, signed for them alone.
            url = unsubscribe_url_of(message)
            assert tokens.read_token(path_of(url).split("/")[2], tokens.UNSUBSCRIBE)[0] == reader
            assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert message.headers["List-Id"] == "Trending Papers Digest <digest.testserver>"
            [prefs] = re.findall(r"http://testserver/preferences/[^\s\"<]+", message.text)
            assert tokens.read_token(path_of(prefs).split("/")[2], tokens.PREFERENCES)[0] == reader
            assert url in message.text and f'href="{url}"' in message.html and f'href="{prefs}"' in message.html
            names = [t.name for t in reader.topics.order_by("display_order")]
            assert f"Your topics: {', '.join(names)}" in message.text
            # Every field filled in: no merge tag of any provider is left.
            assert merge_tags("\n".join([message.subject, message.text, message.html, *message.headers.values()])) == Counter()
            # Their topics' papers and no other.
            slugs = set(reader.topics.values_list("slug", flat=True))
            for paper in PAPERS:
                assert (f"https://arxiv.org/abs/{paper['arxiv_id']}" in message.text) == bool(slugs & set(paper["topics"]))
        # Each delivery recorded once, with the id the provider gave the call or the message.
        rows = list(Delivery.objects.values_list("status", "provider_message_id"))
        assert {status for status, _ in rows} == {S.SENT} and all(message_id for _, message_id in rows)

    def test_readers_with_different_digests_share_a_call_and_each_gets_their_own(self, provider, topics, make_scrape, settings):
        """A personal ranking: every reader their own order and notes. They still go out in one
        call (a personal batch), each with exactly their papers, notes and vote links."""
        settings.DIGEST_RANKING = "tests.support.rankings.PerReaderOrder"
        make_scrape(PAPERS + PERSONAL_PAPERS)
        readers = self.readers(topics, 12, prefix="personal", topic_sets=[("agents", "code", "multimodal")])
        ids = self.due(readers)
        expected = {d.subscriber.email: expected_digest(d) for d in Delivery.objects.filter(pk__in=ids).select_related("subscriber")}
        assert len({tuple(e.arxiv_ids) + tuple(e.notes.items()) for e in expected.values()}) >= 8  # different digests

        report = chunks.send_chunk(ids, claimer="contract")

        assert report.sent == 12 and report.calls == 1 and len(provider.calls) == 1
        assert Counter(m.to for m in provider.accepted) == Counter(r.email for r in readers)
        for message in provider.accepted:
            assert_own_digest(expected[message.to], message.subject, message.text, message.html)
            url = unsubscribe_url_of(message)
            assert tokens.read_token(path_of(url).split("/")[2], tokens.UNSUBSCRIBE)[0].email == message.to
        # What each was sent is theirs: the content recorded is their papers, in their order.
        for delivery in Delivery.objects.filter(pk__in=ids).select_related("subscriber", "content"):
            assert delivery.status == S.SENT
            assert [p.arxiv_id for p in delivery.content.ordered_papers()] == expected[delivery.subscriber.email].arxiv_ids

    def test_a_refused_recipient_is_suppressed_and_the_others_in_its_call_get_theirs(self, provider, topics, make_scrape):
        make_scrape(PAPERS)
        readers = self.readers(topics, 4, prefix="refusal", topic_sets=[("agents",)])  # one digest, one call
        ids = self.due(readers)
        refused = readers[1]
        provider.refuse = {refused.email}

        chunks.send_chunk(ids, claimer="contract")

        assert Counter(m.to for m in provider.accepted) == Counter(r.email for r in readers if r != refused)
        statuses = dict(Delivery.objects.values_list("subscriber__email", "status"))
        assert statuses == {r.email: S.FAILED if r == refused else S.SENT for r in readers}
        assert dict(Subscriber.objects.values_list("email", "status")) == {
            r.email: Subscriber.Status.BOUNCED if r == refused else Subscriber.Status.ACTIVE for r in readers
        }

    def test_429_is_retried_no_sooner_than_retry_after_and_then_sends_each_once(self, provider, topics, make_scrape):
        make_scrape(PAPERS)
        readers = self.readers(topics, 3, prefix="throttled")
        ids = self.due(readers)
        provider.fail_next(("429", 42))

        with pytest.raises(chunks.RetryLater) as retry:
            chunks.send_chunk(ids, claimer="contract")
        assert retry.value.countdown >= 42
        assert provider.accepted == [] and set(Delivery.objects.values_list("status", flat=True)) == {S.PENDING}
        assert all(queued_at >= timezone.now() for queued_at in Delivery.objects.values_list("queued_at", flat=True))

        chunks.send_chunk(ids, claimer="contract", attempt=1)
        assert Counter(m.to for m in provider.accepted) == Counter(r.email for r in readers)
        assert set(Delivery.objects.values_list("status", flat=True)) == {S.SENT}

    def test_a_5xx_is_retried_and_nobody_is_blamed(self, provider, topics, make_scrape):
        make_scrape(PAPERS)
        readers = self.readers(topics, 3, prefix="unwell")
        ids = self.due(readers)
        provider.fail_next(("500",))

        with pytest.raises(chunks.RetryLater):
            chunks.send_chunk(ids, claimer="contract")
        assert provider.accepted == [] and set(Delivery.objects.values_list("status", flat=True)) == {S.PENDING}
        assert set(Subscriber.objects.values_list("status", "soft_bounces")) == {(Subscriber.Status.ACTIVE, 0)}

        chunks.send_chunk(ids, claimer="contract", attempt=1)
        assert Counter(m.to for m in provider.accepted) == Counter(r.email for r in readers)

    def test_a_key_the_provider_refuses_is_a_configuration_error(self, provider, topics, make_scrape, caplog):
        make_scrape(PAPERS)
        readers = self.readers(topics, 3, prefix="misconfigured")
        ids = self.due(readers)
        provider.api_key = "the-key-was-changed"  # ours is now refused with a 401

        with pytest.raises(chunks.RetryLater) as retry:
            chunks.send_chunk(ids, claimer="contract")
        # Not the readers' fault: they wait (the longest backoff), nobody bounces, admins hear.
        assert retry.value.countdown == app_settings.DIGEST_RETRY_BACKOFF_MAX
        assert "event=digest.provider_configuration_error" in caplog.text and "HTTP 401" in caplog.text
        assert provider.accepted == []
        assert set(Delivery.objects.values_list("status", flat=True)) == {S.PENDING}
        assert set(Subscriber.objects.values_list("status", "soft_bounces")) == {(Subscriber.Status.ACTIVE, 0)}

    # --- the provider's events -------------------------------------------------------------

    def sent_digests(self, provider, topics, make_scrape, prefix: str):
        """Three readers, each sent a digest through the provider: {reader: message received}."""
        make_scrape(PAPERS)
        readers = self.readers(topics, 3, prefix=prefix)
        chunks.send_chunk(self.due(readers), claimer="contract")
        received = {m.to: m for m in provider.accepted}
        return {reader: received[reader.email] for reader in readers}

    def test_a_hard_bounce_suppresses_the_reader_it_names_and_nobody_else(self, provider, topics, make_scrape):
        sent = self.sent_digests(provider, topics, make_scrape, "hard")
        bounced, *others = sent
        response = post_event(provider.esp, provider.tracking_event("hard_bounce", sent[bounced]))
        assert response.status_code == 200, response.content
        assert Subscriber.objects.get(pk=bounced.pk).status == Subscriber.Status.BOUNCED
        assert {Subscriber.objects.get(pk=r.pk).status for r in others} == {Subscriber.Status.ACTIVE}
        [event] = ConsentEvent.objects.all()
        assert event.subscriber_id == bounced.pk and event.details["esp"].lower() == provider.esp

        # The same bounce about another reader's message changes nothing for that reader.
        other_message = sent[others[0]]
        misaddressed = provider.tracking_event("hard_bounce", dataclasses.replace(other_message, to=others[1].email))
        assert post_event(provider.esp, misaddressed).status_code == 200
        assert Subscriber.objects.get(pk=others[1].pk).status == Subscriber.Status.ACTIVE

    def test_soft_bounces_suppress_at_the_limit_and_a_delivery_resets_the_count(self, provider, topics, make_scrape, settings):
        sent = self.sent_digests(provider, topics, make_scrape, "soft")
        reader, *others = sent
        message = sent[reader]

        def soft_bounces():
            found = Subscriber.objects.get(pk=reader.pk)
            return found.status, found.soft_bounces

        for count in range(1, settings.DIGEST_SOFT_BOUNCE_LIMIT):
            assert post_event(provider.esp, provider.tracking_event("soft_bounce", message)).status_code == 200
            assert soft_bounces() == (Subscriber.Status.ACTIVE, count)
        assert post_event(provider.esp, provider.tracking_event("delivered", message)).status_code == 200
        assert soft_bounces() == (Subscriber.Status.ACTIVE, 0)
        for _ in range(settings.DIGEST_SOFT_BOUNCE_LIMIT):
            assert post_event(provider.esp, provider.tracking_event("soft_bounce", message)).status_code == 200
        assert soft_bounces() == (Subscriber.Status.BOUNCED, settings.DIGEST_SOFT_BOUNCE_LIMIT)
        assert {Subscriber.objects.get(pk=r.pk).status for r in others} == {Subscriber.Status.ACTIVE}
