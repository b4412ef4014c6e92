"""Recomputing a topic's paper scores after its keywords changed (queued by newsletter.signals)."""

from celery import shared_task
from celery.utils.log import get_task_logger

from newsletter import topics

logger = get_task_logger(__name__)


@shared_task(acks_late=True)
def rescore_topic(topic_id: int) -> int:
    from subscriptions.models import Topic

    topic = Topic.objects.filter(pk=topic_id).first()
    if topic is None:
        return 0
    stored = topics.rescore_topic(topic)
    logger.info("topic %s rescored: %s paper(s) match", topic.slug, stored)
    return stored
