"""The hash chain (each event stores the previous event's hash and its own) and signed hourly checkpoints.
Events recorded before the chain existed are chained here, in sequence order."""

from typing import Any

from django.db import migrations, models
from django.utils import timezone

from audit.chain import GENESIS, event_hash


def chain_existing(apps: Any, schema_editor: Any) -> None:
    event_model = apps.get_model("audit", "AuditEvent")
    head_model = apps.get_model("audit", "AuditChainHead")
    db = schema_editor.connection.alias
    previous = GENESIS
    for event in event_model.objects.using(db).order_by("sequence").iterator():
        fields = {field.attname: getattr(event, field.attname) for field in event._meta.concrete_fields}
        fields["previous_hash"] = previous
        previous = event_hash(fields)
        # The model's queryset refuses updates; the historical model used here has the plain manager.
        event_model.objects.using(db).filter(pk=event.pk).update(previous_hash=fields["previous_hash"], hash=previous)
    head_model.objects.using(db).filter(id=1).update(last_hash=previous)


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_roles")]

    operations = [
        migrations.AddField(
            model_name="auditchainhead",
            name="last_hash",
            field=models.CharField(default="0" * 64, max_length=64),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="previous_hash",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="auditevent",
            name="hash",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(chain_existing, migrations.RunPython.noop),
        migrations.CreateModel(
            name="AuditCheckpoint",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("period_end", models.DateTimeField(editable=False, unique=True)),
                ("first_sequence", models.BigIntegerField(blank=True, editable=False, null=True)),
                ("last_sequence", models.BigIntegerField(editable=False)),
                ("count", models.PositiveIntegerField(editable=False)),
                ("last_hash", models.CharField(editable=False, max_length=64)),
                ("previous_signature", models.CharField(blank=True, editable=False, max_length=128)),
                ("signature", models.CharField(editable=False, max_length=128)),
                ("created_at", models.DateTimeField(default=timezone.now, editable=False)),
            ],
            options={"ordering": ["-period_end"]},
        ),
    ]
