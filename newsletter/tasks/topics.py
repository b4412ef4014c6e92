"""Training the topic model again when topics or "teach this topic" examples change (queued by
newsletter.signals once the change is committed), then assigning every stored paper again."""

from celery import shared_task

from newsletter import topic_assignment, topic_model
from newsletter.logs import EventLog

log = EventLog(__name__)


@shared_task(acks_late=True)
def retrain_topic_model(reason: str = "") -> dict:
    """Train unless the newest trained version already matches the current topics and examples
    (several changes in a row queue several tasks; the first one does the work), then rescore."""
    newest = topic_assignment.TopicClassifier.objects.order_by("-version").first()
    current = topic_model.fingerprint(topic_assignment.active_topics(), topic_assignment.training_examples())
    if newest is None or newest.fingerprint != current:
        newest = topic_assignment.retrain(reason=reason)
        retrained = True
    else:
        retrained = False
    stored = topic_assignment.rescore_all()
    log("topics.rescored", version=newest.version, retrained=retrained, rows=stored)
    return {"version": newest.version, "retrained": retrained, "rows": stored}
