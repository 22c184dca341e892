"""Shared fixtures: personas, the sandbox upstream, and a real Celery worker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from bench.run_endpoint import server_command
from core.mfa import mfa_must_verify
from core.roles import Role
from sandbox.server import SandboxServer
from sandbox.state import Config
from tests.factories import UserFactory

# Scenarios shared by the prompts, gateway and evaluations tests: a prompt, its versions, a released world.
pytest_plugins = ["tests.scenarios"]

ROOT = Path(__file__).resolve().parent.parent


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # CI's PostgreSQL run must exercise everything: there, a skipped test is a failed run.
    if os.environ.get("TOLLGATE_FORBID_SKIPS") == "1":
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
        if skipped:
            if reporter:
                reporter.write_line(f"TOLLGATE_FORBID_SKIPS: {skipped} test(s) skipped; failing the run.", red=True)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --- personas -------------------------------------------------------------------------------------------


@pytest.fixture
def author(db: None) -> User:
    return UserFactory(username="alice-author", roles=[Role.PROMPT_AUTHORS])


@pytest.fixture
def approver(db: None) -> User:
    return UserFactory(username="bob-approver", roles=[Role.PROMPT_APPROVERS])


@pytest.fixture
def custodian(db: None) -> User:
    return UserFactory(username="carol-custodian", roles=[Role.KEY_CUSTODIANS])


@pytest.fixture
def auditor(db: None) -> User:
    return UserFactory(username="dave-auditor", roles=[Role.AUDITORS])


@pytest.fixture
def outsider(db: None) -> User:
    """Staff, but in no role."""
    return UserFactory(username="eve-outsider")


@pytest.fixture
def superuser(db: None) -> User:
    return UserFactory(username="root-admin", is_superuser=True)


# --- signed-in sessions, verified with a second factor ------------------------------------------------------

_django_force_login = Client.force_login


def force_login_verified(self: Client, user: User, backend: str | None = None, *, verified: bool = True) -> None:
    """`Client.force_login`, and (unless `verified=False`) the session verified with a real authenticator
    device of the person, made if they have none, as django_otp.login would after a code: settings keep
    two-factor authentication required (config/settings/test.py), so personas whose roles require it would
    otherwise only reach enrolment. The tests of the gate itself sign in with a password and verify with a
    code (tests/identity/test_mfa.py), or pass `verified=False`."""
    _django_force_login(self, user, backend)
    if verified and mfa_must_verify(user):
        device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
        if device is None:
            device = TOTPDevice.objects.create(user=user, name="Test authenticator", confirmed=True)
        session = self.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()


@pytest.fixture(autouse=True)
def _verified_force_login(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Client, "force_login", force_login_verified)


# --- the sandbox upstream -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    server = SandboxServer(config=Config(batch_seconds=0.3)).start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> SandboxServer:
    """The sandbox, with its faults, caches, batches and recorded requests cleared."""
    sandbox_server.call(lambda state: state.reset())
    return sandbox_server


# --- a real Celery worker -------------------------------------------------------------------------------


def _worker_database_url() -> str:
    """The URL of the test database, so the worker process sees what the tests commit."""
    db = settings.DATABASES["default"]
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or 'localhost'}{port}/{db['NAME']}"


def start_worker(name: str, queue: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A `celery worker` process on the real broker and the test database, answering pings."""
    if not settings.TOLLGATE_BROKER_CONFIGURED:
        pytest.skip("needs a broker: set REDIS_URL or CELERY_BROKER_URL")
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("a worker process cannot share an in-memory SQLite test database")
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _worker_database_url(),
        "TOLLGATE_TEST_WORKER": "1",
        **(env or {}),
    }
    log = open(ROOT / "var" / f"test-celery-{name}.log", "wb")  # noqa: SIM115  (the process keeps it)
    hostname = f"{name}@tollgate-test"
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "-n", hostname, *args,
         "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    from config.celery_app import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"celery worker exited early; see {log.name}")
        if app.control.ping(destination=[hostname], timeout=0.5):
            return process
    process.terminate()
    raise RuntimeError(f"celery worker did not answer within 60 s; see {log.name}")


@contextmanager
def web_server(env: dict[str, str] | None = None) -> Iterator[str]:
    """Tollgate served as production serves it (the configuration in deploy/) on a free port, on the test
    database where a process can share it (PostgreSQL); yields its URL once it answers /healthz."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", **(env or {})}
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        environment["DATABASE_URL"] = _worker_database_url()
    process = subprocess.Popen(server_command("deploy", port), cwd=ROOT, env=environment)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # each worker process loads Django: slow on a busy machine
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the web server exited with {process.returncode}")
            try:
                if httpx2.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the web server did not answer /healthz within 120 s")
            time.sleep(0.2)
        yield url
    finally:
        stop_worker(process)


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup: None, django_db_blocker: object) -> Iterator[subprocess.Popen[bytes]]:
    """The suite's worker (threads). Its queue budget (11 calls a minute) sits just under the limit the
    rate-limited spike test gives the sandbox (12)."""
    process = start_worker(
        "worker",
        settings.CELERY_TASK_DEFAULT_QUEUE,
        "--pool",
        "threads",
        "--concurrency",
        "4",
        env={"TOLLGATE_QUEUE_RPM": "11"},
    )
    yield process
    stop_worker(process)


@pytest.fixture
def celery_worker(celery_worker_process: subprocess.Popen[bytes], settings: object) -> Iterator[None]:
    """Send tasks to the real worker for the duration of a test (instead of running them in-process)."""
    from config.celery_app import app

    app.conf.task_always_eager = False
    try:
        yield
    finally:
        app.conf.task_always_eager = True


@pytest.fixture(autouse=True)
def _fresh_budget_alerts() -> None:
    """Which budget alerts exist is remembered per process; a test's rollback removes them."""
    from usage.services import budget_alerts_forget

    budget_alerts_forget()


@pytest.fixture(autouse=True)
def _fresh_price_cache() -> None:
    """Prices are cached per process; a test flush re-seeds them with new ids."""
    from usage.selectors import price_cache_clear

    price_cache_clear()


@pytest.fixture
def one_rate_window() -> Iterator[None]:
    """The test starts at the beginning of a rate-limit window (keys.ratelimit: fixed one-minute windows),
    so the requests it counts fall in one window however slowly a loaded machine runs them."""
    import time_machine

    from keys.ratelimit import WINDOW_SECONDS

    start = (time.time() // WINDOW_SECONDS + 1) * WINDOW_SECONDS + 0.1
    with time_machine.travel(start, tick=True):
        yield


@pytest.fixture(autouse=True)
def _fresh_hot_cache() -> None:
    """Tokens, releases and keys are cached per process (with Redis); a test's rows are rolled back without
    a commit, so no generation tells the next test they are gone."""
    from core import hotcache

    hotcache.clear()
