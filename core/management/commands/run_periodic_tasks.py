"""manage.py run_periodic_tasks: the beat schedule, run in this process — for the embedded default, which has
no broker and so no `celery beat`. Reservations are reaped, audit checkpoints signed, reminders sent and
alerts checked on the same schedule as in production."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from celery import current_app as app
from celery.schedules import BaseSchedule, maybe_schedule
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the Celery beat schedule in this process (the embedded default has no broker)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="run every task once now, then exit")

    def handle(self, *args: Any, **options: Any) -> None:
        app.loader.import_default_modules()  # registers every app's tasks
        entries: dict[str, tuple[str, BaseSchedule]] = {}
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
            schedule = maybe_schedule(entry["schedule"])
            assert isinstance(schedule, BaseSchedule)  # floats and timedeltas become schedules
            entries[name] = (entry["task"], schedule)
        if options["once"]:
            for name, (task, _) in entries.items():
                self._run(name, task)
            return
        last_run: dict[str, datetime] = dict.fromkeys(entries, timezone.now())
        while True:
            wait = 60.0
            for name, (task, schedule) in entries.items():
                due, next_in = schedule.is_due(last_run[name])
                if due:
                    last_run[name] = timezone.now()
                    self._run(name, task)
                wait = min(wait, max(next_in, 1.0))
            time.sleep(wait)

    def _run(self, name: str, task: str) -> None:
        try:
            app.tasks[task].apply(throw=True)
        except Exception:  # one task's failure must not stop the schedule
            logger.exception("Periodic task %s failed", name)
