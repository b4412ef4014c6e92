"""Keeping topic scores in step with the topics: when a topic's keywords (or its active flag)
change, its scores are recomputed by a task once the change is committed."""

from django.db import transaction
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from subscriptions.models import Topic


@receiver(pre_save, sender=Topic, dispatch_uid="newsletter.topic_before_save")
def remember_matching_fields(sender, instance, raw=False, **kwargs):
    if raw or instance.pk is None:
        instance._matching_before = None
        return
    instance._matching_before = Topic.objects.filter(pk=instance.pk).values_list("keywords", "active").first()


@receiver(post_save, sender=Topic, dispatch_uid="newsletter.topic_after_save")
def rescore_changed_topic(sender, instance, created, raw=False, **kwargs):
    if raw:
        return
    before = getattr(instance, "_matching_before", None)
    if created or before != (instance.keywords, instance.active):
        from newsletter.tasks.topics import rescore_topic

        topic_id = instance.pk
        transaction.on_commit(lambda: rescore_topic.delay(topic_id))
