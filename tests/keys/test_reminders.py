"""Rotation reminders: 14, 7 and 1 days before due, daily once overdue, never twice a day."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import mail

from audit.models import AuditEvent
from keys import services
from keys.models import KeyReminder
from keys.services import provider_key_reminders_send
from keys.tasks import rotation_reminders
from tests.factories import UserFactory
from tests.keys.conftest import CANARY_SECRET

pytestmark = pytest.mark.django_db

CREATED = date(2026, 1, 1)  # due 90 days later: 2026-04-01


@pytest.fixture
def key(custodian):
    with time_machine.travel(CREATED, tick=False):
        return services.provider_key_create(
            actor=custodian,
            environment="production",
            label="Production key",
            secret=CANARY_SECRET,
            owner=UserFactory(username="key-owner", email="owner@example.com"),
            monthly_cap_usd=Decimal(100),
        )


def test_reminders_follow_the_schedule(key):
    due = CREATED + timedelta(days=90)
    reminded = []
    for offset in range(-20, 4):
        day = due + timedelta(days=offset)
        if provider_key_reminders_send(today=day):
            reminded.append(offset)

    assert reminded == [-14, -7, -1, 0, 1, 2, 3]


def test_a_reminder_is_sent_once_a_day_by_mail_and_to_the_audit_trail(
    key, custodian, django_capture_on_commit_callbacks
):
    custodian.email = "custodian@example.com"
    custodian.save()
    day = CREATED + timedelta(days=90 - 7)

    with django_capture_on_commit_callbacks(execute=True):
        first = provider_key_reminders_send(today=day)
        second = provider_key_reminders_send(today=day)

    assert (len(first), second) == (1, [])
    assert KeyReminder.objects.count() == 1
    assert len(mail.outbox) == 1
    assert sorted(mail.outbox[0].to) == ["custodian@example.com", "owner@example.com"]
    assert "is due in 7 day(s)" in mail.outbox[0].body
    assert key.last_four in mail.outbox[0].body
    assert CANARY_SECRET not in mail.outbox[0].body
    assert AuditEvent.objects.filter(action="provider_key.rotation_reminder").count() == 1


def test_the_daily_task_uses_todays_date(key, django_capture_on_commit_callbacks):
    with (
        time_machine.travel(CREATED + timedelta(days=95), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        rotation_reminders.delay()

    reminder = KeyReminder.objects.get()
    assert reminder.days_left == -5
    assert "overdue by 5 day(s)" in mail.outbox[0].body
