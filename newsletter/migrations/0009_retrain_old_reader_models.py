"""Models stored in format 1 (profiles.FORMAT) explain papers by what the model favoured, not
by the liked papers' words: they still rank, but show no "Because you liked" until retrained.
Marking them stale has the hourly sweep (beat, :50) retrain them in format 2."""

from django.db import migrations
from django.db.models.functions import Now


def mark_stale(apps, schema_editor):
    profiles = apps.get_model("newsletter", "ReaderProfile")
    profiles.objects.filter(model__format=1).update(signal_at=Now())


class Migration(migrations.Migration):

    dependencies = [
        ("newsletter", "0008_seed_paper_unlinked_index"),
    ]

    operations = [
        migrations.RunPython(mark_stale, migrations.RunPython.noop),
    ]
