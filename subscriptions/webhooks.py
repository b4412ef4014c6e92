"""Provider events (Anymail tracking webhooks at /anymail/<esp>/tracking/).

Only the tracking webhook of settings.WEBHOOK_PROVIDER answers; every other URL under /anymail/
is a 404, so a Postmark-format call cannot act on a Mailgun deployment. It refuses every call
until the basic-auth ANYMAIL_WEBHOOK_SECRET is set and, where Anymail verifies the provider's own
signature (Mailgun, SendGrid, ...), until that key is set too. Mailgun signs only a timestamp
and a random token, not the event, so a signed call is also refused once it is a few minutes
old or its token was seen before (Mailgun's own advice).

An event changes an address only if it names a message we sent to that address (the provider
message id stored on each Delivery): a hard bounce, complaint or provider-side unsubscribe for
a digest suppresses its recipient, and nothing else suppresses anyone. Soft bounces (deferred,
mailbox full, blocked for now) count up and suppress after DIGEST_SOFT_BOUNCE_LIMIT in a row; a
delivered event resets the count. Which bounces are soft is the provider backend's call
(newsletter/email_providers: `is_soft_bounce`); the rule itself is in subscriptions.bounces.
Every change is written to the consent log through subscriptions.actions.
"""

import json
import time
from functools import wraps

from anymail import urls as anymail_urls
from anymail.exceptions import AnymailWebhookValidationFailure
from anymail.signals import EventType, RejectReason, tracking
from anymail.webhooks.mailgun import MailgunTrackingWebhookView
from django.conf import settings
from django.core.cache import cache
from django.dispatch import receiver
from django.http import Http404, HttpResponseForbidden
from django.urls import URLPattern

from newsletter.email_providers import registry
from newsletter.logs import EventLog

from . import actions, bounces
from .models import Subscriber

log = EventLog(__name__)

# The Anymail setting that turns on each provider's own signature check (anymail.webhooks.*).
SIGNING_KEY_SETTINGS = {
    "mailersend": "MAILERSEND_SIGNING_SECRET",
    "mailgun": "MAILGUN_WEBHOOK_SIGNING_KEY",  # required: Anymail's fallback to the API key is not used
    "mailtrap": "MAILTRAP_TRACKING_SECRET",
    "mandrill": "MANDRILL_WEBHOOK_KEY",
    "postal": "POSTAL_WEBHOOK_KEY",
    "resend": "RESEND_SIGNING_SECRET",
    "sendgrid": "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY",
    "unisender_go": "UNISENDER_GO_API_KEY",
}

# Mailgun signatures further than this from now are refused; tokens are remembered twice as long.
MAILGUN_MAX_SIGNATURE_AGE = 5 * 60

# The events that can change a subscriber; the others (opened, clicked, queued...) are ignored.
_ACTED_ON = {EventType.COMPLAINED, EventType.UNSUBSCRIBED, EventType.BOUNCED, EventType.DEFERRED,
             EventType.REJECTED, EventType.DELIVERED}


class FreshMailgunTrackingWebhookView(MailgunTrackingWebhookView):
    """Anymail's Mailgun view (basic auth, then the HMAC signature) that also refuses stale
    timestamps and reused tokens. The token store is the cache (Redis): shared by every web
    process. A call that fails after its checks gives its token back, so Mailgun's retry works."""

    token_key = None

    def run_validators(self, request):
        super().run_validators(request)
        timestamp, token = _mailgun_timestamp_and_token(request)
        try:
            age = time.time() - int(timestamp)
        except ValueError:
            raise AnymailWebhookValidationFailure("Mailgun webhook timestamp is not a number") from None
        if abs(age) > MAILGUN_MAX_SIGNATURE_AGE:
            raise AnymailWebhookValidationFailure(f"Mailgun webhook signed {age:.0f} s ago: too old (or ahead)")
        key = f"webhooks:mailgun-token:{token}"
        if not cache.add(key, True, timeout=2 * MAILGUN_MAX_SIGNATURE_AGE):
            raise AnymailWebhookValidationFailure("Mailgun webhook token used before: a replay")
        self.token_key = key

    def post(self, request, *args, **kwargs):
        try:
            return super().post(request, *args, **kwargs)
        except Exception:
            if self.token_key:
                cache.delete(self.token_key)
            raise


def _mailgun_timestamp_and_token(request) -> tuple[str, str]:
    """From a call whose signature Anymail has just checked (so the fields are there)."""
    if request.content_type == "application/json":
        signature = json.loads(request.body.decode("utf-8"))["signature"]
        return str(signature["timestamp"]), str(signature["token"])
    return request.POST["timestamp"], request.POST["token"]  # Mailgun's legacy form webhooks


_TRACKING_VIEWS = {"mailgun": FreshMailgunTrackingWebhookView.as_view()}


def _only_when_configured(view, esp: str):
    @wraps(view)
    def guarded(request, *args, **kwargs):
        if esp != settings.WEBHOOK_PROVIDER:
            raise Http404("No webhook for this provider.")
        anymail = getattr(settings, "ANYMAIL", {})
        if not anymail.get("WEBHOOK_SECRET"):
            return HttpResponseForbidden("Webhooks are disabled until ANYMAIL_WEBHOOK_SECRET is set.")
        signing_key = SIGNING_KEY_SETTINGS.get(esp)
        if signing_key and not anymail.get(signing_key):
            return HttpResponseForbidden(f"Webhooks are disabled until {signing_key} is set.")
        return view(request, *args, **kwargs)

    guarded.csrf_exempt = True  # providers post without a CSRF token; basic auth and signatures protect it
    return guarded


def anymail_urlpatterns():
    """Anymail's tracking webhook URLs (not the inbound ones: nothing here reads inbound mail),
    each answering only for WEBHOOK_PROVIDER and only once its secrets are set. Checked per
    request, so the URLconf follows settings as they are now."""
    patterns = []
    for pattern in anymail_urls.urlpatterns:
        esp = pattern.name.removesuffix("_tracking_webhook")
        if esp != pattern.name:
            view = _TRACKING_VIEWS.get(esp, pattern.callback)
            patterns.append(URLPattern(pattern.pattern, _only_when_configured(view, esp), pattern.default_args, pattern.name))
    return patterns, anymail_urls.app_name


def _sent_to(subscriber: Subscriber, message_id: str | None) -> bool:
    """Whether the message the event names was sent to this subscriber. Mailgun's API answers
    "<id>" while its events carry the bare id, hence both forms."""
    bare = (message_id or "").strip().strip("<>")
    if not bare:
        return False
    return subscriber.deliveries.filter(provider_message_id__in=[bare, f"<{bare}>"]).exists()


def _details(event, esp_name: str) -> dict:
    return {
        "esp": esp_name,
        "event": event.event_type,
        "event_id": str(event.event_id or "")[:200],
        "message_id": str(event.message_id or "")[:300],
        "reject_reason": event.reject_reason or "",
        "description": (event.description or "")[:500],
        "mta_response": (event.mta_response or "")[:500],
    }


def _origin(esp_name: str) -> actions.Origin:
    return actions.Origin(user_agent=f"{esp_name} webhook")


@receiver(tracking, dispatch_uid="subscriptions.webhooks.on_tracking_event")
def on_tracking_event(sender, event, esp_name, **kwargs):
    if not event.recipient or event.event_type not in _ACTED_ON:
        return
    subscriber = Subscriber.objects.by_email(event.recipient).first()
    if subscriber is None:
        log("webhook.unknown_recipient", esp=esp_name, event_type=event.event_type)
        return
    if not _sent_to(subscriber, event.message_id):
        log("webhook.message_not_sent_to_recipient", esp=esp_name, event_type=event.event_type, subscriber=subscriber.pk)
        return
    event_type = event.event_type
    details = _details(event, esp_name)
    origin = _origin(esp_name)
    if event_type == EventType.COMPLAINED:
        changed = actions.suppress(subscriber, Subscriber.Status.COMPLAINED, origin, **details)
    elif event_type == EventType.UNSUBSCRIBED:
        changed = actions.suppress(subscriber, Subscriber.Status.UNSUBSCRIBED, origin, method="provider", **details)
    elif event_type in (EventType.BOUNCED, EventType.DEFERRED) and registry.backend_class(esp_name).is_soft_bounce(event):
        changed = bounces.count_soft_bounce(subscriber, origin, details)
    elif event_type == EventType.BOUNCED or (
        event_type == EventType.REJECTED and event.reject_reason in (RejectReason.BOUNCED, RejectReason.INVALID)
    ):
        changed = actions.suppress(subscriber, Subscriber.Status.BOUNCED, origin, **details)
    elif event_type == EventType.DELIVERED:
        changed = bounces.reset_soft_bounces(subscriber, origin, details)
    else:
        return
    log("webhook.event", esp=esp_name, event_type=event_type, subscriber=subscriber.pk, changed=changed)
