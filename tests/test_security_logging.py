"""What anyone on the internet can make Django log must not turn into email to ADMINS: a
forged Host header is logged only; failed webhook authentication is logged every time and
mailed at most once an hour (a wrong webhook secret on our side would lose every bounce).
Real requests through the test client, the LOGGING setting as configured, mail.outbox."""

import io
import logging
from base64 import b64encode

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client

ADMIN = "admin@example.org"


@pytest.fixture
def admins(settings):
    settings.ADMINS = [("Admin", ADMIN)]
    settings.ALLOWED_HOSTS = ["testserver"]
    return settings


@pytest.fixture
def console_log():
    """What LOGGING's "console" handler writes during the test."""
    [console] = [h for h in logging.getLogger("django.request").handlers if h.name == "console"]
    buffer = io.StringIO()
    previous = console.setStream(buffer)
    yield buffer
    console.setStream(previous)


def admin_mail():
    return [m for m in mail.outbox if ADMIN in m.to]


def test_forged_host_headers_are_logged_but_never_mailed(db, admins, console_log):
    client = Client(raise_request_exception=False)
    assert client.get("/").status_code == 200  # the real host works
    for n in range(5):
        response = client.get("/", HTTP_HOST=f"attacker-{n}.example")
        assert response.status_code == 400
    logged = console_log.getvalue()
    assert logged.count("ERROR django.security.DisallowedHost Invalid HTTP_HOST header") == 5, logged
    assert admin_mail() == []


def test_failed_webhook_authentication_is_mailed_at_most_once_an_hour(db, admins, console_log):
    admins.WEBHOOK_PROVIDER = "postmark"
    admins.ANYMAIL = {**admins.ANYMAIL, "WEBHOOK_SECRET": "hook:right-password"}
    wrong = {"HTTP_AUTHORIZATION": "Basic " + b64encode(b"hook:wrong-password").decode()}
    client = Client(raise_request_exception=False)
    for _ in range(10):
        response = client.post("/anymail/postmark/tracking/", data="{}", content_type="application/json", **wrong)
        assert response.status_code == 400
    logged = console_log.getvalue()
    assert logged.count("ERROR django.security.AnymailWebhookValidationFailure Missing or invalid basic auth") == 10, logged
    [alert] = admin_mail()
    assert "Missing or invalid basic auth in Anymail Postmark webhook" in alert.subject

    # An hour later (the marker in the cache has expired) the next failure is mailed again.
    cache.clear()
    client.post("/anymail/postmark/tracking/", data="{}", content_type="application/json", **wrong)
    assert len(admin_mail()) == 2


def test_server_errors_still_reach_the_admins(db, admins, settings):
    """The filter is only on what anyone can trigger: a real 500 is mailed every time."""
    from django.urls import path

    def broken(request):
        raise RuntimeError("a real bug")

    urlconf = type("urls", (), {"urlpatterns": [path("broken/", broken)]})
    settings.ROOT_URLCONF = urlconf
    client = Client(raise_request_exception=False)
    for _ in range(2):
        assert client.get("/broken/").status_code == 500
    assert len(admin_mail()) == 2


def test_django_log_lines_carry_no_working_link(db, admins, console_log, topics):
    """A CSRF failure on a preferences page makes Django log the request path: the token in it
    is blanked, so whoever reads the log gets no working link."""
    from subscriptions import tokens
    from subscriptions.models import Subscriber

    reader = Subscriber.objects.create(email="log-reader@example.org", status=Subscriber.Status.ACTIVE)
    token = tokens.make_token(reader, tokens.PREFERENCES)
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    response = client.post(f"/preferences/{token}/", {"action": "pause"})
    assert response.status_code == 403
    logged = console_log.getvalue()
    assert f"/preferences/{reader.pk}.[redacted]/" in logged, logged
    assert token.partition(".")[2] not in logged
