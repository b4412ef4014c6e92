from django.apps import AppConfig


class NewsletterConfig(AppConfig):
    name = "newsletter"
    verbose_name = "Papers and digests"

    def ready(self):
        from . import signals  # noqa: F401  (topic keyword changes rescore papers)
