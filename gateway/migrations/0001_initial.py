"""The gateway's models, moved here from the prompts app with their tables (db_table keeps the names):
state only, no data copied."""

import django.db.models.deletion
import django.utils.timezone
from typing import Any

from django.db import migrations, models

APP = "gateway"
MODELS = ['run', 'job', 'batch', 'batchitem', 'webhookdelivery']


def _relabel(apps: Any, schema_editor: Any, *, old: str, new: str) -> None:
    content_type = apps.get_model("contenttypes", "ContentType")
    permission = apps.get_model("auth", "Permission")
    types = content_type.objects.using(schema_editor.connection.alias)
    moving = set(types.filter(app_label=old, model__in=MODELS).values_list("model", flat=True))
    # New code serving requests before this migration ran may have made an empty content type under the new
    # label (ContentType.objects.get_for_model): it gives way to the row that holds the permissions.
    permissions = permission.objects.using(schema_editor.connection.alias)
    types.filter(app_label=new, model__in=moving).exclude(pk__in=permissions.values("content_type")).delete()
    types.filter(app_label=old, model__in=moving).update(app_label=new)


def content_types_move(apps: Any, schema_editor: Any) -> None:
    """Move the models' content types from the prompts app to this one, so that permissions (and the roles
    and people who hold them) keep their rows. A new database has none yet: post_migrate creates them."""
    _relabel(apps, schema_editor, old="prompts", new=APP)


def content_types_move_back(apps: Any, schema_editor: Any) -> None:
    _relabel(apps, schema_editor, old=APP, new="prompts")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('auth', '0012_alter_user_first_name_max_length'),
        ('keys', '0002_provider_key_cap_line'),
        ('prompts', '0004_runtime_and_evaluations_move_out'),
    ]

    operations = [
        migrations.RunPython(content_types_move, content_types_move_back, elidable=False),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Batch',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('public_id', models.CharField(editable=False, max_length=40, unique=True)),
                        ('environment', models.CharField(choices=[('development', 'Development'), ('staging', 'Staging'), ('production', 'Production')], editable=False, max_length=12)),
                        ('status', models.CharField(choices=[('in_progress', 'In progress'), ('canceling', 'Canceling'), ('ended', 'Ended'), ('failed', 'Failed')], default='in_progress', editable=False, max_length=12)),
                        ('provider_batch_ids', models.JSONField(default=list, editable=False)),
                        ('request_id', models.CharField(editable=False, help_text="The spend reservation's request id.", max_length=128)),
                        ('metadata', models.JSONField(default=dict, editable=False)),
                        ('mapping_ciphertext', models.TextField(blank=True, editable=False)),
                        ('mapping_kek_id', models.CharField(blank=True, editable=False, max_length=32)),
                        ('callback_url', models.URLField(blank=True, editable=False, max_length=2000)),
                        ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now, editable=False)),
                        ('ended_at', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('result_expires_at', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('api_client', models.ForeignKey(editable=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='keys.apiclient')),
                        ('prompt', models.ForeignKey(editable=False, on_delete=django.db.models.deletion.PROTECT, related_name='batches', to='prompts.prompt')),
                        ('provider_key', models.ForeignKey(editable=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='keys.providerkey')),
                        ('version', models.ForeignKey(editable=False, on_delete=django.db.models.deletion.PROTECT, related_name='batches', to='prompts.promptversion')),
                    ],
                    options={
                        'verbose_name_plural': 'batches',
                        'db_table': 'prompts_batch',
                        'ordering': ['-created_at'],
                    },
                ),
                migrations.CreateModel(
                    name='Job',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('public_id', models.CharField(editable=False, max_length=40, unique=True)),
                        ('environment', models.CharField(choices=[('development', 'Development'), ('staging', 'Staging'), ('production', 'Production')], editable=False, max_length=12)),
                        ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed')], default='queued', editable=False, max_length=12)),
                        ('variables_redacted', models.JSONField(default=dict, editable=False)),
                        ('metadata', models.JSONField(default=dict, editable=False)),
                        ('mapping_ciphertext', models.TextField(blank=True, editable=False)),
                        ('mapping_kek_id', models.CharField(blank=True, editable=False, max_length=32)),
                        ('mapping_expires_at', models.DateTimeField(editable=False)),
                        ('callback_url', models.URLField(blank=True, editable=False, max_length=2000)),
                        ('attempts', models.PositiveIntegerField(default=0, editable=False)),
                        ('attempt_request_id', models.CharField(blank=True, editable=False, max_length=128)),
                        ('lease_expires_at', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('run_public_id', models.CharField(blank=True, editable=False, max_length=40)),
                        ('result_ciphertext', models.TextField(blank=True, editable=False)),
                        ('result_kek_id', models.CharField(blank=True, editable=False, max_length=32)),
                        ('error', models.JSONField(blank=True, default=dict, editable=False)),
                        ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now, editable=False)),
                        ('started_at', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('result_expires_at', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('api_client', models.ForeignKey(editable=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='keys.apiclient')),
                        ('prompt', models.ForeignKey(editable=False, on_delete=django.db.models.deletion.PROTECT, related_name='jobs', to='prompts.prompt')),
                        ('version', models.ForeignKey(editable=False, on_delete=django.db.models.deletion.PROTECT, related_name='jobs', to='prompts.promptversion')),
                    ],
                    options={
                        'db_table': 'prompts_job',
                        'ordering': ['-created_at'],
                    },
                ),
                migrations.CreateModel(
                    name='Run',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('public_id', models.CharField(editable=False, max_length=40, unique=True)),
                        ('request_id', models.CharField(editable=False, max_length=128)),
                        ('environment', models.CharField(choices=[('development', 'Development'), ('staging', 'Staging'), ('production', 'Production')], editable=False, max_length=12)),
                        ('endpoint', models.CharField(editable=False, max_length=10)),
                        ('succeeded', models.BooleanField(editable=False)),
                        ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now, editable=False)),
                        ('result', models.JSONField(default=dict, editable=False, help_text='The run result, without the output.')),
                        ('request_redacted', models.TextField(blank=True, editable=False)),
                        ('output_redacted', models.TextField(blank=True, editable=False)),
                        ('bodies_expire_at', models.DateTimeField(db_index=True, editable=False)),
                        ('bodies_purged_at', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('api_client', models.ForeignKey(editable=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='keys.apiclient')),
                        ('prompt', models.ForeignKey(editable=False, on_delete=django.db.models.deletion.PROTECT, related_name='runs', to='prompts.prompt')),
                        ('version', models.ForeignKey(editable=False, on_delete=django.db.models.deletion.PROTECT, related_name='runs', to='prompts.promptversion')),
                    ],
                    options={
                        'db_table': 'prompts_run',
                        'ordering': ['-created_at'],
                    },
                ),
                migrations.CreateModel(
                    name='WebhookDelivery',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('url', models.URLField(editable=False, max_length=2000)),
                        ('attempt', models.PositiveIntegerField(editable=False)),
                        ('status_code', models.PositiveIntegerField(blank=True, editable=False, null=True)),
                        ('error', models.CharField(blank=True, editable=False, max_length=300)),
                        ('duration_ms', models.PositiveIntegerField(default=0, editable=False)),
                        ('delivered', models.BooleanField(default=False, editable=False)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                        ('batch', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='gateway.batch')),
                        ('job', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='gateway.job')),
                    ],
                    options={
                        'verbose_name_plural': 'webhook deliveries',
                        'db_table': 'prompts_webhookdelivery',
                        'ordering': ['-created_at'],
                    },
                ),
                migrations.CreateModel(
                    name='BatchItem',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('custom_id', models.CharField(editable=False, max_length=64)),
                        ('status', models.CharField(choices=[('pending', 'Pending'), ('succeeded', 'Succeeded'), ('errored', 'Errored'), ('canceled', 'Canceled'), ('expired', 'Expired')], default='pending', editable=False, max_length=10)),
                        ('request_redacted', models.JSONField(default=list, editable=False, help_text='The messages sent (placeholders).')),
                        ('result_ciphertext', models.TextField(blank=True, editable=False)),
                        ('result_kek_id', models.CharField(blank=True, editable=False, max_length=32)),
                        ('error', models.JSONField(blank=True, default=dict, editable=False)),
                        ('batch', models.ForeignKey(editable=False, on_delete=django.db.models.deletion.CASCADE, related_name='items', to='gateway.batch')),
                    ],
                    options={
                        'db_table': 'prompts_batchitem',
                        'ordering': ['batch', 'id'],
                        'constraints': [models.UniqueConstraint(fields=('batch', 'custom_id'), name='batch_item_custom_id_unique')],
                    },
                ),
                migrations.AddIndex(
                    model_name='job',
                    index=models.Index(fields=['status', 'created_at'], name='prompts_job_status_19e0f8_idx'),
                ),
                migrations.AddIndex(
                    model_name='run',
                    index=models.Index(fields=['api_client', 'created_at'], name='prompts_run_api_cli_172568_idx'),
                ),
            ],
        ),
    ]
