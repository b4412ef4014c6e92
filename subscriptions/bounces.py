"""The soft-bounce rule, in one place: a mailbox that refuses "not now" DIGEST_SOFT_BOUNCE_LIMIT
times in a row is suppressed as bounced; a delivered message starts the count again.

Two things count: a provider's soft-bounce event (subscriptions.webhooks; which events are
soft is the provider backend's call, email_providers.*.is_soft_bounce), and a message the
provider failed without naming a cause (the digest sender). Suppressing goes through
subscriptions.actions, so it is in the consent log.
"""

from django.conf import settings
from django.db import transaction
from django.db.models import F

from . import actions
from .models import ConsentEvent, Subscriber


@transaction.atomic
def count_soft_bounce(subscriber: Subscriber, origin: actions.Origin, details: dict) -> bool:
    """One soft-bounce event for an active subscriber: counted and logged, suppressed at the
    limit. Whether anything changed."""
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


def count_send_failures(subscriber_ids, origin: actions.Origin) -> None:
    """Messages the provider failed without naming a cause count like soft bounces (in one
    update for a whole call); who reaches the limit is suppressed."""
    Subscriber.objects.filter(pk__in=subscriber_ids).update(soft_bounces=F("soft_bounces") + 1)
    over = Subscriber.objects.filter(
        pk__in=subscriber_ids, status=Subscriber.Status.ACTIVE, soft_bounces__gte=settings.DIGEST_SOFT_BOUNCE_LIMIT
    )
    for subscriber in over:
        actions.suppress(subscriber, Subscriber.Status.BOUNCED, origin, reason="repeated send failures")


@transaction.atomic
def reset_soft_bounces(subscriber: Subscriber, origin: actions.Origin, details: dict) -> bool:
    """A message was delivered: the count starts again (logged when there was one)."""
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    if subscriber.soft_bounces == 0:
        return False
    previous = subscriber.soft_bounces
    subscriber.soft_bounces = 0
    subscriber.save(update_fields=["soft_bounces", "updated_at"])
    actions.log_event(subscriber, ConsentEvent.Kind.BOUNCE, origin, soft_bounces=0, previous_soft_bounces=previous, **details)
    return True
