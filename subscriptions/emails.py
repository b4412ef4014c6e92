"""Transactional emails (confirmation, "you are already subscribed"): HTML + plain text
rendered from templates/emails/, sent through whatever backend EMAIL_PROVIDER selects."""

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from . import tokens
from .models import ConsentEvent, Subscriber


def build_email(template: str, subject: str, to: str, context: dict) -> EmailMultiAlternatives:
    context = {"SITE_NAME": settings.SITE_NAME, "SITE_URL": settings.SITE_URL, **context}
    text = render_to_string(f"emails/{template}.txt", context)
    html = render_to_string(f"emails/{template}.html", context)
    message = EmailMultiAlternatives(subject=subject, body=text, from_email=settings.DEFAULT_FROM_EMAIL, to=[to])
    message.attach_alternative(html, "text/html")
    return message


def confirmation_email(subscriber: Subscriber, signup: ConsentEvent) -> EmailMultiAlternatives:
    """The double opt-in link for one sign-up (its consent-log row holds the choices)."""
    choices = signup.details
    return build_email(
        "confirm_subscription",
        f"Confirm your subscription to {settings.SITE_NAME}",
        subscriber.email,
        {
            "confirm_url": tokens.confirm_url(subscriber, signup.pk),
            "topic_names": _topic_names(choices.get("topics", [])),
            "frequency": choices.get("frequency", "daily"),
            "valid_days": settings.CONFIRMATION_LINK_MAX_AGE // 86400,
        },
    )


def already_subscribed_email(subscriber: Subscriber) -> EmailMultiAlternatives:
    return build_email(
        "already_subscribed",
        f"You are already subscribed to {settings.SITE_NAME}",
        subscriber.email,
        {
            "preferences_url": tokens.preferences_url(subscriber),
            "unsubscribe_url": tokens.unsubscribe_url(subscriber),
            "topic_names": list(subscriber.topics.values_list("name", flat=True)),
        },
    )


def preferences_link_email(subscriber: Subscriber) -> EmailMultiAlternatives:
    """The link someone asked for with "email me a link to my preferences"."""
    return build_email(
        "preferences_link",
        f"Your {settings.SITE_NAME} preferences",
        subscriber.email,
        {
            "preferences_url": tokens.preferences_url(subscriber),
            "unsubscribed": subscriber.status == Subscriber.Status.UNSUBSCRIBED,
        },
    )


def _topic_names(slugs) -> list[str]:
    from .models import Topic

    return list(Topic.objects.filter(slug__in=slugs).values_list("name", flat=True))
