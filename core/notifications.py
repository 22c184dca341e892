"""Notifications to people: e-mail to those with an address and, when configured, the Slack-compatible
alert webhook."""

from __future__ import annotations

import json
import urllib.request

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db.models import QuerySet


def notify(*, subject: str, text: str, recipients: QuerySet[User]) -> None:
    """E-mail `recipients` (those with an address) and, when configured, post to the Slack-compatible
    alert webhook."""
    addresses = sorted(set(recipients.exclude(email="").values_list("email", flat=True)))
    if addresses:
        send_mail(subject=subject, message=text, from_email=settings.DEFAULT_FROM_EMAIL, recipient_list=addresses)
    webhook = settings.TOLLGATE_ALERT_WEBHOOK_URL
    if webhook:
        request = urllib.request.Request(  # noqa: S310  (an operator-configured https URL)
            webhook, data=json.dumps({"text": text}).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass
