"""Provider tracking webhooks through Anymail's real views: payloads shaped like the ones
Mailgun, SendGrid and Postmark document, signed the way each provider signs them; only the
configured provider's webhook answers, and an event changes an address only when it names a
message we sent to that address."""

import hashlib
import hmac
import json
import time
import uuid
from base64 import b64encode

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client

from subscriptions.models import ConsentEvent, Subscriber

from .helpers import make_subscriber, sent_digest

SECRET = "hook:s3cret-webhook-password"
SIGNING_KEY = "mailgun-webhook-signing-key-for-tests"
# SendGrid signs its Event Webhook with ECDSA (P-256); the account shows the public key.
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
SENDGRID_PUBLIC_KEY = b64encode(
    SENDGRID_KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
).decode()


@pytest.fixture(autouse=True)
def webhook_settings(settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY,
                        "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": SENDGRID_PUBLIC_KEY}
    return settings


@pytest.fixture
def readers(db):
    return {name: make_subscriber(f"{name}@example.org") for name in ("alice", "bob", "carol")}


def sendgrid_signature(body: str, timestamp: str | None = None) -> dict:
    timestamp = timestamp or str(int(time.time()))
    signature = SENDGRID_KEY.sign(timestamp.encode() + body.encode(), ec.ECDSA(hashes.SHA256()))
    return {"HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE": b64encode(signature).decode(),
            "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP": timestamp}


def post(esp, payload, auth=SECRET, signed=True):
    """POST to /anymail/<esp>/tracking/ with basic auth; SendGrid bodies signed as SendGrid does."""
    body = json.dumps(payload)
    headers = {"HTTP_AUTHORIZATION": "Basic " + b64encode(auth.encode()).decode()} if auth else {}
    if esp == "sendgrid" and signed:
        headers.update(sendgrid_signature(body))
    return Client(enforce_csrf_checks=True).post(f"/anymail/{esp}/tracking/", data=body, content_type="application/json", **headers)


def statuses():
    return dict(Subscriber.objects.values_list("email", "status"))


def mailgun_signature(timestamp: int | None = None, token: str | None = None) -> dict:
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    token = token or uuid.uuid4().hex + uuid.uuid4().hex[:18]  # Mailgun: 50 random characters
    signature = hmac.new(SIGNING_KEY.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {"timestamp": timestamp, "token": token, "signature": signature}


def mailgun(event, recipient, message_id, **fields):
    """Mailgun's webhook body (event-data, signed with the webhook signing key)."""
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
                "message-id": message_id,
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
    return {"signature": mailgun_signature(), "event-data": data}


def mailgun_failed(recipient, message_id, severity):
    return mailgun(
        "failed", recipient, message_id, severity=severity, reason="bounce" if severity == "permanent" else "generic",
        **{"delivery-status": {"attempt-no": 1, "message": "", "code": 550 if severity == "permanent" else 452,
                               "description": "No such mailbox" if severity == "permanent" else "Mailbox full",
                               "session-seconds": 0.0}},
    )


def sendgrid(event, email, message_id, **fields):
    """SendGrid's Event Webhook: an array; Anymail's anymail_id comes back as a custom arg."""
    return [{
        "email": email, "timestamp": 1513299569, "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>", "event": event,
        "category": "digest", "sg_event_id": "6g4ZI7SA-xmRDv57GoPIPw==", "anymail_id": message_id,
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0", **fields,
    }]


def postmark(record_type, email, message_id, **fields):
    body = {
        "RecordType": record_type, "MessageStream": "outbound", "ID": 4323372036854775807, "Tag": "digest",
        "MessageID": message_id, "ServerID": 23, "Email": email,
        "From": "papers@example.org", "BouncedAt": "2026-11-05T16:33:54.9070259Z", "DumpAvailable": True,
        "Inactive": True, "CanActivate": True, "Subject": "Trending papers", "Metadata": {},
    }
    body.update(fields)
    return body


def postmark_unsubscribe(email, message_id):
    return {"RecordType": "SubscriptionChange", "MessageID": message_id, "ServerID": 123456, "MessageStream": "outbound",
            "ChangedAt": "2026-02-01T10:53:34.416071Z", "Recipient": email, "Origin": "Recipient", "SuppressSending": True,
            "SuppressionReason": "ManualSuppression", "Tag": "digest", "Metadata": {}}


# (esp, event builder taking (address, message id), the status it leads to)
SUPPRESSING_EVENTS = [
    ("mailgun", lambda a, m: mailgun_failed(a, m, "permanent"), Subscriber.Status.BOUNCED),
    ("mailgun", lambda a, m: mailgun("complained", a, m), Subscriber.Status.COMPLAINED),
    ("mailgun", lambda a, m: mailgun("unsubscribed", a, m), Subscriber.Status.UNSUBSCRIBED),
    ("sendgrid", lambda a, m: sendgrid("bounce", a, m, reason="550 5.1.1 unknown recipient", status="5.1.1", type="bounce"),
     Subscriber.Status.BOUNCED),
    ("sendgrid", lambda a, m: sendgrid("spamreport", a, m), Subscriber.Status.COMPLAINED),
    ("sendgrid", lambda a, m: sendgrid("unsubscribe", a, m), Subscriber.Status.UNSUBSCRIBED),
    ("postmark", lambda a, m: postmark(
        "Bounce", a, m, Type="HardBounce", TypeCode=1, Name="Hard bounce",
        Description="The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        Details="smtp;550 5.1.1 The email account that you tried to reach does not exist."), Subscriber.Status.BOUNCED),
    ("postmark", lambda a, m: postmark("SpamComplaint", a, m, Type="SpamComplaint", TypeCode=512, Name="Spam complaint",
                                       Details="Test spam complaint details"), Subscriber.Status.COMPLAINED),
    ("postmark", postmark_unsubscribe, Subscriber.Status.UNSUBSCRIBED),
]
EVENT_IDS = [f"{esp}-{status}" for esp, _, status in SUPPRESSING_EVENTS]


def test_webhooks_refuse_calls_without_the_secret(readers, settings):
    settings.WEBHOOK_PROVIDER = "sendgrid"
    payload = sendgrid("spamreport", "alice@example.org", sent_digest(readers["alice"], "sendgrid"))
    assert post("sendgrid", payload, auth=None).status_code == 400
    assert post("sendgrid", payload, auth="hook:wrong").status_code == 400
    settings.ANYMAIL = {k: v for k, v in settings.ANYMAIL.items() if k != "WEBHOOK_SECRET"}
    assert post("sendgrid", payload).status_code == 403  # no secret configured: closed
    assert set(statuses().values()) == {Subscriber.Status.ACTIVE}
    assert not ConsentEvent.objects.exists()
    # A Mailgun call with the right basic auth but a forged signature is refused too.
    settings.WEBHOOK_PROVIDER = "mailgun"
    forged = mailgun("complained", "alice@example.org", sent_digest(readers["alice"], "mailgun"))
    forged["signature"]["signature"] = "0" * 64
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": SECRET}
    assert post("mailgun", forged).status_code == 400
    assert set(statuses().values()) == {Subscriber.Status.ACTIVE}


def test_only_the_configured_providers_webhook_answers(readers, settings):
    """On a Mailgun deployment a Postmark- or SendGrid-format complaint, with the right
    password, is 404 and suppresses nobody; so is every inbound URL."""
    settings.WEBHOOK_PROVIDER = "mailgun"
    bob = readers["bob"]
    assert post("postmark", postmark("SpamComplaint", bob.email, sent_digest(bob, "postmark"), Type="SpamComplaint",
                                     TypeCode=512)).status_code == 404
    assert post("sendgrid", sendgrid("spamreport", bob.email, sent_digest(bob, "sendgrid"))).status_code == 404
    assert post("mailgun", mailgun("complained", bob.email, "x"), auth="hook:wrong").status_code == 400  # mounted
    assert Client().post("/anymail/mailgun/inbound/", {}).status_code == 404
    assert Client().post("/anymail/mandrill/", {}).status_code == 404
    assert set(statuses().values()) == {Subscriber.Status.ACTIVE} and not ConsentEvent.objects.exists()

    # Mail sent over SMTP (or the console) has no provider: no webhook at all.
    for provider in ("smtp", "console"):
        settings.WEBHOOK_PROVIDER = provider
        assert post("mailgun", mailgun("complained", bob.email, sent_digest(bob, "mailgun"))).status_code == 404
    assert set(statuses().values()) == {Subscriber.Status.ACTIVE}


def test_webhooks_with_a_signature_scheme_stay_closed_until_its_key_is_set(readers, settings):
    bob = readers["bob"]
    settings.WEBHOOK_PROVIDER = "mailgun"
    settings.ANYMAIL = {k: v for k, v in settings.ANYMAIL.items() if k != "MAILGUN_WEBHOOK_SIGNING_KEY"}
    settings.ANYMAIL["MAILGUN_API_KEY"] = SIGNING_KEY  # Anymail would fall back to it; we do not
    assert post("mailgun", mailgun("complained", bob.email, sent_digest(bob, "mailgun"))).status_code == 403

    settings.WEBHOOK_PROVIDER = "sendgrid"
    settings.ANYMAIL = {k: v for k, v in settings.ANYMAIL.items() if k != "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY"}
    assert post("sendgrid", sendgrid("spamreport", bob.email, sent_digest(bob, "sendgrid"))).status_code == 403
    assert set(statuses().values()) == {Subscriber.Status.ACTIVE}


def test_sendgrid_events_must_carry_sendgrids_signature(readers, settings):
    settings.WEBHOOK_PROVIDER = "sendgrid"
    bob = readers["bob"]
    payload = sendgrid("spamreport", bob.email, sent_digest(bob, "sendgrid"))
    assert post("sendgrid", payload, signed=False).status_code == 400
    body = json.dumps(payload)
    other_body = json.dumps(sendgrid("spamreport", "alice@example.org", sent_digest(readers["alice"], "sendgrid")))
    response = Client().post("/anymail/sendgrid/tracking/", data=body, content_type="application/json",
                             HTTP_AUTHORIZATION="Basic " + b64encode(SECRET.encode()).decode(), **sendgrid_signature(other_body))
    assert response.status_code == 400  # a signature of another body
    assert set(statuses().values()) == {Subscriber.Status.ACTIVE}
    assert post("sendgrid", payload).status_code == 200
    assert statuses()["bob@example.org"] == Subscriber.Status.COMPLAINED


def test_mailgun_refuses_old_signatures_and_replayed_tokens(readers, settings):
    settings.WEBHOOK_PROVIDER = "mailgun"
    alice, bob = readers["alice"], readers["bob"]
    # A year-old event, correctly signed then, with the recipient swapped for another reader.
    old = mailgun("complained", bob.email, sent_digest(bob, "mailgun"))
    old["signature"] = mailgun_signature(timestamp=int(time.time()) - 365 * 86400)
    assert post("mailgun", old).status_code == 400
    # Signed for the future (a clock far off, or a signature made to be used later).
    ahead = mailgun("complained", bob.email, sent_digest(bob, "mailgun"))
    ahead["signature"] = mailgun_signature(timestamp=int(time.time()) + 3600)
    assert post("mailgun", ahead).status_code == 400
    assert set(statuses().values()) == {Subscriber.Status.ACTIVE}

    # A fresh event works once; the same token again, even in another body, is refused.
    fresh = mailgun("delivered", alice.email, sent_digest(alice, "mailgun"))
    assert post("mailgun", fresh).status_code == 200
    assert post("mailgun", fresh).status_code == 400
    replayed = mailgun("complained", bob.email, sent_digest(bob, "mailgun"))
    replayed["signature"] = fresh["signature"]
    assert post("mailgun", replayed).status_code == 400
    assert set(statuses().values()) == {Subscriber.Status.ACTIVE}
    assert not ConsentEvent.objects.exists()


def test_a_mailgun_call_that_failed_after_its_checks_can_be_retried_with_its_token(readers, settings):
    """A 500 (the database away, say) makes Mailgun retry the same call: its token must not
    count as used."""
    from anymail.signals import tracking
    from django.db import OperationalError

    settings.WEBHOOK_PROVIDER = "mailgun"
    bob = readers["bob"]
    payload = mailgun("complained", bob.email, sent_digest(bob, "mailgun"))

    def database_away(**kwargs):
        raise OperationalError("the database is unreachable")

    tracking.connect(database_away, dispatch_uid="test-database-away")
    try:
        body = json.dumps(payload)
        response = Client(raise_request_exception=False).post(
            "/anymail/mailgun/tracking/", data=body, content_type="application/json",
            HTTP_AUTHORIZATION="Basic " + b64encode(SECRET.encode()).decode())
        assert response.status_code == 500
    finally:
        tracking.disconnect(dispatch_uid="test-database-away")
    assert post("mailgun", payload).status_code == 200  # the retry
    assert statuses()["bob@example.org"] == Subscriber.Status.COMPLAINED
    assert post("mailgun", payload).status_code == 400  # and now it is used


@pytest.mark.parametrize("esp, build, status", SUPPRESSING_EVENTS, ids=EVENT_IDS)
def test_hard_bounces_complaints_and_unsubscribes_suppress_that_address_only(readers, settings, esp, build, status):
    settings.WEBHOOK_PROVIDER = esp
    message_id = sent_digest(readers["bob"], esp)
    response = post(esp, build("bob@example.org", message_id))
    assert response.status_code == 200, response.content
    assert statuses() == {"alice@example.org": "active", "bob@example.org": status, "carol@example.org": "active"}
    [event] = ConsentEvent.objects.all()
    assert event.subscriber == readers["bob"] and event.details["esp"].lower() == esp
    assert event.user_agent.lower() == f"{esp} webhook"
    assert event.details["message_id"].strip("<>") == message_id
    # The same event again (sent anew) changes nothing and logs nothing.
    assert post(esp, build("bob@example.org", message_id)).status_code == 200
    assert ConsentEvent.objects.count() == 1


@pytest.mark.parametrize("esp, build, status", SUPPRESSING_EVENTS, ids=EVENT_IDS)
def test_events_change_an_address_only_for_a_message_sent_to_it(readers, settings, esp, build, status):
    """An event must name a message we sent to that very address: another reader's message,
    a message we never sent, or none at all, suppresses nobody (and is acknowledged, so the
    provider does not retry it)."""
    settings.WEBHOOK_PROVIDER = esp
    alice, bob = readers["alice"], readers["bob"]
    alices_message = sent_digest(alice, esp)
    sent_digest(bob, esp)
    never_sent = f"{uuid.uuid4().hex}@mg.example.org" if esp == "mailgun" else str(uuid.uuid4())
    for message_id in (alices_message, never_sent, ""):
        response = post(esp, build(bob.email, message_id))
        assert response.status_code == 200, response.content
    assert set(statuses().values()) == {Subscriber.Status.ACTIVE}
    assert not ConsentEvent.objects.exists()


@pytest.mark.parametrize(
    "esp, soft",
    [
        ("mailgun", lambda email, m: mailgun_failed(email, m, "temporary")),
        ("sendgrid", lambda email, m: sendgrid("bounce", email, m, reason="421 try later", status="4.2.1", type="blocked")),
        ("postmark", lambda email, m: postmark("Bounce", email, m, Type="SoftBounce", TypeCode=4096, Name="Soft bounce",
                                               Details="mailbox full")),
    ],
)
def test_soft_bounces_suppress_after_three_in_a_row_and_a_delivery_resets_them(readers, settings, esp, soft):
    settings.WEBHOOK_PROVIDER = esp
    carol = readers["carol"]
    message_id = sent_digest(carol, esp)
    for expected in (1, 2):
        assert post(esp, soft(carol.email, message_id)).status_code == 200
        carol.refresh_from_db()
        assert carol.status == Subscriber.Status.ACTIVE and carol.soft_bounces == expected

    # Delivered: the count starts again.
    delivered = {
        "mailgun": lambda: mailgun("delivered", carol.email, message_id),
        "sendgrid": lambda: sendgrid("delivered", carol.email, message_id, response="250 OK"),
        "postmark": lambda: {"RecordType": "Delivery", "ServerID": 23, "MessageStream": "outbound", "MessageID": message_id,
                             "Recipient": carol.email, "Tag": "digest", "DeliveredAt": "2026-11-05T16:33:54.9070259Z",
                             "Details": "Test delivery webhook details", "Metadata": {}},
    }[esp]()
    assert post(esp, delivered).status_code == 200
    carol.refresh_from_db()
    assert carol.soft_bounces == 0

    for _ in range(3):
        assert post(esp, soft(carol.email, message_id)).status_code == 200
    carol.refresh_from_db()
    assert carol.status == Subscriber.Status.BOUNCED and carol.soft_bounces == 3
    assert statuses() == {"alice@example.org": "active", "bob@example.org": "active", "carol@example.org": "bounced"}
    kinds = list(ConsentEvent.objects.filter(subscriber=carol).order_by("id").values_list("details__soft_bounces", flat=True))
    assert kinds == [1, 2, 0, 1, 2, 3]
    assert ConsentEvent.objects.exclude(subscriber=carol).count() == 0


def test_a_digest_sent_through_anymails_mailgun_backend_is_matched_by_its_bounce(settings, topics, make_scrape, fake_mailgun):
    """End to end: the message id Anymail stored when the (fake) Mailgun API accepted the
    digest is the one Mailgun's bounce event carries (bare, without angle brackets). Mailgun
    answers one id per batch call, so Ada and Ben get different papers: two calls, two ids."""
    from django.utils import timezone

    from newsletter.digests import chunks
    from newsletter.models import Delivery

    make_scrape([dict(arxiv_id="2611.40001", title="Agents", abstract="A.", authors=["A"], upvotes=3, topics={"agents": 5.0}),
                 dict(arxiv_id="2611.40002", title="Code", abstract="C.", authors=["C"], upvotes=2, topics={"code": 5.0})])
    ada = make_subscriber("ada@example.org", topics=[topics["agents"]])
    ben = make_subscriber("ben@example.org", topics=[topics["code"]])
    settings.EMAIL_BACKEND = "anymail.backends.mailgun.EmailBackend"
    settings.ANYMAIL = {**settings.ANYMAIL, **{k: v for k, v in fake_mailgun.env().items() if k.startswith("MAILGUN_")}}
    settings.WEBHOOK_PROVIDER = "mailgun"
    deliveries = [Delivery.objects.create(subscriber=s, digest_date=timezone.now().date()) for s in (ada, ben)]
    chunks.send_chunk([d.pk for d in deliveries], claimer="webhook-test")
    sent = {m.to: m.message_id for m in fake_mailgun.accepted}
    assert set(sent) == {ada.email, ben.email} and sent[ada.email] != sent[ben.email]

    # Ben's bounce carrying Ada's message id changes nobody; carrying his own, it bounces him.
    assert post("mailgun", mailgun_failed(ben.email, sent[ada.email].strip("<>"), "permanent")).status_code == 200
    assert Subscriber.objects.get(pk=ben.pk).status == Subscriber.Status.ACTIVE
    assert post("mailgun", mailgun_failed(ben.email, sent[ben.email].strip("<>"), "permanent")).status_code == 200
    assert Subscriber.objects.get(pk=ben.pk).status == Subscriber.Status.BOUNCED
    assert Subscriber.objects.get(pk=ada.pk).status == Subscriber.Status.ACTIVE
