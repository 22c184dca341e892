"""Attacks on holds, prices and caps found by trying the pipeline as a hostile client: a stream or a job attempt
outliving its hold, a price change while a batch is open, a redirect out of the allow-list, a batch canceled before
it was sent, a card number sent as a JSON number, a rotation in mid-month."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from tests.gateway.upstream import EMAIL, TICKET, sandbox_requests
from usage.models import SpendCounter, SpendReservation, UsageRecord
from usage.settlement import spend_reservations_reap

pytestmark = pytest.mark.django_db


def run(world, variables=None, **extra):
    body = {"variables": variables or {"ticket": TICKET, "customer_email": EMAIL}, **extra}
    return world["http"].post("/api/v1/prompts/support-summary/run", json.dumps(body), content_type="application/json")


def upstream_calls(world) -> list[dict]:
    return [r for r in sandbox_requests(world) if r["path"].startswith("/v1/messages")]


# --- BREAK 1: a stream still running when its reservation expires -------------------------------------------
# A stream is paced by its reader (and a long answer at a large max_tokens legitimately takes many minutes);
# nothing renews the 15-minute reservation. Any reap (the beat task, or any other request refused by a cap,
# which reaps in-line) closes the live call's reservation as `HolderLost` with a ledger row and spend 0. When
# the stream then completes, _close_and_record's settle is a no-op (CAS) but the ledger row is written anyway:
# one upstream call, two ledger rows, and the real cost never reaches the cap's counter.


def test_a_slow_stream_outliving_its_reservation_gets_two_ledger_rows_and_escapes_the_cap(world):
    response = run(world, stream=True)
    events = iter(response.streaming_content)
    next(events)  # run.started
    next(events)  # first delta: the upstream call is in flight

    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        assert spend_reservations_reap() == 1  # the live call's hold is taken as a dead holder's

    rest = b"".join(events).decode()
    assert "run.completed" in rest

    assert len(upstream_calls(world)) == 1
    rows = list(UsageRecord.objects.values_list("outcome", "error_class", "cost_usd"))
    counter = SpendCounter.objects.get(scope="provider_key", period="month")
    # Promised: exactly one ledger row per upstream call, and the counter carries the call's real cost.
    assert len(rows) == 1, rows
    assert counter.spent_usd == sum(cost for _, _, cost in rows), (counter.spent_usd, rows)


# --- BREAK 2: a batch is reserved at one price and settled at another -----------------------------------------
# batch_create reserves the worst case at the price in force at submission; batch_results_collect prices the
# items with price_for(model) at collection time (hours later: Anthropic takes up to 24 h). A price-book row
# that takes effect in between (a custodian's new row, or any scheduled price change) makes the batch cost
# more than it held: the counter is raised past what was reserved, and past the cap when the cap was tight.


def test_a_price_change_while_a_batch_is_open_makes_it_cost_more_than_it_held(
    world, custodian, django_capture_on_commit_callbacks
):
    import httpx2

    from gateway.tasks import batches_poll
    from usage.models import Price
    from usage.selectors import price_for
    from usage.services import price_save

    httpx2.post(f"{world['sandbox'].url}/_sandbox/config", json={"batch_seconds": 0}).raise_for_status()
    items = [{"custom_id": f"t-{i}", "variables": {"ticket": "short", "customer_email": EMAIL}} for i in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        response = world["http"].post("/api/v1/prompts/support-summary/batches", {"items": items}, format="json")
    assert response.status_code == 202
    reservation = SpendReservation.objects.get()

    # A new price for the model takes effect while the batch is with Anthropic.
    dearer = Price.objects.get(pk=price_for(world["version"].model).pk)  # its own row, not the cached one
    dearer.pk = None
    dearer.effective_from = timezone.now()
    for field in ("input", "cache_write_5m", "cache_write_1h", "cache_read", "output"):
        setattr(dearer, field, getattr(dearer, field) * 20)
    price_save(actor=custodian, price=dearer, reason="Anthropic price change")
    assert Price.objects.filter(model=world["version"].model).count() >= 2

    with django_capture_on_commit_callbacks(execute=True):
        batches_poll()

    reservation.refresh_from_db()
    assert reservation.status == "settled"
    # Promised: "a call never costs more than it held and a cap's counter never passes the cap".
    assert reservation.settled_usd <= reservation.amount_usd, (reservation.settled_usd, reservation.amount_usd)


# --- BREAK 3 (lower severity): the SDK follows redirects out of the allow-list -------------------------------
# The allow-list is checked on the key's base_url only; the anthropic SDK builds its httpx client with
# follow_redirects=True. An allowed origin that answers 307 (a gateway, a proxy, the test entry
# "http://127.0.0.1:*") makes Tollgate POST the whole Messages request (prompt, pseudonym) to a host that
# is not in TOLLGATE_UPSTREAM_BASE_URLS ("localhost" here), three times with the retries. The key itself
# did NOT leak in this run: the x-api-key header was dropped on the cross-origin redirect (checked below).


def test_a_redirect_from_an_allowed_upstream_carries_the_provider_key_elsewhere(world, custodian):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from keys import services as key_services
    from keys.upstreams import upstream_url_allowed

    seen: list[dict] = []

    class Thief(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(dict(self.headers))
            self.send_response(500)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    thief = ThreadingHTTPServer(("127.0.0.1", 0), Thief)
    thief_url = f"http://localhost:{thief.server_address[1]}"
    assert not upstream_url_allowed(thief_url)  # not an allowed upstream

    class Redirector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(307)
            self.send_header("Location", thief_url + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    redirector = ThreadingHTTPServer(("127.0.0.1", 0), Redirector)
    for server in (thief, redirector):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        key_services.provider_key_update(
            actor=custodian, key=world["key"], reason="gateway",
            base_url=f"http://127.0.0.1:{redirector.server_address[1]}",
        )  # fmt: skip
        response = run(world)
        assert response.status_code == 502
    finally:
        thief.shutdown()
        redirector.shutdown()

    leaked = [headers.get("x-api-key") or headers.get("X-Api-Key") for headers in seen]
    assert "sk-ant-sandbox-test-key-0001" not in leaked  # holds: the secret is not forwarded
    assert seen == [], f"{len(seen)} Messages request(s) reached a host outside the allow-list"


# --- BREAK 4: a batch canceled before the worker submitted it holds its reservation for 30 hours ------------
# With a broker, submission is a queued task. batch_cancel accepts a batch with no provider batch yet and sets it
# `canceling`; batch_submit_chunks then returns early (status != in_progress) without releasing; batches_poll
# skips batches without provider batch ids. The batch never ends and its worst case stays `held` against the
# provider key's and the client's caps until the 30-hour expiry: a client can submit a batch sized to the
# cap, cancel it at once, and lock every client of the environment out of the key's cap for 30 hours.


def test_a_batch_canceled_before_submission_never_ends_and_keeps_its_hold(world):
    import httpx2

    from gateway.batches import batch_submit_chunks
    from gateway.models import Batch
    from gateway.tasks import batches_poll

    httpx2.post(f"{world['sandbox'].url}/_sandbox/config", json={"batch_seconds": 0}).raise_for_status()
    items = [{"custom_id": f"t-{i}", "variables": {"ticket": "short", "customer_email": EMAIL}} for i in range(3)]
    # Accepted; the submission task is queued (not yet run: we do not execute on-commit callbacks here).
    response = world["http"].post("/api/v1/prompts/support-summary/batches", {"items": items}, format="json")
    assert response.status_code == 202
    batch_id = response.json()["id"]

    canceled = world["http"].post(f"/api/v1/batches/{batch_id}/cancel")
    assert canceled.status_code == 200, canceled.content

    batch_submit_chunks(Batch.objects.get(public_id=batch_id).pk)  # the worker picks the task up
    batches_poll()
    world["http"].get(f"/api/v1/batches/{batch_id}")  # reading polls too

    status = world["http"].get(f"/api/v1/batches/{batch_id}").json()["status"]
    held = list(SpendReservation.objects.filter(status="held").values_list("amount_usd", "expires_at"))
    # Promised: no reservation stays held after its batch ended; a canceled batch ends.
    assert held == [], (status, held)
    assert status in ("ended", "canceled"), status


# --- BREAK 5: a job attempt that outlives its lease is recorded twice and its cost escapes the cap ------------
# Same root cause as BREAK 1, on the jobs path. An attempt still alive when its lease expires (a slow
# upstream: the lease is timeout x attempts + 60 s, but the SDK's per-read timeout and retry-after waits can
# take longer) is taken over: _attempt_lost closes its reservation as `WorkerLost` (ledger row, spend 0) and
# the new attempt calls Anthropic again. When the first attempt's call completes, _close_and_record writes a
# second row for it (the settle is a no-op): two upstream calls, three ledger rows, one call's cost counted.


def test_a_job_attempt_taken_over_while_alive_gets_two_rows_and_escapes_the_cap(
    world, monkeypatch, settings, django_capture_on_commit_callbacks
):
    from gateway import jobs
    from gateway.models import Job

    real_execute = jobs.run_execute
    calls = {"n": 0}

    def slow_first_attempt(prepared):
        calls["n"] += 1
        if calls["n"] == 1:
            # While attempt 1 waits on Anthropic, its lease runs out and another worker takes the job.
            job = Job.objects.get()
            with time_machine.travel(timezone.now() + timedelta(seconds=settings.TOLLGATE_JOB_LEASE_SECONDS + 5)):
                delay = jobs.job_execute(job.pk)
                while delay is not None:  # the shared rate budget asks for a short wait
                    time.sleep(delay)
                    delay = jobs.job_execute(job.pk)
        return real_execute(prepared)

    monkeypatch.setattr(jobs, "run_execute", slow_first_attempt)
    with django_capture_on_commit_callbacks(execute=True):
        response = world["http"].post(
            "/api/v1/prompts/support-summary/jobs",
            {"variables": {"ticket": TICKET, "customer_email": EMAIL}},
            format="json",
        )
    assert response.status_code == 202, response.content

    calls_made = len(upstream_calls(world))
    rows = list(UsageRecord.objects.values_list("request_id", "outcome", "error_class", "cost_usd"))
    counter = SpendCounter.objects.get(scope="provider_key", period="month")
    assert calls_made == 2  # both attempts reached Anthropic
    # Promised: exactly one ledger row per upstream call; the counter carries what was spent.
    assert len(rows) == calls_made, rows
    assert counter.spent_usd == sum(row[3] for row in rows), (counter.spent_usd, rows)


# --- BREAK 6: personal data in a number-typed variable is never scanned -------------------------------------
# redact_variables scans only `str` values; integer and number variables are passed through as they are and
# rendered into the prompt as text. A payment card (Luhn-valid) or a phone number sent as a JSON number in
# a non-sensitive integer variable reaches Anthropic (the sandbox) and the request log in clear, where the same
# digits sent as a string are replaced (<CARD_1>, <PHONE_1>).


def test_a_card_number_sent_as_an_integer_variable_reaches_the_upstream_unredacted(world, author, approver):
    from gateway.models import Run
    from prompts import services
    from tests.factories import version_content

    version = services.prompt_version_create(
        actor=author,
        prompt=world["prompt"],
        content=version_content(
            user_template="Summarise this ticket:\n{{ ticket }}\nAccount: {{ account }}",
            variables=[
                {"name": "ticket", "type": "string", "required": True, "max_length": 5000},
                {"name": "account", "type": "integer", "required": True},
            ],
        ),
        change_summary="account number",
    )
    services.prompt_version_submit(actor=author, version=version)
    services.prompt_version_approve(actor=approver, version=version, note="ok")
    for environment in ("staging", "production"):
        services.prompt_version_release(actor=approver, version=version, environment=environment, reason="x")

    card = 4111111111111111  # Luhn-valid test card; as a string it would be <CARD_1>
    assert run(world, {"ticket": "Refund please", "account": card}).status_code == 200
    assert run(world, {"ticket": f"Refund please, card {card}", "account": 1}).status_code == 200

    sent = [json.dumps(call["body"]) for call in upstream_calls(world)]
    assert str(card) not in sent[1]  # the string form is redacted: the detector knows this card
    stored = json.dumps(list(Run.objects.values_list("request_redacted", flat=True)))
    assert str(card) not in sent[0], "the card number reached the upstream in clear"
    assert str(card) not in stored, "the card number is stored in the request log in clear"


# --- BREAK 7 (design): rotating the provider key resets its month's and day's spend cap ----------------------
# Caps are counted per ProviderKey row (scope_id = key.pk); a rotation creates a new row with the same
# monthly_cap_usd and fresh counters. The month's spend in the environment can reach the cap once per
# rotation; the key list then shows this month's spend as 0. Not audited as a cap change.


def test_a_rotation_mid_month_gives_the_environment_a_fresh_monthly_cap(world, custodian, author, approver):
    from keys import services as key_services
    from usage.choices import CapScope, Period
    from usage.services import Cap, spend_settle
    from usage.settlement import spend_reserve

    key = world["key"]
    key_services.provider_key_update(actor=custodian, key=key, reason="cap", monthly_cap_usd=Decimal("0.01"))
    key.refresh_from_db()
    cap = Cap(CapScope.PROVIDER_KEY, key.pk, Period.MONTH, key.monthly_cap_usd, key.label)
    spend_settle(reservation=spend_reserve(request_id="x", caps=[cap], amount=Decimal("0.0099")),
                 actual=Decimal("0.0099"))  # fmt: skip
    assert run(world).status_code == 402  # the month's cap is spent

    key_services.provider_key_rotate(
        actor=custodian, key=key, new_secret="sk-ant-sandbox-test-key-0009", reason="scheduled rotation"
    )
    response = run(world)

    month_spend = sum(SpendCounter.objects.filter(scope="provider_key", period="month").values_list(
        "spent_usd", flat=True))  # fmt: skip
    # Promised: the production key's monthly cap (USD 0.01) bounds the month's spend.
    assert response.status_code == 402, f"ran after rotation; the month's spend is now {month_spend}"


def test_a_price_row_that_makes_a_model_free_is_refused(custodian):
    from django.core.exceptions import ValidationError

    from usage.models import Price
    from usage.services import price_save

    free = Price(model="claude-haiku-4-5", effective_from=timezone.now(), input=0, cache_write_5m=0,
                 cache_write_1h=0, cache_read=0, output=0)  # fmt: skip
    with pytest.raises(ValidationError):  # every cap would let every call through
        price_save(actor=custodian, price=free, reason="free model")


def test_a_batch_custom_id_that_looks_like_personal_data_is_refused(world):
    items = [{"custom_id": "078-05-1120", "variables": {"ticket": "short", "customer_email": EMAIL}}]

    response = world["http"].post("/api/v1/prompts/support-summary/batches", {"items": items}, format="json")

    assert response.status_code == 400
    assert "personal data" in json.dumps(response.json()["errors"])
    assert "078-05-1120" not in json.dumps(sandbox_requests(world))
