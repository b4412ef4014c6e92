"""Celery tasks for transactional email. Queued with transaction.on_commit so a worker never
sees a subscriber that the web request has not committed yet."""

import smtplib

from anymail.exceptions import AnymailRequestsAPIError
from celery import shared_task
from celery.utils.log import get_task_logger

from . import emails
from .models import Subscriber

logger = get_task_logger(__name__)

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


@shared_task(**RETRY_POLICY)
def send_confirmation_email(subscriber_id: int, choices: dict) -> None:
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None or subscriber.status == Subscriber.Status.ACTIVE:
        return
    emails.confirmation_email(subscriber, choices).send()
    logger.info("confirmation email sent to subscriber %s", subscriber_id)


@shared_task(**RETRY_POLICY)
def send_already_subscribed_email(subscriber_id: int) -> None:
    subscriber = Subscriber.objects.filter(pk=subscriber_id, status=Subscriber.Status.ACTIVE).first()
    if subscriber is None:
        return
    emails.already_subscribed_email(subscriber).send()
    logger.info("already-subscribed email sent to subscriber %s", subscriber_id)
