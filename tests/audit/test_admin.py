"""The audit trail in the admin: readable by oversight roles, changeable by nobody."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from audit.models import AuditEvent
from audit.services import audit_event_record
from core.roles import Role

pytestmark = pytest.mark.django_db


def test_the_four_roles_exist():
    assert set(Group.objects.values_list("name", flat=True)) >= {role.value for role in Role}


@pytest.fixture
def event(superuser) -> AuditEvent:
    return audit_event_record(action="prompt.create", actor=superuser, object_type="prompts.prompt", object_id="7")


@pytest.mark.parametrize("persona", ["auditor", "approver", "custodian", "superuser"])
def test_oversight_roles_can_read_the_trail(client, request, persona, event):
    client.force_login(request.getfixturevalue(persona))

    listing = client.get("/admin/audit/auditevent/")
    detail = client.get(f"/admin/audit/auditevent/{event.pk}/change/")

    assert listing.status_code == 200
    assert "prompt.create" in listing.content.decode()
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()  # read-only: no save button


def test_nobody_can_add_change_or_delete_events(client, superuser, event):
    client.force_login(superuser)

    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    assert client.post(f"/admin/audit/auditevent/{event.pk}/change/", {"action": "x"}).status_code == 403
    assert client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).action == "prompt.create"


def test_staff_without_a_role_cannot_read_the_trail(client, outsider, event):
    client.force_login(outsider)

    assert client.get("/admin/audit/auditevent/").status_code == 403
