"""Recording, undoing and reading votes (plain functions: the views and the bench call them)."""

from django.db import transaction

from newsletter.logs import EventLog
from newsletter.models import Vote
from newsletter.personal.signals import reader_told_us
from subscriptions import actions
from subscriptions.models import Topic

from .tokens import FeedbackTarget

log = EventLog(__name__)
# The consent log's `method` of a "Not interested in <topic>" leave (the dashboard counts them).
TOPIC_LEAVE_METHOD = "not-interested link"


@transaction.atomic
def record(target: FeedbackTarget, value: int) -> bool:
    """The reader's vote on the paper (a later vote replaces an earlier one). True if it changed."""
    vote, created = Vote.objects.get_or_create(
        subscriber_id=target.delivery.subscriber_id, paper=target.paper,
        defaults={"value": value, "delivery": target.delivery},
    )
    changed = created or vote.value != value
    if not created and changed:
        vote.value, vote.delivery = value, target.delivery
        vote.save(update_fields=["value", "delivery", "updated_at"])
    if changed:
        reader_told_us(target.delivery.subscriber_id)
        log("feedback.vote", subscriber=target.delivery.subscriber_id, paper=target.paper.pk, value=value)
    return changed


@transaction.atomic
def undo(target: FeedbackTarget) -> bool:
    deleted, _ = Vote.objects.filter(subscriber_id=target.delivery.subscriber_id, paper=target.paper).delete()
    if deleted:
        reader_told_us(target.delivery.subscriber_id)
        log("feedback.undo", subscriber=target.delivery.subscriber_id, paper=target.paper.pk)
    return bool(deleted)


def votes_on(subscriber_id: int, paper_ids) -> dict[int, int]:
    """paper id -> the reader's vote, for those of `paper_ids` they voted on."""
    return dict(Vote.objects.filter(subscriber_id=subscriber_id, paper_id__in=list(paper_ids)).values_list("paper_id", "value"))


def leave_topic(target: FeedbackTarget, topic: Topic, origin: actions.Origin) -> bool:
    """"Not interested in <topic>": the reader leaves it (a preference change, consent-logged)."""
    subscriber = target.subscriber
    left = actions.leave_topic(subscriber, topic, origin, method=TOPIC_LEAVE_METHOD)
    if left:
        reader_told_us(subscriber.pk)
    return left
