"""Services and the beat queue tasks by name (core.tasks); a name nobody registered would only fail when
the work is queued. In a process that has only set Django up — a web server — every name is known."""

from __future__ import annotations

import os
import subprocess
import sys

from django.conf import settings

from evaluations.services import EVALUATION_RUN_TASK
from gateway.batches import BATCH_SUBMIT_TASK
from gateway.jobs import JOB_RUN_TASK
from gateway.webhooks import WEBHOOK_DELIVER_TASK
from usage.services import BUDGET_ALERT_NOTIFY_TASK

QUEUED_BY_NAME = [EVALUATION_RUN_TASK, BATCH_SUBMIT_TASK, JOB_RUN_TASK, WEBHOOK_DELIVER_TASK, BUDGET_ALERT_NOTIFY_TASK]


def test_every_task_queued_by_name_is_registered_once_django_is_set_up() -> None:
    names = sorted({*QUEUED_BY_NAME, *(entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values())})
    script = (
        "import django, sys; django.setup(); from celery import current_app; "
        "missing = [name for name in sys.argv[1:] if name not in current_app.tasks]; print(missing); "
        "sys.exit(1 if missing else 0)"
    )
    done = subprocess.run(  # a fresh process: nothing imported by other tests
        [sys.executable, "-c", script, *names],
        capture_output=True,
        text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
