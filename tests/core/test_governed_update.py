"""The one update path of governed records (core.governance.governed_update), through each service that uses
it: a change is compared with the stored row (not the caller's copy), fields outside the allowed set are
refused with nothing written, and what changed is what the audit trail records."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from core.errors import InvalidVersion, KeyOperationRefused
from keys import services as key_services
from prompts import services
from prompts.models import Prompt


@pytest.fixture
def prompt(author):
    return services.prompt_create(actor=author, slug="summary", name="Summary", purpose="p", owner=author)


def test_a_stale_copy_is_compared_with_the_stored_row(prompt, author):
    stale = Prompt.objects.get(pk=prompt.pk)
    services.prompt_update(actor=author, prompt=prompt, reason="rename", name="Summaries")
    services.prompt_update(actor=author, prompt=stale, reason="rename again", name="Summaries", team="support")
    event = AuditEvent.objects.filter(action="prompt.update").latest("sequence")
    assert event.changes == {"team": ["", "support"]}  # the name was already changed: not recorded twice
    assert Prompt.objects.get(pk=prompt.pk).history.count() == 3


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=st.sets(st.sampled_from(["slug", "created_at", "owner_id", "id", "status", "secret"]), min_size=1))
def test_fields_outside_the_allowed_set_are_refused_and_nothing_is_written(prompt, author, extra):
    before = (Prompt.objects.get(pk=prompt.pk).name, AuditEvent.objects.count())
    with pytest.raises(InvalidVersion) as refused:
        services.prompt_update(actor=author, prompt=prompt, reason="r", name="Changed", **dict.fromkeys(extra, "x"))
    assert set(refused.value.errors) == extra
    assert (Prompt.objects.get(pk=prompt.pk).name, AuditEvent.objects.count()) == before


def test_keys_and_clients_refuse_what_they_do_not_govern(custodian):
    client, _ = key_services.api_client_create(
        actor=custodian, name="app", environment="production", owner=custodian, all_prompts=True
    )
    with pytest.raises(KeyOperationRefused, match="environment"):
        key_services.api_client_update(actor=custodian, client=client, reason="r", environment="development")
    updated = key_services.api_client_update(actor=custodian, client=client, reason="r", rate_limit_per_minute=7)
    assert updated.rate_limit_per_minute == 7
    changes = AuditEvent.objects.filter(action="api_client.update").latest("sequence").changes
    assert changes["rate_limit_per_minute"] == [client.rate_limit_per_minute, 7]
