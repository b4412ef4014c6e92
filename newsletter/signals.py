"""Keeping topic assignment in step with the topics: when a topic's definition (keywords,
description, name, slug, active flag) or an operator's "teach this topic" example changes,
the topic model is retrained and the papers are assigned again, by a task queued once the
change is committed."""

from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from newsletter.models import TopicExample
from subscriptions.models import Topic

DEFINITION = ("slug", "name", "description", "keywords", "active")


def queue_retraining(reason: str) -> None:
    from newsletter.tasks.topics import retrain_topic_model

    transaction.on_commit(lambda: retrain_topic_model.delay(reason))


@receiver(pre_save, sender=Topic, dispatch_uid="newsletter.topic_before_save")
def remember_definition(sender, instance, raw=False, **kwargs):
    if raw or instance.pk is None:
        instance._definition_before = None
        return
    instance._definition_before = Topic.objects.filter(pk=instance.pk).values_list(*DEFINITION).first()


@receiver(post_save, sender=Topic, dispatch_uid="newsletter.topic_after_save")
def retrain_after_topic_change(sender, instance, created, raw=False, **kwargs):
    if raw:
        return
    before = getattr(instance, "_definition_before", None)
    if created or before != tuple(getattr(instance, name) for name in DEFINITION):
        queue_retraining(f"topic {instance.slug} {'added' if created else 'changed'}")


@receiver(post_delete, sender=Topic, dispatch_uid="newsletter.topic_after_delete")
def retrain_after_topic_delete(sender, instance, **kwargs):
    queue_retraining(f"topic {instance.slug} deleted")


@receiver(post_save, sender=TopicExample, dispatch_uid="newsletter.example_after_save")
@receiver(post_delete, sender=TopicExample, dispatch_uid="newsletter.example_after_delete")
def retrain_after_example_change(sender, instance, raw=False, **kwargs):
    if raw:
        return
    queue_retraining(f"example {instance.paper_id} for topic {instance.topic_id} changed")
