"""The pages around digests: "view in browser", the staff preview, and `send_digests`."""

import re
import time
from email import message_from_bytes, policy
from io import StringIO
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import Client

from newsletter.models import Delivery
from newsletter.tasks.digests import dispatch_now
from subscriptions import tokens

from .helpers import make_subscriber, path_of, personal_links


def papers():
    return [
        dict(arxiv_id="2611.30001", title='Tricky <i>title</i> & "more"', abstract="Body.", authors=["A"], upvotes=5,
             topics={"agents": 5.0}),
        dict(arxiv_id="2611.30002", title="Second", abstract="Body.", authors=["B"], upvotes=3, topics={"code": 5.0}),
    ]


def parsed(message):
    return message_from_bytes(message.message().as_bytes(), policy=policy.default)


def view_url_in(message) -> str:
    text = parsed(message).get_body(preferencelist=("plain",)).get_content()
    [url] = re.findall(r"View in browser: (\S+)", text)
    return url


def test_view_in_browser_shows_that_recipients_digest_only(topics, make_scrape):
    make_scrape(papers())
    first = make_subscriber("first@example.org", topics=[topics["agents"]])
    second = make_subscriber("second@example.org", topics=[topics["code"]])
    dispatch_now(ignore_hour=True)
    by_to = {m.to[0]: m for m in mail.outbox}
    url = view_url_in(by_to[first.email])

    response = Client().get(path_of(url))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Tricky &lt;i&gt;title&lt;/i&gt; &amp; " in page and "<i>title" not in page
    # Issue 8 #3: a forwarded web copy must not unsubscribe the reader or change their
    # settings: its preferences and unsubscribe links go to the "email me a link" form.
    assert personal_links(page) == [], personal_links(page)
    assert re.findall(r'href="([^"]+)"[^>]*>(Change topics, frequency or send time|Unsubscribe)</a>', page) == [
        ("http://testserver/preferences/", "Change topics, frequency or send time"), ("http://testserver/preferences/", "Unsubscribe")]
    assert "2611.30002" not in page
    assert "script-src" not in response["Content-Security-Policy"] and "default-src 'none'" in response["Content-Security-Policy"]
    assert response["Referrer-Policy"] == "no-referrer"

    # Another subscriber's link to this delivery, a tampered link, a revoked one: refused.
    delivery = Delivery.objects.get(subscriber=first)
    foreign = tokens.make_token(second, tokens.VIEW_DIGEST, {"d": delivery.pk})
    assert Client().get(f"/digest/{foreign}/").status_code == 404
    token = path_of(url).split("/")[2]
    assert Client().get(f"/digest/{token[:-2]}xx/").status_code == 400
    assert Client().get(f"/digest/{tokens.make_token(first, tokens.VIEW_DIGEST, {'d': 'x'})}/").status_code == 404
    first.revoke_links()
    assert Client().get(path_of(url)).status_code == 400
    assert Client().post(path_of(url)).status_code == 405


def test_view_in_browser_links_expire(topics, make_scrape, settings):
    """Issue 8 #3: a web copy link must not work forever (DIGEST_VIEW_LINK_MAX_AGE, 30 days)."""
    make_scrape(papers())
    reader = make_subscriber("reader@example.org", topics=[topics["agents"]])
    dispatch_now(ignore_hour=True)
    delivery = Delivery.objects.get(subscriber=reader)
    with mock.patch("time.time", return_value=time.time() - 29 * 86400):
        month_old = tokens.make_token(reader, tokens.VIEW_DIGEST, {"d": delivery.pk})
    with mock.patch("time.time", return_value=time.time() - 31 * 86400):
        too_old = tokens.make_token(reader, tokens.VIEW_DIGEST, {"d": delivery.pk})
    assert Client().get(f"/digest/{month_old}/").status_code == 200
    response = Client().get(f"/digest/{too_old}/")
    assert response.status_code == 410 and "Tricky" not in response.content.decode()
    assert settings.DIGEST_VIEW_LINK_MAX_AGE == 30 * 86400
    settings.DIGEST_VIEW_LINK_MAX_AGE = 40 * 86400
    assert Client().get(f"/digest/{too_old}/").status_code == 200


@pytest.fixture
def staff_client(db):
    user = User.objects.create_superuser("staff", "staff@example.org", "pw-staff-123")
    client = Client()
    client.force_login(user)
    return client


def test_staff_preview_of_the_next_digest_sends_and_saves_nothing(topics, make_scrape, staff_client):
    make_scrape(papers())
    reader = make_subscriber("preview@example.org", topics=[topics["agents"], topics["code"]])
    response = staff_client.post(
        "/admin/subscriptions/subscriber/",
        {"action": "preview_next_digest", "_selected_action": [reader.pk]},
    )
    assert response.status_code == 302
    page = staff_client.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert "Preview only: nothing is sent or saved." in html
    assert re.search(r"<code>\d new in [^<]*Agents and tool use[^<]* · \d{1,2} [A-Z][a-z]{2}</code>", html), html
    assert "<iframe title=\"HTML part\" sandbox srcdoc=\"" in html and "<i>title" not in html
    assert "List-Unsubscribe-Post" in html
    assert not Delivery.objects.exists() and not mail.outbox

    # Without a scrape the preview says why there would be no email.
    nobody = make_subscriber("robots@example.org", topics=[topics["robotics"]])
    page = staff_client.get(f"/admin/newsletter/delivery/preview/{nobody.pk}/")
    assert "Nothing new matches" in page.content.decode()
    # Not for anonymous visitors.
    assert Client().get(f"/admin/newsletter/delivery/preview/{reader.pk}/").status_code == 302
    # The deliveries list (read-only) is there too.
    assert staff_client.get("/admin/newsletter/delivery/").status_code == 200


def test_send_digests_command_dry_run_then_send(topics, make_scrape):
    make_scrape(papers())
    make_subscriber("c1@example.org", topics=[topics["agents"]], send_hour=23)
    make_subscriber("c2@example.org", topics=[topics["code"]], send_hour=23)
    make_subscriber("c3@example.org", topics=[topics["robotics"]], send_hour=23)

    out = StringIO()
    call_command("send_digests", "--all", "--dry-run", stdout=out)
    assert re.search(r"dry run: due=3 would_send=2 would_skip=1 digests=2 seconds=", out.getvalue())
    assert not Delivery.objects.exists() and not mail.outbox

    out = StringIO()
    call_command("send_digests", "--all", stdout=out)
    assert re.search(r"^due=3 sent=2 skipped=1 failed=0 still_open=0 seconds=", out.getvalue())
    assert sorted(m.to[0] for m in mail.outbox) == ["c1@example.org", "c2@example.org"]

    out = StringIO()
    call_command("send_digests", "--all", stdout=out)
    assert out.getvalue().startswith("due=0 sent=0")
    assert len(mail.outbox) == 2


def test_send_digests_command_refuses_without_a_good_scrape(topics, make_scrape):
    make_subscriber("c1@example.org", topics=[topics["agents"]])
    make_scrape([], status="failed")
    with pytest.raises(CommandError, match="failed"):
        call_command("send_digests", "--all", stdout=StringIO())
