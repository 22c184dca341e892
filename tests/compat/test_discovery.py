"""Prompt discovery: every system prompt free-form calls send is inventoried by the hash of its redacted
text — calls, tokens and cost as the ledger has them, the clients that send it, whether it carried
personal data — its text is kept for the body retention only, and an author can register it as a
governed prompt (a draft, reviewed like any other)."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from core.errors import DomainError, RoleRequired
from gateway.discovery import discovered_prompt_register
from gateway.models import DiscoveredPrompt, Run
from gateway.services import request_bodies_purge
from keys import services as key_services
from prompts import services as prompt_services
from prompts.models import Prompt
from tests.gateway.test_redaction_properties import emails, phones, texts_with
from tests.gateway.upstream import EMAIL, PHONE
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db

OTHER_EMAIL = "rob.smith@example.org"
OTHER_PHONE = "+44 20 7946 0958"
TEMPLATE = "You are the billing assistant of Acme. The customer is {email}, phone {phone}. Be brief."


def ask(client, system=None, *, content="Where is my invoice?", model="claude-haiku-4-5", stream=False):
    """One free-form call through the SDK; `system` as the caller wrote it (omitted when None)."""
    body = {"model": model, "max_tokens": 200, "messages": [{"role": "user", "content": content}]}
    if system is not None:
        body["system"] = system
    if stream:
        with client.messages.stream(**body) as answer:
            return answer.get_final_message()
    return client.messages.create(**body)


def ledger_totals() -> dict:
    totals = UsageRecord.objects.aggregate(
        input=Sum("input_tokens"),
        writes_5m=Sum("cache_write_5m_tokens"),
        writes_1h=Sum("cache_write_1h_tokens"),
        reads=Sum("cache_read_tokens"),
        output=Sum("output_tokens"),
        cost=Sum("cost_usd"),
    )
    return {
        "calls": UsageRecord.objects.count(),
        "input_tokens": totals["input"] + totals["writes_5m"] + totals["writes_1h"] + totals["reads"],
        "output_tokens": totals["output"],
        "cost_usd": totals["cost"],
    }


def inventoried(entry: DiscoveredPrompt) -> dict:
    entry.refresh_from_db()
    return {name: getattr(entry, name) for name in ("calls", "input_tokens", "output_tokens", "cost_usd")}


@pytest.fixture
def agent(sdk, freeform_client):
    return sdk(freeform_client)


@pytest.fixture
def second_client(custodian):
    client, _ = key_services.api_client_create(
        actor=custodian, name="chat-widget", environment="production", owner=custodian, rate_limit_per_minute=1000,
        freeform=True, freeform_models=["claude-haiku-4-5"], freeform_max_tokens=1000,
    )  # fmt: skip
    return client


# --- the inventory ---------------------------------------------------------------------------------------


def test_calls_tokens_and_cost_are_counted_per_prompt_as_the_ledger_has_them(agent):
    # Long enough to be cached (the sandbox caches from 1,024 tokens on Sonnet): cache writes and reads
    # are priced to more decimals than a plain call.
    cached = [{"type": "text", "text": "You answer questions about Acme's invoices. " * 100 + "Odd.",
               "cache_control": {"type": "ephemeral"}}]  # fmt: skip
    ask(agent, cached, model="claude-sonnet-4-6")
    ask(agent, cached, model="claude-sonnet-4-6", stream=True)
    ask(agent, cached, model="claude-haiku-4-5")
    entry = DiscoveredPrompt.objects.get()
    first = ledger_totals()

    ask(agent, "You are terse.")

    assert inventoried(entry) == first
    assert UsageRecord.objects.filter(cache_read_tokens__gt=0).exists()  # the cached path was counted
    assert first["cost_usd"] != first["cost_usd"].quantize(Decimal("0.000001"))  # finer than a millionth
    assert entry.last_model == "claude-haiku-4-5"
    other = DiscoveredPrompt.objects.exclude(pk=entry.pk).get()
    assert {k: first[k] + v for k, v in inventoried(other).items()} == ledger_totals()
    assert other.text_redacted == "You are terse."
    assert other.system_hash == hashlib.sha256(b"You are terse.").hexdigest()
    assert not entry.personal_data
    assert not other.personal_data
    assert entry.environment == "production"


def test_one_template_sent_with_different_personal_data_is_one_prompt(agent):
    ask(agent, TEMPLATE.format(email=EMAIL, phone=PHONE))
    # The messages carry personal data of their own this time: the system prompt's placeholders do not move.
    ask(agent, TEMPLATE.format(email=OTHER_EMAIL, phone=OTHER_PHONE), content=f"I am {EMAIL}, call {PHONE}")

    entry = DiscoveredPrompt.objects.get()
    assert entry.calls == 2
    assert entry.personal_data
    assert entry.text_redacted == TEMPLATE.format(email="<EMAIL_1>", phone="<PHONE_1>")
    for value in (EMAIL, PHONE, OTHER_EMAIL, OTHER_PHONE):
        assert value not in entry.text_redacted


def test_a_second_client_sending_the_prompt_is_added_to_its_clients(sdk, agent, freeform_client, second_client):
    ask(agent, "You are terse.")
    ask(agent, "You are terse.")
    ask(sdk(second_client), "You are terse.")

    entry = DiscoveredPrompt.objects.get()
    assert entry.calls == 3
    assert set(entry.clients.all()) == {freeform_client, second_client}


def test_a_call_without_a_system_prompt_is_inventoried_too(agent, author):
    ask(agent)
    ask(agent, content=f"Mail {EMAIL}")

    entry = DiscoveredPrompt.objects.get()
    assert entry.system_hash == hashlib.sha256(b"").hexdigest()
    assert (entry.calls, entry.characters, entry.text_redacted, entry.personal_data) == (2, 0, "", False)
    assert not entry.text_purged
    with pytest.raises(DomainError, match="without a system prompt"):
        discovered_prompt_register(actor=author, discovered=entry, slug="empty", name="Empty")


def test_counting_tokens_inventories_nothing(agent):
    agent.messages.count_tokens(
        model="claude-haiku-4-5", system="You are terse.", messages=[{"role": "user", "content": "hi"}]
    )

    assert not DiscoveredPrompt.objects.exists()


def test_the_text_is_blanked_after_the_retention_and_the_counts_stay(agent, settings):
    settings.TOLLGATE_BODY_RETENTION_DAYS = 7
    ask(agent, "You are terse.")
    entry = DiscoveredPrompt.objects.get()
    assert entry.text_expires_at - entry.last_seen_at == timedelta(days=7)

    request_bodies_purge()  # not yet due
    entry.refresh_from_db()
    assert entry.text_redacted == "You are terse."

    DiscoveredPrompt.objects.update(text_expires_at=timezone.now() - timedelta(seconds=1))  # a week later
    request_bodies_purge()

    entry.refresh_from_db()
    assert (entry.text_redacted, entry.text_expires_at, entry.text_purged) == ("", None, True)
    assert (entry.calls, entry.characters) == (1, len("You are terse."))
    assert Run.objects.get().request_redacted  # the run's bodies have their own retention

    ask(agent, "You are terse.")  # seen again: kept again, for another retention period
    entry.refresh_from_db()
    assert (entry.text_redacted, entry.calls) == ("You are terse.", 2)
    assert entry.text_expires_at > timezone.now() + timedelta(days=6)


def test_planted_personal_data_never_reaches_the_inventory(agent):
    @hypothesis_settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(planted=st.lists(texts_with(st.one_of(emails(), phones())), min_size=1, max_size=3))
    def check(planted):
        system = "You help our customers.\n" + "\n".join(text for _, _, text in planted)
        with transaction.atomic():  # each example leaves nothing behind for the next to find
            try:
                ask(agent, system)
                entry = DiscoveredPrompt.objects.get()
                assert entry.personal_data
                for _, value, _ in planted:
                    assert value not in entry.text_redacted, entry.text_redacted
            finally:
                transaction.set_rollback(True)

    check()


# --- registering a discovered prompt -----------------------------------------------------------------------


@pytest.fixture
def discovered(agent) -> DiscoveredPrompt:
    ask(agent, TEMPLATE.format(email=EMAIL, phone=PHONE), model="claude-sonnet-4-6")
    return DiscoveredPrompt.objects.get()


def test_registering_makes_a_draft_with_the_redacted_text_and_is_audited(discovered, author):
    version = discovered_prompt_register(actor=author, discovered=discovered, slug="billing-assistant",
                                         name="Billing assistant")  # fmt: skip

    assert version.status == "draft"
    assert version.author == author
    assert version.system_prompt == TEMPLATE.format(email="<EMAIL_1>", phone="<PHONE_1>")
    assert EMAIL not in str(version.content())
    assert PHONE not in str(version.content())
    assert version.model == "claude-sonnet-4-6"
    prompt = version.prompt
    assert (prompt.slug, prompt.name, prompt.owner, prompt.data_categories) == (
        "billing-assistant", "Billing assistant", author, ["personal"])  # fmt: skip
    assert "agent" in prompt.purpose
    assert discovered.short_hash in prompt.purpose
    discovered.refresh_from_db()
    assert discovered.registered_version == version
    event = AuditEvent.objects.get(action="discovered_prompt.register")
    assert (event.actor_repr, event.object_type, event.object_id) == (
        "alice-author", "gateway.discoveredprompt", str(discovered.pk))  # fmt: skip
    assert event.changes == {"system_hash": discovered.system_hash, "environment": "production",
                             "prompt": "billing-assistant", "version": 1}  # fmt: skip
    assert AuditEvent.objects.filter(action="prompt_version.create", object_id=str(version.pk)).exists()
    # A valid draft: its author can submit it for the second person's review.
    assert prompt_services.prompt_version_submit(actor=author, version=version).status == "in_review"


@pytest.mark.parametrize(
    ("slug", "refusal"),
    [
        ("", "Give the new prompt a slug"),
        ("   ", "Give the new prompt a slug"),
        ("billing assistant!", "only letters, digits, hyphens"),
        ("x" * 81, "at most 80"),
        ("support-summary", "'support-summary' exists already"),
    ],
)
def test_a_bad_or_taken_slug_is_refused(discovered, author, slug, refusal):
    with pytest.raises(DomainError, match=refusal):
        discovered_prompt_register(actor=author, discovered=discovered, slug=slug, name="Billing")

    assert not AuditEvent.objects.filter(action="discovered_prompt.register").exists()
    assert DiscoveredPrompt.objects.get().registered_version is None


def test_a_prompt_is_registered_once(discovered, author):
    discovered_prompt_register(actor=author, discovered=discovered, slug="billing", name="Billing")

    with pytest.raises(DomainError, match="registered already"):
        discovered_prompt_register(actor=author, discovered=discovered, slug="billing-2", name="Billing")


def test_a_purged_text_cannot_be_registered(discovered, author):
    DiscoveredPrompt.objects.update(text_expires_at=timezone.now())
    request_bodies_purge()

    with pytest.raises(DomainError, match="no longer kept"):
        discovered_prompt_register(actor=author, discovered=discovered, slug="billing", name="Billing")


def test_registering_needs_the_authors_role(discovered, approver, auditor):
    for person in (approver, auditor):
        with pytest.raises(RoleRequired):
            discovered_prompt_register(actor=person, discovered=discovered, slug="billing", name="Billing")

    assert not Prompt.objects.filter(slug="billing").exists()


def test_a_text_no_version_may_hold_is_refused_and_nothing_is_left_behind(agent, author):
    ask(agent, "Reply in the form {{ answer }}.")
    entry = DiscoveredPrompt.objects.get()

    with pytest.raises(DomainError, match=r"system_prompt: must not contain \{\{ placeholders \}\}"):
        discovered_prompt_register(actor=author, discovered=entry, slug="form", name="Form")

    assert not Prompt.objects.filter(slug="form").exists()
    assert not AuditEvent.objects.filter(action="prompt.create", object_repr="form").exists()


# --- the admin -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("persona", "status"), [("author", 200), ("approver", 200), ("auditor", 200),
                                                 ("custodian", 403), ("outsider", 403)])  # fmt: skip
def test_the_inventory_is_read_by_the_roles_that_read_the_request_log_and_authors(
    client, request, discovered, persona, status
):
    client.force_login(request.getfixturevalue(persona))

    assert client.get("/admin/gateway/discoveredprompt/").status_code == status
    assert client.get(f"/admin/gateway/discoveredprompt/{discovered.pk}/change/").status_code == status


def test_the_list_filters_and_finds_by_hash(client, auditor, agent, discovered):
    ask(agent, "You are terse.")
    terse = DiscoveredPrompt.objects.get(personal_data=False)
    client.force_login(auditor)

    listing = client.get("/admin/gateway/discoveredprompt/").content.decode()
    assert discovered.short_hash in listing
    assert terse.short_hash in listing
    assert "agent" in listing  # its clients
    assert EMAIL not in listing

    def found(query: str) -> set[str]:
        page = client.get(f"/admin/gateway/discoveredprompt/?{query}")
        return {entry.short_hash for entry in page.context["cl"].result_list}

    assert found("personal_data__exact=1") == {discovered.short_hash}
    assert found(f"q={terse.short_hash}") == {terse.short_hash}
    assert found("environment__exact=development") == set()
    assert found("registered=no") == {discovered.short_hash, terse.short_hash}
    assert found("registered=yes") == set()


def test_the_detail_shows_the_redacted_text_or_that_it_is_no_longer_kept(client, auditor, discovered):
    client.force_login(auditor)
    url = f"/admin/gateway/discoveredprompt/{discovered.pk}/change/"

    page = client.get(url).content.decode()
    assert "&lt;EMAIL_1&gt;" in page
    assert EMAIL not in page
    assert 'name="_save"' not in page  # read-only
    assert 'id="register"' not in page  # an auditor registers nothing

    DiscoveredPrompt.objects.update(text_expires_at=timezone.now())
    request_bodies_purge()
    page = client.get(url).content.decode()
    assert "No longer kept" in page
    assert "&lt;EMAIL_1&gt;" not in page


def test_an_author_registers_from_the_admin(client, author, auditor, discovered):
    client.force_login(author)
    detail = f"/admin/gateway/discoveredprompt/{discovered.pk}/change/"
    register = f"/admin/gateway/discoveredprompt/{discovered.pk}/register/"
    assert 'id="register"' in client.get(detail).content.decode()
    assert client.get(register).status_code == 200

    taken = client.post(register, {"slug": "support-summary", "name": "Billing"})
    assert taken.status_code == 200
    assert "exists already" in taken.content.decode()

    done = client.post(register, {"slug": "billing-assistant", "name": "Billing assistant"}, follow=True)
    version = DiscoveredPrompt.objects.get().registered_version
    assert version is not None
    assert version.prompt.slug == "billing-assistant"
    assert done.redirect_chain[-1][0] == f"/admin/prompts/promptversion/{version.pk}/change/"
    assert "a draft" in done.content.decode()

    page = client.get(detail).content.decode()
    assert 'id="register"' not in page
    assert f"/admin/prompts/promptversion/{version.pk}/change/" in page
    again = client.post(register, {"slug": "billing-2", "name": "Again"})
    assert "registered already" in again.content.decode()
    listing = client.get("/admin/gateway/discoveredprompt/?registered=yes")
    assert [entry.pk for entry in listing.context["cl"].result_list] == [discovered.pk]

    client.force_login(auditor)
    assert client.get(register).status_code == 403
