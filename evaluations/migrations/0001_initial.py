"""The evaluation suites, moved here from the prompts app with their tables (db_table keeps the names):
state only, no data copied."""

import django.db.models.deletion
import django.utils.timezone
import simple_history.models
from django.conf import settings
from typing import Any

from django.db import migrations, models

APP = "evaluations"
MODELS = ['evaluationcase', 'evaluationrun', 'historicalevaluationcase']


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
        ('prompts', '0004_runtime_and_evaluations_move_out'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(content_types_move, content_types_move_back, elidable=False),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='EvaluationRun',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('content_hash', models.CharField(help_text="The version's content hash when it was evaluated.", max_length=64)),
                        ('trigger', models.CharField(choices=[('manual', 'Run by a person'), ('scheduled', 'Weekly production evaluation')], max_length=10)),
                        ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('passed', 'Passed'), ('failed', 'Failed')], default='queued', max_length=10)),
                        ('environment', models.CharField(choices=[('development', 'Development'), ('staging', 'Staging'), ('production', 'Production')], help_text='Whose provider key and caps paid for the calls.', max_length=12)),
                        ('cases_total', models.PositiveIntegerField(default=0)),
                        ('cases_passed', models.PositiveIntegerField(default=0)),
                        ('pass_rate', models.FloatField(blank=True, help_text='Share of cases passed, 0 to 1.', null=True)),
                        ('results', models.JSONField(blank=True, default=list, help_text='Per case: name, passed, failures, error code, and the answer as sent (placeholders, not personal data).')),
                        ('error', models.CharField(blank=True, help_text='Why the run could not evaluate at all.', max_length=300)),
                        ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ('started_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('requested_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('version', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='evaluation_runs', to='prompts.promptversion')),
                    ],
                    options={
                        'db_table': 'prompts_evaluationrun',
                        'ordering': ['-created_at'],
                    },
                ),
                migrations.CreateModel(
                    name='HistoricalEvaluationCase',
                    fields=[
                        ('id', models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name='ID')),
                        ('name', models.CharField(max_length=100)),
                        ('variables', models.JSONField(blank=True, default=dict, help_text='The variables the case runs with.')),
                        ('expectations', models.JSONField(default=list, help_text='What the answer must satisfy, each of: {"contains": "text"}, {"regex": "pattern"}, {"json_schema": {...}}, {"similar_to": "reference answer", "threshold": 0.8}.')),
                        ('active', models.BooleanField(default=True, help_text='Inactive cases are kept but no longer run.')),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                        ('history_id', models.AutoField(primary_key=True, serialize=False)),
                        ('history_date', models.DateTimeField(db_index=True)),
                        ('history_change_reason', models.TextField(null=True)),
                        ('history_type', models.CharField(choices=[('+', 'Created'), ('~', 'Changed'), ('-', 'Deleted')], max_length=1)),
                        ('created_by', models.ForeignKey(blank=True, db_constraint=False, editable=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('history_user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('prompt', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='prompts.prompt')),
                    ],
                    options={
                        'verbose_name': 'historical evaluation case',
                        'verbose_name_plural': 'historical evaluation cases',
                        'db_table': 'prompts_historicalevaluationcase',
                        'ordering': ('-history_date', '-history_id'),
                        'get_latest_by': ('history_date', 'history_id'),
                    },
                    bases=(simple_history.models.HistoricalChanges, models.Model),
                ),
                migrations.CreateModel(
                    name='EvaluationCase',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=100)),
                        ('variables', models.JSONField(blank=True, default=dict, help_text='The variables the case runs with.')),
                        ('expectations', models.JSONField(default=list, help_text='What the answer must satisfy, each of: {"contains": "text"}, {"regex": "pattern"}, {"json_schema": {...}}, {"similar_to": "reference answer", "threshold": 0.8}.')),
                        ('active', models.BooleanField(default=True, help_text='Inactive cases are kept but no longer run.')),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                        ('created_by', models.ForeignKey(editable=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('prompt', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='evaluation_cases', to='prompts.prompt')),
                    ],
                    options={
                        'db_table': 'prompts_evaluationcase',
                        'ordering': ['prompt__slug', 'name'],
                        'constraints': [models.UniqueConstraint(fields=('prompt', 'name'), name='evaluation_case_name_unique')],
                    },
                ),
            ],
        ),
    ]
