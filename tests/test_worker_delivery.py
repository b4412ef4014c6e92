"""The confirmation email is queued on Redis after commit and delivered by a real Celery
worker process over SMTP to a real SMTP server."""

import pytest
from django.test import Client

from subscriptions.models import Subscriber

from .helpers import links_in, path_of

pytestmark = pytest.mark.worker


def test_signup_email_goes_through_real_worker_to_smtp(celery_worker, topics, redis_clean):
    client = Client()
    response = client.post("/", {"email": "queued@example.org", "topics": ["agents", "code"], "frequency": "daily"})
    assert response.status_code == 303  # redirect-after-POST to /check-inbox/
    received = celery_worker.smtp_sink.wait_for(1)
    assert len(received) == 1, celery_worker.output()[-3000:]
    message = received[0]["message"]
    assert received[0]["envelope_to"] == ["queued@example.org"]
    assert message["To"] == "queued@example.org"
    assert "Confirm" in message["Subject"]
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    [link] = links_in(text, "/confirm/")
    assert link in html
    assert "succeeded" in celery_worker.output()

    # The link from the received email confirms the subscriber.
    assert client.post(path_of(link)).status_code == 200
    assert Subscriber.objects.get(email="queued@example.org").status == Subscriber.Status.ACTIVE
