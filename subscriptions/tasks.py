"""Celery tasks for sign-ups and transactional email. Email tasks are queued with
transaction.on_commit so a worker never sees a subscriber that is not committed yet. Every
email a stranger can ask for goes through allow_email(): a few a day per address."""

import smtplib

from anymail.exceptions import AnymailRequestsAPIError
from celery import shared_task
from django.db import InterfaceError, OperationalError, transaction

from newsletter.logs import EventLog

from . import actions, emails
from .models import Subscriber, Topic
from .throttle import allow_email

log = EventLog(__name__)

# Network-level failures worth another try; a permanent rejection is logged, not retried.
TRANSIENT_ERRORS = (ConnectionError, TimeoutError, OSError, smtplib.SMTPServerDisconnected, AnymailRequestsAPIError)

RETRY_POLICY = dict(
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
    acks_late=True,
)


@shared_task(**{**RETRY_POLICY, "autoretry_for": (OperationalError, InterfaceError)})
def handle_signup(email: str, topic_slugs: list[str], frequency: str, origin: dict, timezone: str = "",
                  weekday: int | None = None) -> None:
    """A sign-up from the form. The form answers before this runs, so the answer takes as
    long for a new address as for a known one. The person has been told to check their
    inbox: a database that is away is waited for (the transaction rolled back, so a retry
    starts clean)."""
    topics = Topic.objects.filter(slug__in=topic_slugs, active=True)
    mail = actions.request_signup(email, topics, frequency, actions.Origin(**origin), timezone=timezone,
                                  weekday=weekday)
    # Queued once the sign-up is committed, so the email task finds it.
    if mail is None:
        return
    if mail.signup_id is None:
        transaction.on_commit(lambda: send_already_subscribed_email.delay(mail.subscriber_id))
    else:
        transaction.on_commit(lambda: send_confirmation_email.delay(mail.subscriber_id, mail.signup_id))


def _allowed(task, subscriber: Subscriber, what: str) -> bool:
    # Counted on the first attempt only: a retry resends the same email.
    if task.request.retries or allow_email(subscriber.email):
        return True
    log("signup.email_throttled", email=what, subscriber=subscriber.pk, reason="the address had its emails for today")
    return False


@shared_task(bind=True, **RETRY_POLICY)
def send_confirmation_email(self, subscriber_id: int, signup_id: int) -> None:
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    # Only while that sign-up can still be confirmed: never to an active, bounced or complained address.
    signup = subscriber and actions.open_signup(subscriber, signup_id)
    if not signup or not _allowed(self, subscriber, "confirmation email"):
        return
    emails.confirmation_email(subscriber, signup).send()
    log("signup.email_sent", email="confirmation", subscriber=subscriber_id)


@shared_task(bind=True, **RETRY_POLICY)
def send_already_subscribed_email(self, subscriber_id: int) -> None:
    subscriber = Subscriber.objects.filter(pk=subscriber_id, status=Subscriber.Status.ACTIVE).first()
    if subscriber is None or not _allowed(self, subscriber, "already-subscribed email"):
        return
    emails.already_subscribed_email(subscriber).send()
    log("signup.email_sent", email="already_subscribed", subscriber=subscriber_id)


@shared_task(bind=True, **RETRY_POLICY)
def send_preferences_link_email(self, email: str) -> None:
    """The "email me a link to my preferences" button: the link goes to the address itself,
    if it is subscribed or unsubscribed (not pending: nothing to manage yet; never bounced or
    complained)."""
    subscriber = Subscriber.objects.by_email(email).filter(
        status__in=(Subscriber.Status.ACTIVE, Subscriber.Status.UNSUBSCRIBED)
    ).first()
    if subscriber is None or not _allowed(self, subscriber, "preferences link"):
        return
    emails.preferences_link_email(subscriber).send()
    log("signup.email_sent", email="preferences_link", subscriber=subscriber.pk)


@shared_task(acks_late=True)
def send_import_confirmations(invitations: list) -> None:
    """Queue the confirmation email of each imported address ([subscriber id, sign-up id]
    pairs, from subscriptions/importing.py): one task per email, so each has its own retries."""
    for subscriber_id, signup_id in invitations:
        send_confirmation_email.delay(subscriber_id, signup_id)
