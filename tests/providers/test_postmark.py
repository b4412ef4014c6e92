"""Postmark: the provider contract (contract.py) against the fake Postmark, and what only
Postmark does: our backend fills the merge fields in, digests may go on a message stream of
their own, and a 422 is read by its ErrorCode."""

import pytest
from django.core.mail import send_mail

from newsletter.app_settings import app_settings
from newsletter.digests import chunks
from newsletter.email_providers import registry
from newsletter.models import Delivery
from subscriptions.models import Subscriber

from ..support.fake_providers import FakePostmark
from .contract import PAPERS, ProviderContract


class TestPostmark(ProviderContract):
    fake_class = FakePostmark

    def test_each_merge_field_is_filled_once_with_that_readers_value(self, provider):
        backend = registry.backend_class("postmark")()
        values = {"unsubscribe_url": "{{view_url}}", "view_url": "https://example.org/v/1"}
        filled = backend.fill_merge_fields("{{unsubscribe_url}} {{view_url}} {{other}} {{ view_url }}", values)
        # A value that holds a field stays as it is; a key we did not give, or written another
        # way, is left alone (and the pre-send check refuses content holding one).
        assert filled == "{{view_url}} https://example.org/v/1 {{other}} {{ view_url }}"

    def test_digests_go_on_their_own_message_stream_and_other_mail_does_not(self, provider, settings, topics, make_scrape):
        settings.ANYMAIL = {**settings.ANYMAIL, "POSTMARK_DIGEST_MESSAGE_STREAM": "broadcast"}
        make_scrape(PAPERS)
        readers = self.readers(topics, 3, prefix="stream")
        chunks.send_chunk(self.due(readers), claimer="contract")
        send_mail("Confirm your subscription", "Click.", None, ["new@example.org"])

        streams = {m.to: m.extra["MessageStream"] for m in provider.accepted}
        assert streams == {**{r.email: "broadcast" for r in readers}, "new@example.org": "outbound"}

    def test_a_stream_postmark_does_not_know_stops_sending_without_blaming_anyone(self, provider, settings, topics, make_scrape):
        settings.ANYMAIL = {**settings.ANYMAIL, "POSTMARK_DIGEST_MESSAGE_STREAM": "newsletters"}
        make_scrape(PAPERS)
        ids = self.due(self.readers(topics, 4, prefix="nostream", topic_sets=[("agents",)]))

        with pytest.raises(chunks.RetryLater) as retry:
            chunks.send_chunk(ids, claimer="contract")
        assert retry.value.countdown == app_settings.DIGEST_RETRY_BACKOFF_MAX
        assert len(provider.calls) == 1 and provider.accepted == []
        assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.PENDING}
        assert set(Subscriber.objects.values_list("status", "soft_bounces")) == {(Subscriber.Status.ACTIVE, 0)}

    def test_a_422_about_our_account_is_not_read_as_a_refused_recipient(self, provider, topics, make_scrape):
        """Read the generic way, a 422 naming nobody would be narrowed down by halving the call
        until each reader failed alone (a soft bounce each); Postmark's ErrorCode says it is ours."""
        make_scrape(PAPERS)
        ids = self.due(self.readers(topics, 4, prefix="pending", topic_sets=[("agents",)]))
        provider.fail_next(("422", 412, "Your account is pending approval. Until it is approved you can only send to your domain."))

        with pytest.raises(chunks.RetryLater) as retry:
            chunks.send_chunk(ids, claimer="contract")
        assert retry.value.countdown == app_settings.DIGEST_RETRY_BACKOFF_MAX
        assert len(provider.calls) == 1 and provider.accepted == []
        assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.PENDING}
        assert set(Subscriber.objects.values_list("status", "soft_bounces")) == {(Subscriber.Status.ACTIVE, 0)}
