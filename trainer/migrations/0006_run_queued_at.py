from django.db import migrations, models


def queued_since_created(apps: object, schema_editor: object) -> None:
    # Runs already waiting: count their wait from their creation.
    Run = apps.get_model("trainer", "Run")
    Run.objects.filter(status="queued").update(queued_at=models.F("created_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("trainer", "0005_best_game_policy"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="queued_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(queued_since_created, migrations.RunPython.noop),
    ]
