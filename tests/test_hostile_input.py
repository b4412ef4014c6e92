"""The hostile-input battery (tests/support/hostile_cases.py) through Django's test client; the same
cases run over real HTTP against gunicorn in chaos/hostile_input.py."""

import pytest
from django.test import Client

from .support import hostile_cases
from .support.hostile_cases import Response, World

# Each request commits for real, as on the server, so the emails it queues go out before the
# case looks (some cases count what was mailed).
pytestmark = pytest.mark.django_db(transaction=True)


class TestClientHTTP:
    """Adapter: csrf=True sends a valid token (checks off), csrf=False sends none (checks on)."""

    def request(self, method, path, data=None, content_type=None, cookies=None, csrf=False, source_ip="127.0.0.1", multipart=False,
                headers=None):
        client = Client(enforce_csrf_checks=not csrf, raise_request_exception=False, REMOTE_ADDR=source_ip, headers=headers)
        for name, value in (cookies or {}).items():
            client.cookies[name] = value
        kwargs = {}
        if data is not None:
            kwargs["data"] = data
        if content_type:
            kwargs["content_type"] = content_type
        response = getattr(client, method.lower())(path, **kwargs)
        return Response(response.status_code, response.content.decode(errors="replace"), dict(response.headers))

    def mail_to(self, address: str) -> list[str]:
        """The text of every email sent to `address` (tasks run eagerly: all are sent by now)."""
        from django.core import mail

        return [m.body for m in mail.outbox if address.lower() in (a.lower() for a in m.to)]


@pytest.fixture
def world(topics):
    return World.create()


@pytest.mark.parametrize("case", hostile_cases.CASES, ids=lambda c: c.__name__)
def test_hostile_case_holds(case, world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        results = case(TestClientHTTP(), world)
    failed = [name for name, held in results if not held]
    assert results, "the case tried nothing"
    assert failed == [], failed


def test_signup_flood_is_rate_limited_per_ip(world, settings, django_capture_on_commit_callbacks):
    settings.SIGNUP_RATE_LIMIT = "25/m"
    with django_capture_on_commit_callbacks(execute=True):
        results = hostile_cases.case_signup_flood(TestClientHTTP(), world, limit=25)
    assert [held for _, held in results] == [True, True, True], results
