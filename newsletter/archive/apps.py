from django.apps import AppConfig


class ArchiveConfig(AppConfig):
    """An app of its own only so that Django finds its template tags (the sign-up page's
    `{% latest_digest_sample %}`); it has no models."""

    name = "newsletter.archive"
    label = "archive"
    verbose_name = "Public archive and feeds"
