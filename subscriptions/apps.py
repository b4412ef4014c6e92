from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"
    verbose_name = "Subscriptions"

    def ready(self):
        from . import webhooks  # noqa: F401  (provider events: bounces, complaints, unsubscribes)
