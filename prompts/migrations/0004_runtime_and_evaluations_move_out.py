"""The runtime's models moved to the gateway app and the evaluation suites to the evaluations app: removed
from this app's state only. Their tables keep their names and their rows (gateway 0001, evaluations 0001)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('prompts', '0003_evaluation_suites'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='webhookdelivery',
                    name='batch',
                ),
                migrations.RemoveField(
                    model_name='batchitem',
                    name='batch',
                ),
                migrations.RemoveField(
                    model_name='evaluationcase',
                    name='created_by',
                ),
                migrations.RemoveField(
                    model_name='evaluationcase',
                    name='prompt',
                ),
                migrations.RemoveField(
                    model_name='evaluationrun',
                    name='requested_by',
                ),
                migrations.RemoveField(
                    model_name='evaluationrun',
                    name='version',
                ),
                migrations.RemoveField(
                    model_name='historicalevaluationcase',
                    name='created_by',
                ),
                migrations.RemoveField(
                    model_name='historicalevaluationcase',
                    name='history_user',
                ),
                migrations.RemoveField(
                    model_name='historicalevaluationcase',
                    name='prompt',
                ),
                migrations.RemoveField(
                    model_name='job',
                    name='api_client',
                ),
                migrations.RemoveField(
                    model_name='job',
                    name='prompt',
                ),
                migrations.RemoveField(
                    model_name='job',
                    name='version',
                ),
                migrations.RemoveField(
                    model_name='webhookdelivery',
                    name='job',
                ),
                migrations.RemoveField(
                    model_name='run',
                    name='api_client',
                ),
                migrations.RemoveField(
                    model_name='run',
                    name='prompt',
                ),
                migrations.RemoveField(
                    model_name='run',
                    name='version',
                ),
                migrations.DeleteModel(
                    name='Batch',
                ),
                migrations.DeleteModel(
                    name='BatchItem',
                ),
                migrations.DeleteModel(
                    name='EvaluationCase',
                ),
                migrations.DeleteModel(
                    name='EvaluationRun',
                ),
                migrations.DeleteModel(
                    name='HistoricalEvaluationCase',
                ),
                migrations.DeleteModel(
                    name='Job',
                ),
                migrations.DeleteModel(
                    name='WebhookDelivery',
                ),
                migrations.DeleteModel(
                    name='Run',
                ),
            ],
        ),
    ]
