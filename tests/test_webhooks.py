"""Provider tracking webhooks through Anymail's real views: payloads shaped like the ones
Mailgun, SendGrid and Postmark document; each suppresses exactly its address."""

import hashlib
import hmac
import json
import time
from base64 import b64encode

import pytest
from django.test import Client

from subscriptions.models import ConsentEvent, Subscriber

from .helpers import make_subscriber

SECRET = "hook:s3cret-webhook-password"
SIGNING_KEY = "mailgun-webhook-signing-key-for-tests"


@pytest.fixture(autouse=True)
def webhook_settings(settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}
    return settings


@pytest.fixture
def readers(db):
    return {name: make_subscriber(f"{name}@example.org") for name in ("alice", "bob", "carol")}


def post(esp, payload, auth=SECRET):
    headers = {"HTTP_AUTHORIZATION": "Basic " + b64encode(auth.encode()).decode()} if auth else {}
    return Client(enforce_csrf_checks=True).post(
        f"/anymail/{esp}/tracking/", data=json.dumps(payload), content_type="application/json", **headers
    )


def statuses():
    return dict(Subscriber.objects.values_list("email", "status"))


def mailgun(event, recipient, **fields):
    """Mailgun's webhook body (event-data, signed with the webhook signing key)."""
    timestamp, token = str(int(time.time())), "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
    signature = hmac.new(SIGNING_KEY.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    data = {
        "event": event,
        "id": "G9Bn5sl1TC6nu79C8C0bwg",
        "timestamp": 1521233195.375624,
        "log-level": "error" if event == "failed" else "info",
        "recipient": recipient,
        "recipient-domain": recipient.split("@")[1],
        "message": {
            "headers": {
                "to": recipient,
                "message-id": "20260503182626.18666.16540@mg.example.org",
                "from": "Trending Papers <papers@mg.example.org>",
                "subject": "Trending papers: ...",
            },
            "attachments": [],
            "size": 111,
        },
        "tags": [],
        "user-variables": {},
        "flags": {"is-routed": False, "is-authenticated": True, "is-system-test": False, "is-test-mode": False},
        **fields,
    }
    return {"signature": {"timestamp": timestamp, "token": token, "signature": signature}, "event-data": data}


def mailgun_failed(recipient, severity):
    return mailgun(
        "failed", recipient, severity=severity, reason="bounce" if severity == "permanent" else "generic",
        **{"delivery-status": {"attempt-no": 1, "message": "", "code": 550 if severity == "permanent" else 452,
                               "description": "No such mailbox" if severity == "permanent" else "Mailbox full",
                               "session-seconds": 0.0}},
    )


def sendgrid(event, email, **fields):
    return [{
        "email": email, "timestamp": 1513299569, "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>", "event": event,
        "category": "digest", "sg_event_id": "6g4ZI7SA-xmRDv57GoPIPw==",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0", **fields,
    }]


def postmark(record_type, email, **fields):
    body = {
        "RecordType": record_type, "MessageStream": "outbound", "ID": 4323372036854775807, "Tag": "digest",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483", "ServerID": 23, "Email": email,
        "From": "papers@example.org", "BouncedAt": "2026-11-05T16:33:54.9070259Z", "DumpAvailable": True,
        "Inactive": True, "CanActivate": True, "Subject": "Trending papers", "Metadata": {},
    }
    body.update(fields)
    return body


def test_webhooks_refuse_calls_without_the_secret(readers, settings):
    payload = sendgrid("spamreport", "alice@example.org")
    assert post("sendgrid", payload, auth=None).status_code == 400
    assert post("sendgrid", payload, auth="hook:wrong").status_code == 400
    settings.ANYMAIL = {k: v for k, v in settings.ANYMAIL.items() if k != "WEBHOOK_SECRET"}
    assert post("sendgrid", payload).status_code == 403  # no secret configured: closed
    assert set(statuses().values()) == {Subscriber.Status.ACTIVE}
    assert not ConsentEvent.objects.exists()
    # A Mailgun call with the right basic auth but a forged signature is refused too.
    forged = mailgun("complained", "alice@example.org")
    forged["signature"]["signature"] = "0" * 64
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": SECRET}
    assert post("mailgun", forged).status_code == 400
    assert set(statuses().values()) == {Subscriber.Status.ACTIVE}


@pytest.mark.parametrize(
    "esp, payload, status",
    [
        ("mailgun", mailgun_failed("bob@example.org", "permanent"), Subscriber.Status.BOUNCED),
        ("mailgun", mailgun("complained", "bob@example.org"), Subscriber.Status.COMPLAINED),
        ("mailgun", mailgun("unsubscribed", "bob@example.org"), Subscriber.Status.UNSUBSCRIBED),
        ("sendgrid", sendgrid("bounce", "bob@example.org", reason="550 5.1.1 unknown recipient", status="5.1.1", type="bounce"),
         Subscriber.Status.BOUNCED),
        ("sendgrid", sendgrid("spamreport", "bob@example.org"), Subscriber.Status.COMPLAINED),
        ("sendgrid", sendgrid("unsubscribe", "bob@example.org"), Subscriber.Status.UNSUBSCRIBED),
        ("postmark", postmark("Bounce", "bob@example.org", Type="HardBounce", TypeCode=1, Name="Hard bounce",
                              Description="The server was unable to deliver your message (ex: unknown user, mailbox not found).",
                              Details="smtp;550 5.1.1 The email account that you tried to reach does not exist."),
         Subscriber.Status.BOUNCED),
        ("postmark", postmark("SpamComplaint", "bob@example.org", Type="SpamComplaint", TypeCode=512, Name="Spam complaint",
                              Details="Test spam complaint details"), Subscriber.Status.COMPLAINED),
        ("postmark", {"RecordType": "SubscriptionChange", "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
                      "ServerID": 123456, "MessageStream": "outbound", "ChangedAt": "2026-02-01T10:53:34.416071Z",
                      "Recipient": "bob@example.org", "Origin": "Recipient", "SuppressSending": True,
                      "SuppressionReason": "ManualSuppression", "Tag": "digest", "Metadata": {}},
         Subscriber.Status.UNSUBSCRIBED),
    ],
)
def test_hard_bounces_complaints_and_unsubscribes_suppress_that_address_only(readers, esp, payload, status):
    response = post(esp, payload)
    assert response.status_code == 200, response.content
    assert statuses() == {"alice@example.org": "active", "bob@example.org": status, "carol@example.org": "active"}
    [event] = ConsentEvent.objects.all()
    assert event.subscriber == readers["bob"] and event.details["esp"].lower() == esp
    assert event.user_agent.lower() == f"{esp} webhook"
    # The same event again changes nothing and logs nothing.
    assert post(esp, payload).status_code == 200
    assert ConsentEvent.objects.count() == 1


@pytest.mark.parametrize(
    "esp, soft",
    [
        ("mailgun", lambda email: mailgun_failed(email, "temporary")),
        ("sendgrid", lambda email: sendgrid("bounce", email, reason="421 try later", status="4.2.1", type="blocked")),
        ("postmark", lambda email: postmark("Bounce", email, Type="SoftBounce", TypeCode=4096, Name="Soft bounce",
                                            Details="mailbox full")),
    ],
)
def test_soft_bounces_suppress_after_three_in_a_row_and_a_delivery_resets_them(readers, esp, soft):
    carol = readers["carol"]
    for expected in (1, 2):
        assert post(esp, soft(carol.email)).status_code == 200
        carol.refresh_from_db()
        assert carol.status == Subscriber.Status.ACTIVE and carol.soft_bounces == expected

    # Delivered: the count starts again.
    delivered = {
        "mailgun": mailgun("delivered", carol.email),
        "sendgrid": sendgrid("delivered", carol.email, response="250 OK"),
        "postmark": {"RecordType": "Delivery", "ServerID": 23, "MessageStream": "outbound",
                     "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483", "Recipient": carol.email, "Tag": "digest",
                     "DeliveredAt": "2026-11-05T16:33:54.9070259Z", "Details": "Test delivery webhook details", "Metadata": {}},
    }[esp]
    assert post(esp, delivered).status_code == 200
    carol.refresh_from_db()
    assert carol.soft_bounces == 0

    for _ in range(3):
        assert post(esp, soft(carol.email)).status_code == 200
    carol.refresh_from_db()
    assert carol.status == Subscriber.Status.BOUNCED and carol.soft_bounces == 3
    assert statuses() == {"alice@example.org": "active", "bob@example.org": "active", "carol@example.org": "bounced"}
    kinds = list(ConsentEvent.objects.filter(subscriber=carol).order_by("id").values_list("details__soft_bounces", flat=True))
    assert kinds == [1, 2, 0, 1, 2, 3]
    assert ConsentEvent.objects.exclude(subscriber=carol).count() == 0
