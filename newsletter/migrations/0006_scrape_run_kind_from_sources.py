"""ScrapeRun.kind without choices: the page kinds come from the registered paper sources
(newsletter.sources) and are validated against them, so a new source needs no migration.
The stored values ("trending", "daily", "api", "file") are unchanged."""

from django.db import migrations, models

import newsletter.sources


class Migration(migrations.Migration):

    dependencies = [
        ("newsletter", "0005_topic_model"),
    ]

    operations = [
        migrations.AlterField(
            model_name="scraperun",
            name="kind",
            field=models.CharField(db_index=True, max_length=16, validators=[newsletter.sources.validate_kind]),
        ),
    ]
