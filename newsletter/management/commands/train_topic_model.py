"""`manage.py train_topic_model`: train the topic model now and assign every paper again (what
the Celery task does by itself when topics or examples change). `--write-default` instead
writes the state shipped with the code, trained on the seed papers and the curated topics as
the migrations define them (for developers, after changing either)."""

import importlib

from django.core.management.base import BaseCommand

from newsletter import topic_assignment, topic_model
from subscriptions.models import Topic


def curated_topics() -> list[Topic]:
    """The curated topics as a fresh database has them (unsaved), in display order."""
    shipped = importlib.import_module("subscriptions.migrations.0002_curated_topics").TOPICS
    precise = importlib.import_module("subscriptions.migrations.0004_precise_topic_keywords").KEYWORDS
    return [
        Topic(slug=slug, name=name, description=description, keywords="\n".join(precise.get(slug, keywords)), display_order=n * 10)
        for n, (slug, name, description, keywords) in enumerate(shipped, start=1)
    ]


class Command(BaseCommand):
    help = "Train the topic model now and assign every stored paper again."

    def add_arguments(self, parser):
        parser.add_argument("--write-default", action="store_true", help=f"Write {topic_model.DEFAULT_PATH.name} instead.")

    def handle(self, *args, write_default=False, **options):
        if write_default:
            digest = topic_model.write_default(curated_topics())
            self.stdout.write(f"wrote {topic_model.DEFAULT_PATH} (fingerprint {digest})")
            return
        row = topic_assignment.retrain(reason="manage.py train_topic_model")
        stored = topic_assignment.rescore_all()
        self.stdout.write(f"topic model v{row.version}: {stored} paper-topic rows")
