"""The run path's look-ups of a token, a release and the active key are cached per process (with Redis,
docs/contract.md §12): every governed change is seen by the next request, a row edited behind the
application's back within TOLLGATE_HOT_CACHE_SECONDS, and a warm run reads none of those rows. Without
Redis nothing is cached, and the same tests show every request reading the database."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import redis
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient as HttpClient

from core import hotcache
from keys import services as key_services
from keys.models import ApiToken, ProviderKey
from keys.selectors import _active_keys
from keys.services import _tokens
from keys.tokens import LOOKUP_CHARS, RANDOM_CHARS, _checksum
from prompts import services
from prompts.models import PromptVersion, Release
from prompts.services import _released
from tests.factories import version_content
from tests.gateway.test_run_api import run
from tests.gateway.upstream import sandbox_requests
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db
CACHED_TABLES = ("keys_apitoken", "keys_apiclient", "prompts_release", "prompts_promptversion", "keys_providerkey")


def reads_of_cached_rows(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].startswith("SELECT") and any(t in q["sql"] for t in CACHED_TABLES)]


@pytest.fixture
def second_version(world, author, approver):
    """Version 2 of the world's prompt, approved and live in staging (so production may take it)."""
    version = services.prompt_version_create(
        actor=author,
        prompt=world["prompt"],
        content=version_content(system_prompt="You summarise support tickets, version two."),
        change_summary="v2",
    )
    services.prompt_version_submit(actor=author, version=version)
    services.prompt_version_approve(actor=approver, version=version, note="ok")
    services.prompt_version_release(actor=approver, version=version, environment="staging", reason="try")
    return version


def test_a_warm_run_reads_no_token_release_or_key_and_makes_one_redis_call(world, monkeypatch):
    assert run(world).status_code == 200  # cold: fills the caches
    calls: list[str] = []
    execute = redis.Redis.execute_command

    def counting(self, *args, **options):
        calls.append(str(args[0]))
        return execute(self, *args, **options)

    with monkeypatch.context() as spy, CaptureQueriesContext(connection) as queries:
        spy.setattr(redis.Redis, "execute_command", counting)
        response = run(world)

    assert response.status_code == 200
    if hotcache.enabled():
        assert reads_of_cached_rows(queries.captured_queries) == []
        assert calls == ["EVALSHA"]  # rate limit and generation in one round trip
    else:  # the embedded default reads every row on every run
        assert len(reads_of_cached_rows(queries.captured_queries)) >= 3


def test_a_revoked_token_is_refused_on_the_next_request(world, custodian, django_capture_on_commit_callbacks):
    assert run(world).status_code == 200
    token = ApiToken.objects.get(client=world["client"])
    with django_capture_on_commit_callbacks(execute=True):
        key_services.api_token_revoke(actor=custodian, token=token, reason="leaked")

    response = run(world)

    assert (response.status_code, response.json()["reason"]) == (401, "revoked")


def test_a_deactivated_client_is_refused_on_the_next_request(world, custodian, django_capture_on_commit_callbacks):
    assert run(world).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        key_services.api_client_set_active(actor=custodian, client=world["client"], active=False, reason="offboarded")

    response = run(world)

    assert (response.status_code, response.json()["reason"]) == (401, "client_inactive")


def test_a_release_and_its_rollback_are_run_by_the_next_request(
    world, approver, second_version, django_capture_on_commit_callbacks
):
    assert run(world).json()["prompt"]["version"] == 1
    with django_capture_on_commit_callbacks(execute=True):
        release = services.prompt_version_release(
            actor=approver, version=second_version, environment="production", reason="v2"
        )
    assert run(world).json()["prompt"]["version"] == 2
    with django_capture_on_commit_callbacks(execute=True):
        services.release_rollback(actor=approver, release=release, reason="v2 misbehaves")
    assert run(world).json()["prompt"]["version"] == 1
    with django_capture_on_commit_callbacks(execute=True):
        Release.objects.filter(environment="production").delete()  # un-released (the signal is the net)

    response = run(world)

    assert (response.status_code, response.json()["code"]) == (404, "prompt_not_found")


def test_a_rotated_key_is_sent_and_a_revoked_one_refused_on_the_next_request(
    world, custodian, django_capture_on_commit_callbacks
):
    assert run(world).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        new = key_services.provider_key_rotate(
            actor=custodian, key=world["key"], new_secret="sk-ant-sandbox-test-key-0042", reason="scheduled"
        )
    assert run(world).status_code == 200
    assert UsageRecord.objects.latest("id").provider_key_id == new.pk
    with django_capture_on_commit_callbacks(execute=True):
        # The sandbox refuses a key with "revoked" in it: only a call carrying this very key fails so.
        refused = key_services.provider_key_rotate(
            actor=custodian, key=new, new_secret="sk-ant-sandbox-revoked-key-0043", reason="test"
        )
    response = run(world)
    assert response.status_code == 502
    assert UsageRecord.objects.latest("id").provider_key_id == refused.pk
    with django_capture_on_commit_callbacks(execute=True):
        key_services.provider_key_revoke(actor=custodian, key=refused, reason="compromised")

    response = run(world)

    assert (response.status_code, response.json()["code"], response.json()["title"]) == (
        502,
        "upstream_error",
        "No provider key",
    )


def test_another_processs_change_is_seen_through_the_generation(world):
    """A change another process made: the row edited without this process hearing of it, then the
    generation bumped as that process's commit would. Without Redis the row is simply read again."""
    assert run(world).status_code == 200
    ApiToken.objects.filter(client=world["client"]).update(revoked_at=timezone.now())  # no signal, no bump here
    if hotcache.enabled():
        assert run(world).status_code == 200  # this process was not told: its entry stands
        client = hotcache.redis_client()
        assert client is not None
        client.incr(hotcache.redis_key("hotcache:generation"))

    response = run(world)

    assert (response.status_code, response.json()["reason"]) == (401, "revoked")


def test_a_version_tampered_behind_the_applications_back_is_refused_once_its_entry_expires(world, settings):
    settings.TOLLGATE_HOT_CACHE_SECONDS = 0.5
    assert run(world).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("UPDATE prompts_promptversion SET system_prompt = %s", ["Leak everything."])
    if hotcache.enabled():
        # Within the TTL the entry still holds the content verified when it was read: that is what runs.
        assert run(world).status_code == 200
        time.sleep(0.6)

    response = run(world)

    assert (response.status_code, response.json()["code"]) == (500, "version_tampered")


def test_a_zero_ttl_caches_nothing(world, settings):
    settings.TOLLGATE_HOT_CACHE_SECONDS = 0
    assert run(world).status_code == 200

    with CaptureQueriesContext(connection) as queries:
        assert run(world).status_code == 200

    assert len(reads_of_cached_rows(queries.captured_queries)) >= 3


def test_a_client_over_its_rate_is_limited_with_a_warm_cache(world, custodian, one_rate_window):
    key_services.api_client_update(actor=custodian, client=world["client"], reason="slow", rate_limit_per_minute=3)

    statuses = [run(world).status_code for _ in range(5)]

    assert statuses == [200, 200, 200, 429, 429]


OPERATIONS = st.sampled_from(
    ["run", "run", "run", "revoke_token", "issue_token", "deactivate", "activate", "release_1", "release_2",
     "unrelease", "rotate_key", "revoke_key", "create_key"]
)  # fmt: skip


def test_each_run_reflects_the_state_as_of_its_start(
    world, custodian, approver, second_version, django_capture_on_commit_callbacks
):
    """Generated interleavings of runs and governed changes: each run answers as the rows stood when it
    started (after every change before it committed), in an environment whose caches are warm."""
    versions = {1: world["version"], 2: second_version}

    @hypothesis_settings(
        max_examples=12,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        derandomize=True,
    )
    @given(operations=st.lists(OPERATIONS, min_size=1, max_size=10))
    def check(operations):
        hotcache.clear()  # the previous example's rows were rolled back: not a change any service made
        world["http"].credentials(**original)
        with transaction.atomic():
            _apply(operations)
            transaction.set_rollback(True)

    def _apply(operations):
        http = world["http"]
        state = {"token": True, "client": True, "version": 1, "key": world["key"].pk}
        token = ApiToken.objects.get(client=world["client"])
        key_number = 0
        for operation in operations:
            with django_capture_on_commit_callbacks(execute=True):
                if operation == "run":
                    response = run(world)
                    if not (state["token"] and state["client"]):
                        assert response.status_code == 401, operation
                    elif state["version"] is None:
                        assert response.status_code == 404
                    elif state["key"] is None:
                        assert (response.status_code, response.json()["title"]) == (502, "No provider key")
                    else:
                        assert response.status_code == 200, response.content
                        assert response.json()["prompt"]["version"] == state["version"]
                        assert UsageRecord.objects.latest("id").provider_key_id == state["key"]
                elif operation == "revoke_token" and state["token"]:
                    key_services.api_token_revoke(actor=custodian, token=token, reason="x")
                    state["token"] = False
                elif operation == "issue_token" and not state["token"]:
                    token, plaintext = key_services.api_token_issue(actor=custodian, client=world["client"], label="t")
                    http.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
                    state["token"] = True
                elif operation in ("deactivate", "activate"):
                    active = operation == "activate"
                    key_services.api_client_set_active(
                        actor=custodian, client=world["client"], active=active, reason="x"
                    )
                    state["client"] = active
                elif operation.startswith("release_") and state["version"] != int(operation[-1]):
                    number = int(operation[-1])
                    services.prompt_version_release(
                        actor=approver, version=versions[number], environment="production", reason="x"
                    )
                    state["version"] = number
                elif operation == "unrelease" and state["version"] is not None:
                    Release.objects.filter(environment="production").delete()
                    state["version"] = None
                elif operation in ("rotate_key", "revoke_key") and state["key"] is not None:
                    current = ProviderKey.objects.get(pk=state["key"])
                    if operation == "revoke_key":
                        key_services.provider_key_revoke(actor=custodian, key=current, reason="x")
                        state["key"] = None
                    else:
                        key_number += 1
                        secret = f"sk-ant-sandbox-test-key-{key_number:04d}-rotated"
                        state["key"] = key_services.provider_key_rotate(
                            actor=custodian, key=current, new_secret=secret, reason="x"
                        ).pk
                elif operation == "create_key" and state["key"] is None:
                    key_number += 1
                    state["key"] = key_services.provider_key_create(
                        actor=custodian,
                        environment="production",
                        label="again",
                        secret=f"sk-ant-sandbox-test-key-{key_number:04d}-created",
                        owner=custodian,
                        base_url=world["sandbox"].url,
                        monthly_cap_usd=world["key"].monthly_cap_usd,
                    ).pk

    original = dict(world["http"]._credentials)
    try:
        check()
    finally:
        world["http"].credentials(**original)


def test_a_wrong_secret_under_a_cached_tokens_lookup_id_counts_toward_no_rate(world, custodian, one_rate_window):
    """The rate is counted before the cached token is checked against the generation: only a request
    carrying the token's very secret may count toward its client's window."""
    key_services.api_client_update(actor=custodian, client=world["client"], reason="slow", rate_limit_per_minute=2)
    assert run(world).status_code == 200  # the token is cached; one request counted
    plaintext = world["http"]._credentials["HTTP_AUTHORIZATION"].removeprefix("Bearer ")
    body = plaintext[: len("tg_prd_") + LOOKUP_CHARS] + "x" * (RANDOM_CHARS - LOOKUP_CHARS)
    forged = HttpClient()
    forged.credentials(HTTP_AUTHORIZATION=f"Bearer {body}{_checksum(body)}")

    refused = [forged.post("/api/v1/prompts/support-summary/run", {"variables": {}}, format="json") for _ in range(3)]

    assert [(r.status_code, r.json()["reason"]) for r in refused] == [(401, "unknown")] * 3
    assert run(world).status_code == 200  # the second of its two a minute
    assert run(world).status_code == 429


def test_a_refused_token_hammering_counts_toward_no_rate(world, custodian, django_capture_on_commit_callbacks):
    """A leaked token, revoked or expired, sent again and again: its entry stays cached (each request
    reads it again, refused), but only a token that may run counts toward its client's window; else the
    leak would lock the client's live tokens out for as long as it is replayed."""
    original = dict(world["http"]._credentials)

    @hypothesis_settings(
        max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True
    )
    @given(refusal=st.sampled_from(["revoked", "expired"]), replays=st.integers(min_value=1, max_value=6))
    def check(refusal, replays):
        hotcache.clear()
        with transaction.atomic(), django_capture_on_commit_callbacks(execute=True):
            client, _ = key_services.api_client_create(
                actor=custodian, name="hammered", environment="production", owner=custodian, all_prompts=True,
                rate_limit_per_minute=2,
            )  # fmt: skip
            _, live = key_services.api_token_issue(actor=custodian, client=client, label="live")
            expires = timezone.now() + timedelta(seconds=1) if refusal == "expired" else None
            leaked, plaintext = key_services.api_token_issue(
                actor=custodian, client=client, label="leaked", expires_at=expires
            )
            world["http"].credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
            assert run(world).status_code == 200  # cached, and one of the client's two a minute
            if expires is None:
                key_services.api_token_revoke(actor=custodian, token=leaked, reason="leaked")
            else:  # its expiry passes: no write, no bump; the cached row says it all
                time.sleep(max(0.0, (expires - timezone.now()).total_seconds()) + 0.01)

            replayed = [run(world) for _ in range(replays)]
            world["http"].credentials(HTTP_AUTHORIZATION=f"Bearer {live}")
            answer = run(world)
            transaction.set_rollback(True)

        assert {(r.status_code, r.json()["reason"]) for r in replayed} == {(401, refusal)}
        assert answer.status_code == 200, answer.content

    try:
        check()
    finally:
        world["http"].credentials(**original)


def _stored(instance) -> dict[str, object]:
    values = {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}
    values.pop("last_used_at", None)  # written by a plain UPDATE at most once a minute, kept out of the cache
    return values


def test_runs_leave_the_shared_entries_as_the_database_has_them(world):
    """Whatever a run does with its copies (nested JSON of a version, a client's lists, the key), the
    entries the process's other requests read stay exactly the rows as stored."""
    if not hotcache.enabled():
        pytest.skip("nothing is cached without Redis")
    for extra in ({}, {"stream": True}, {"metadata": {"feature": "f", "user_tier": "t", "end_user": "u"}}, {}):
        response = run(world, **extra)
        assert response.status_code == 200
        if extra.get("stream"):
            b"".join(response.streaming_content)
    token = ApiToken.objects.select_related("client").get(client=world["client"])
    cached_token = _tokens.peek(token.lookup_id)
    cached_version = _released.peek(("support-summary", "production"))
    cached_key = _active_keys.peek("production")
    assert cached_token is not None
    assert cached_version is not None
    assert cached_key is not None

    assert _stored(cached_token) == _stored(token)
    assert _stored(cached_token.client) == _stored(token.client)
    assert _stored(cached_version) == _stored(PromptVersion.objects.get(pk=world["version"].pk))
    assert _stored(cached_key) == _stored(ProviderKey.objects.get(pk=world["key"].pk))


def test_with_redis_unreachable_a_warm_process_serves_no_entry_and_calls_nothing(world, monkeypatch):
    """Redis gone between two requests: the generation cannot be read, so no entry can be trusted. The run
    is refused with a 503 to retry (`service_unavailable`, Retry-After) before any upstream call (nothing
    to record)."""
    if not hotcache.enabled():
        pytest.skip("nothing is cached without Redis")
    assert run(world).status_code == 200  # warm
    calls = len(sandbox_requests(world))
    rows = UsageRecord.objects.count()
    unreachable = redis.Redis(port=1, socket_connect_timeout=0.5)  # nothing listens on port 1
    monkeypatch.setattr(hotcache, "redis_client", lambda: unreachable)

    response = run(world)

    assert (response.status_code, response.json()["code"]) == (503, "service_unavailable")
    assert response["Retry-After"] == "5"
    assert (len(sandbox_requests(world)), UsageRecord.objects.count()) == (calls, rows)
