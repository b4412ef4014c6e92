"""Provider events (Anymail tracking webhooks at /anymail/<esp>/tracking/).

Hard bounces, complaints and provider-side unsubscribes suppress the address at once; soft
bounces (deferred, mailbox full, blocked for now) count up and suppress after
DIGEST_SOFT_BOUNCE_LIMIT in a row; a delivered event resets the count. Every change is written
to the consent log through subscriptions.actions.

Anymail accepts webhook calls without authentication (with a warning) when no WEBHOOK_SECRET is
set; here the webhook URLs refuse every call until one is set.
"""

from functools import wraps

from anymail import urls as anymail_urls
from anymail.signals import EventType, RejectReason, tracking
from django.conf import settings
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpResponseForbidden
from django.urls import URLPattern

from subscriptions import actions
from subscriptions.models import ConsentEvent, Subscriber

from .digests.logs import log

# Bounce types that providers report as "bounced" although the mailbox may work tomorrow.
_SOFT_BOUNCE_TYPES = {
    "postmark": {"SoftBounce", "Transient", "DnsError"},
}


def _webhook_secret_configured() -> bool:
    return bool(getattr(settings, "ANYMAIL", {}).get("WEBHOOK_SECRET"))


def _require_webhook_secret(view):
    @wraps(view)
    def guarded(request, *args, **kwargs):
        if not _webhook_secret_configured():
            return HttpResponseForbidden("Webhooks are disabled until ANYMAIL_WEBHOOK_SECRET is set.")
        return view(request, *args, **kwargs)

    guarded.csrf_exempt = True  # providers post without a CSRF token; basic auth protects it
    return guarded


def anymail_urlpatterns():
    """anymail.urls, each view refusing calls while no webhook secret is configured."""
    return (
        [URLPattern(p.pattern, _require_webhook_secret(p.callback), p.default_args, p.name) for p in anymail_urls.urlpatterns],
        anymail_urls.app_name,
    )


def _is_soft_bounce(event, esp_name: str) -> bool:
    if event.event_type == EventType.DEFERRED:
        return True
    raw = event.esp_event if isinstance(event.esp_event, dict) else {}
    esp = esp_name.lower()
    if esp == "postmark":
        return raw.get("Type") in _SOFT_BOUNCE_TYPES["postmark"]
    if esp == "sendgrid":
        return raw.get("type") == "blocked"  # SendGrid: "blocked" = temporary refusal
    return False


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


@receiver(tracking, dispatch_uid="newsletter.webhooks.on_tracking_event")
def on_tracking_event(sender, event, esp_name, **kwargs):
    if not event.recipient:
        return
    subscriber = Subscriber.objects.by_email(event.recipient).first()
    if subscriber is None:
        log("webhook.unknown_recipient", esp=esp_name, event_type=event.event_type)
        return
    event_type = event.event_type
    details = _details(event, esp_name)
    origin = _origin(esp_name)
    if event_type == EventType.COMPLAINED:
        changed = actions.suppress(subscriber, Subscriber.Status.COMPLAINED, origin, **details)
    elif event_type == EventType.UNSUBSCRIBED:
        changed = actions.suppress(subscriber, Subscriber.Status.UNSUBSCRIBED, origin, method="provider", **details)
    elif event_type in (EventType.BOUNCED, EventType.DEFERRED) and _is_soft_bounce(event, esp_name):
        changed = count_soft_bounce(subscriber, origin, details)
    elif event_type == EventType.BOUNCED or (
        event_type == EventType.REJECTED and event.reject_reason in (RejectReason.BOUNCED, RejectReason.INVALID)
    ):
        changed = actions.suppress(subscriber, Subscriber.Status.BOUNCED, origin, **details)
    elif event_type == EventType.DELIVERED:
        changed = reset_soft_bounces(subscriber, origin, details)
    else:
        return
    log("webhook.event", esp=esp_name, event_type=event_type, subscriber=subscriber.pk, changed=changed)


@transaction.atomic
def count_soft_bounce(subscriber: Subscriber, origin, details: dict) -> bool:
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    if subscriber.status != Subscriber.Status.ACTIVE:
        return False
    subscriber.soft_bounces += 1
    subscriber.save(update_fields=["soft_bounces", "updated_at"])
    if subscriber.soft_bounces >= settings.DIGEST_SOFT_BOUNCE_LIMIT:
        return actions.suppress(
            subscriber, Subscriber.Status.BOUNCED, origin, severity="soft", soft_bounces=subscriber.soft_bounces, **details
        )
    actions.log_event(
        subscriber, ConsentEvent.Kind.BOUNCE, origin, severity="soft", soft_bounces=subscriber.soft_bounces, suppressed=False, **details
    )
    return True


@transaction.atomic
def reset_soft_bounces(subscriber: Subscriber, origin, details: dict) -> bool:
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    if subscriber.soft_bounces == 0:
        return False
    previous = subscriber.soft_bounces
    subscriber.soft_bounces = 0
    subscriber.save(update_fields=["soft_bounces", "updated_at"])
    actions.log_event(subscriber, ConsentEvent.Kind.BOUNCE, origin, soft_bounces=0, previous_soft_bounces=previous, **details)
    return True
