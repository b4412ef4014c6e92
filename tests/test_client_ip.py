"""Who the client is behind TRUSTED_PROXY_COUNT reverse proxies: the address the sign-up rate
limit counts and the consent log records. X-Forwarded-For is read only as far as the trusted
proxies wrote it (the Nth entry from the right), so a client cannot choose its own address;
a header that is missing, too short or not an address falls back to the connecting address
(REMOTE_ADDR) and never answers 500."""

import pytest
from django.test import Client

from subscriptions.models import ConsentEvent

from .helpers import make_subscriber, preferences_path
from .test_signup import post_signup

pytestmark = pytest.mark.django_db

PROXY = "10.0.0.5"  # REMOTE_ADDR when gunicorn sits behind a proxy
CLIENT = "198.51.100.7"
SPOOFED = "203.0.113.66"


def client(forwarded_for: str | None) -> Client:
    headers = {} if forwarded_for is None else {"X-Forwarded-For": forwarded_for}
    return Client(REMOTE_ADDR=PROXY, headers=headers)


@pytest.mark.parametrize(
    "proxies, forwarded_for, expected",
    [
        (0, None, PROXY),
        (0, CLIENT, PROXY),  # no proxy trusted: the header is the client's own claim
        (1, CLIENT, CLIENT),
        (1, f"{SPOOFED}, {CLIENT}", CLIENT),  # what the client sent itself stays on the left
        (1, f"{SPOOFED},{CLIENT}", CLIENT),
        (2, f"{SPOOFED}, {CLIENT}, 10.0.0.9", CLIENT),
        (1, "2001:db8::7", "2001:db8::7"),
        (1, None, PROXY),  # no header: the request did not come through the proxy
        (2, CLIENT, PROXY),  # fewer entries than proxies: nothing in it is vouched for
        (1, "", PROXY),
        (1, "a, b", PROXY),
        (1, f"{CLIENT}, unknown", PROXY),
        (1, " , ", PROXY),
        (1, f"{CLIENT}:4711", PROXY),
        (1, "1.2.3.4, " * 800 + "x", PROXY),
    ],
)
def test_consent_log_records_the_client_behind_the_trusted_proxies(settings, topics, proxies, forwarded_for, expected):
    settings.TRUSTED_PROXY_COUNT = proxies
    reader = make_subscriber(topics=[topics["agents"]])
    response = client(forwarded_for).post(preferences_path(reader), {"action": "pause"})
    assert response.status_code == 302
    assert reader.consent_events.get(kind=ConsentEvent.Kind.PAUSE).ip_address == expected


@pytest.mark.parametrize("forwarded_for", [None, "", "a, b", "unknown", "::::", "1.2.3.4, " * 800 + "x"])
@pytest.mark.parametrize("proxies", [0, 1, 2])
def test_a_broken_forwarded_for_never_answers_500(settings, topics, django_capture_on_commit_callbacks, proxies, forwarded_for):
    settings.TRUSTED_PROXY_COUNT = proxies
    with django_capture_on_commit_callbacks(execute=True):
        response = post_signup(client(forwarded_for), email="broken-header@example.org")
    assert response.status_code == 200


def test_the_rate_limit_counts_the_client_behind_the_proxy(settings, topics, django_capture_on_commit_callbacks):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.SIGNUP_RATE_LIMIT = "3/m"
    with django_capture_on_commit_callbacks(execute=True):
        # One client changing what it puts in the header: still one client.
        statuses = [post_signup(client(f"203.0.113.{i}, {CLIENT}"), email=f"spoof{i}@example.org").status_code for i in range(5)]
        # Another client behind the same proxy has its own allowance.
        neighbour = post_signup(client("198.51.100.8"), email="neighbour@example.org")
    assert statuses == [200, 200, 200, 429, 429]
    assert neighbour.status_code == 200


def test_without_a_trusted_proxy_a_spoofed_header_does_not_lift_the_limit(settings, topics, django_capture_on_commit_callbacks):
    settings.SIGNUP_RATE_LIMIT = "3/m"
    assert settings.TRUSTED_PROXY_COUNT == 0  # the default
    with django_capture_on_commit_callbacks(execute=True):
        statuses = [post_signup(client(f"203.0.113.{i}"), email=f"direct{i}@example.org").status_code for i in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
