"""The hot cache across processes (docs/contract.md §12): the production server (deploy/: gunicorn, two
worker processes) serves the run endpoint on the test database and Redis; the test process changes rows through the
services, committed; the very next requests to the server, whichever worker answers, reflect the change.

The server's entries live TOLLGATE_HOT_CACHE_SECONDS=300, so only the Redis generation can tell its
workers: this process's own clear of its entries, which hides a missing bump in test_hot_cache.py, does
not reach them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest
from django.conf import settings

from bench.run_endpoint import deploy_settings
from keys import services as key_services
from keys.models import ApiToken
from prompts import services
from tests.conftest import web_server
from tests.factories import version_content
from tests.gateway.upstream import EMAIL, TICKET
from usage.models import UsageRecord

WORKERS = deploy_settings()["workers"]
ROUNDS = 3 * WORKERS  # requests after each change: with two workers, both answer some of them (almost surely)


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker) -> Iterator[str]:
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("a gunicorn process cannot share an in-memory SQLite test database")
    if not settings.REDIS_URL:
        pytest.skip("without Redis nothing is cached (docs/contract.md §12)")
    with web_server({
        "REDIS_URL": settings.REDIS_URL,
        "TOLLGATE_HOT_CACHE_SECONDS": "300",
        "TOLLGATE_PRICE_CACHE_SECONDS": "0",  # each test's flush re-seeds the price book with new ids
    }) as url:  # fmt: skip
        yield url


def token_of(world) -> str:
    return str(world["http"]._credentials["HTTP_AUTHORIZATION"]).removeprefix("Bearer ")


def runs(server: str, token: str, rounds: int = ROUNDS) -> list[httpx2.Response]:
    """`rounds` runs, each on a new connection (so the workers share them)."""
    return [
        httpx2.post(
            f"{server}/api/v1/prompts/support-summary/run",
            json={"variables": {"ticket": TICKET, "customer_email": EMAIL}},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        for _ in range(rounds)
    ]


def answers(responses: list[httpx2.Response]) -> set[tuple[int, object]]:
    return {
        (r.status_code, r.json().get("reason") or r.json().get("code") or r.json()["prompt"]["version"])
        for r in responses
    }


@pytest.fixture
def warm(transactional_db, server, world) -> str:
    """The world, run by the server until both workers have cached its token, release and key."""
    token = token_of(world)
    assert answers(runs(server, token, 4 * WORKERS)) == {(200, 1)}
    return token


def test_a_revoked_token_is_refused_by_every_process_on_the_next_request(server, world, warm, custodian):
    key_services.api_token_revoke(actor=custodian, token=ApiToken.objects.get(client=world["client"]), reason="leaked")

    assert answers(runs(server, warm)) == {(401, "revoked")}


def test_a_deactivated_client_is_refused_by_every_process_on_the_next_request(server, world, warm, custodian):
    key_services.api_client_set_active(actor=custodian, client=world["client"], active=False, reason="offboarded")

    assert answers(runs(server, warm)) == {(401, "client_inactive")}


def test_a_release_and_its_rollback_are_run_by_every_process_on_the_next_request(server, world, warm, author, approver):
    version = services.prompt_version_create(
        actor=author, prompt=world["prompt"], content=version_content(system_prompt="Version two."), change_summary="v2"
    )
    services.prompt_version_submit(actor=author, version=version)
    services.prompt_version_approve(actor=approver, version=version, note="ok")
    services.prompt_version_release(actor=approver, version=version, environment="staging", reason="try")
    release = services.prompt_version_release(actor=approver, version=version, environment="production", reason="v2")
    assert answers(runs(server, warm)) == {(200, 2)}

    services.release_rollback(actor=approver, release=release, reason="v2 misbehaves")

    assert answers(runs(server, warm)) == {(200, 1)}


def test_a_rotated_and_a_revoked_key_are_seen_by_every_process_on_the_next_request(server, world, warm, custodian):
    # The sandbox refuses a key with "revoked" in it: only calls carrying this very key fail so.
    refused = key_services.provider_key_rotate(
        actor=custodian, key=world["key"], new_secret="sk-ant-sandbox-revoked-key-0043", reason="scheduled"
    )
    since = UsageRecord.objects.latest("id").pk

    assert {r.status_code for r in runs(server, warm)} == {502}
    assert set(UsageRecord.objects.filter(pk__gt=since).values_list("provider_key_id", flat=True)) == {refused.pk}

    key_services.provider_key_revoke(actor=custodian, key=refused, reason="compromised")
    since = UsageRecord.objects.latest("id").pk

    assert {(r.status_code, r.json()["title"]) for r in runs(server, warm)} == {(502, "No provider key")}
    assert not UsageRecord.objects.filter(pk__gt=since).exists()


def test_tokens_of_one_client_in_parallel_on_every_process_share_one_window(transactional_db, server, world, custodian):
    """Three tokens of one client, one cached in a worker and two not, sent at once to both workers: the
    client's window admits exactly its rate, counted once per request whichever path counted it."""
    client, _ = key_services.api_client_create(
        actor=custodian, name="bursty", environment="production", owner=custodian, all_prompts=True,
        rate_limit_per_minute=5,
    )  # fmt: skip
    tokens = [key_services.api_token_issue(actor=custodian, client=client, label=f"t{n}")[1] for n in range(3)]
    if time.time() % 60 > 40:  # the burst must fall in one window
        time.sleep(60.5 - time.time() % 60)
    window = int(time.time() // 60)
    assert [r.status_code for r in runs(server, tokens[0], 1)] == [200]  # cached in one worker; 1 of 5
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda n: runs(server, tokens[n % 3], 1)[0], range(12)))

    assert int(time.time() // 60) == window
    assert sorted(r.status_code for r in responses) == [200] * 4 + [429] * 8
