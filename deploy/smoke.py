"""`make smoke`: Tollgate run as operators run it, then hurt while it works.

Starts the commands of deploy/ themselves — each systemd unit's ExecStart and the nginx site, with only
ports and paths substituted (a unit or site edit the substitution no longer fits fails the smoke) — against
a fresh PostgreSQL database, a Redis of its own and the sandbox upstream, with production settings
(`DJANGO_DEBUG=false`, generated secrets): two gunicorn nodes behind nginx (TLS 1.3, a self-signed
certificate), a Celery worker and beat. Then:

1. a journey through the proxy: an approver signs in (password and authenticator code), approves the
   version another person wrote and releases it; an API client runs it; a job calls back a webhook whose
   signature is checked; an administrator downloads an evidence package, which `verify_export` verifies;
2. a race on one spend cap: many runs at once, half to each node, against a small client cap;
3. faults under load: a web node restarted (SIGTERM, then started again), the worker SIGKILLed mid-job and
   started again, Redis restarted — while runs and jobs flow through nginx.

Prints a table of counts and exits 1 when a count that must be zero is not. Everything started is stopped
and the database dropped on the way out, whatever happened. Docs: docs/operations.md, "Production smoke test".
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from binascii import unhexlify
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import psycopg
from django_otp.oath import TOTP

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNITS = DEPLOY / "systemd"
NGINX_SITE = DEPLOY / "nginx" / "tollgate.conf"
# Where the units expect the checkout and the state directory; the smoke substitutes its own.
INSTALL_DIR = "/opt/tollgate"
STATE_DIR = "/var/lib/tollgate"
POSTGRES = os.environ.get("SMOKE_POSTGRES", "postgres://postgres@127.0.0.1:5432")
HOST = "localhost"
PROMPT = "smoke-summary"
# Long enough that the sandbox's echo is cut at max_tokens: each run costs about its worst case.
TICKET = "The export button does nothing since this morning. " * 40
RACE_CAP_USD = Decimal("0.02")
RACE_RUNS = 60
# Low in the smoke so that the SIGKILLed worker's jobs come back within it (production: an hour).
VISIBILITY_TIMEOUT = 20
JOB_LEASE = 10
REDISPATCH = 15


class DeployDrift(Exception):
    """deploy/ no longer looks the way the smoke starts it: fix the smoke with the deploy file."""


# --- The deploy files, as the smoke reads them (tests/config/test_deploy.py reads them the same way) ------


def unit_directives(unit: str) -> dict[str, str]:
    """The [Service] directives of a unit in deploy/systemd (each given once)."""
    directives: dict[str, str] = {}
    section = ""
    for line in (UNITS / unit).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            name, _, value = line.partition("=")
            if name in directives:
                raise DeployDrift(f"{unit}: {name} is given twice")
            directives[name] = value
    return directives


def unit_command(unit: str, *, venv_bin: Path, state_dir: Path, instance: str | None = None) -> list[str]:
    """A unit's ExecStart as an argument list, run from this checkout: the virtualenv's programs for
    /opt/tollgate/.venv/bin, `state_dir` for /var/lib/tollgate, `instance` for %i."""
    directives = unit_directives(unit)
    if directives.get("WorkingDirectory") != INSTALL_DIR:
        raise DeployDrift(f"{unit}: WorkingDirectory is not {INSTALL_DIR}")
    if "ExecStart" not in directives:
        raise DeployDrift(f"{unit}: no ExecStart")
    command: list[str] = []
    for arg in shlex.split(directives["ExecStart"]):
        if arg.startswith(f"{INSTALL_DIR}/.venv/bin/"):
            arg = str(venv_bin / arg.removeprefix(f"{INSTALL_DIR}/.venv/bin/"))
        if arg.startswith(STATE_DIR):
            arg = str(state_dir) + arg.removeprefix(STATE_DIR)
        if "%i" in arg:
            if instance is None:
                raise DeployDrift(f"{unit}: ExecStart uses %i, but it is not a template unit")
            arg = arg.replace("%i", instance)
        if "%" in arg or INSTALL_DIR in arg:
            raise DeployDrift(f"{unit}: ExecStart has {arg!r}, which the smoke does not know how to run")
        command.append(arg)
    return command


def _replace_once(text: str, pattern: str, replacement: str) -> str:
    new, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    if count != 1:
        raise DeployDrift(f"deploy/nginx/tollgate.conf: expected one match of {pattern!r}, found {count}")
    return new


def nginx_site(*, nodes: list[int], https_port: int, http_port: int, certificate: Path, key: Path) -> str:
    """deploy/nginx/tollgate.conf in front of `nodes` (loopback ports), listening on loopback: the upstream
    servers, the listen ports and the certificate paths replaced, the IPv6 listens dropped, nothing else."""
    text = NGINX_SITE.read_text()
    servers = "".join(f"    server 127.0.0.1:{port};\n" for port in nodes)
    text = _replace_once(text, r"^(upstream tollgate \{\n)(?:    server [^;\n]+;\n)+", rf"\g<1>{servers}")
    text = _replace_once(text, r"^    listen 80;$", f"    listen 127.0.0.1:{http_port};")
    text = _replace_once(text, r"^    listen \[::\]:80;\n", "")
    text = _replace_once(text, r"^    listen 443 ssl http2;$", f"    listen 127.0.0.1:{https_port} ssl http2;")
    text = _replace_once(text, r"^    listen \[::\]:443 ssl http2;\n", "")
    text = _replace_once(text, r"^    ssl_certificate     \S+;$", f"    ssl_certificate     {certificate};")
    return _replace_once(text, r"^    ssl_certificate_key \S+;$", f"    ssl_certificate_key {key};")


def nginx_main(prefix: Path, site: Path) -> str:
    """The main configuration Debian's /etc/nginx/nginx.conf stands for, every path under `prefix`."""
    temp = " ".join(
        f"{kind}_temp_path {prefix}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"worker_processes 2;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log warn;\n"
        "events { worker_connections 1024; }\n"
        f"http {{\n    access_log {prefix}/access.log;\n    {temp}\n    include {site};\n}}\n"
    )


# --- Processes ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def wait_until(what: str, condition: Callable[[], bool], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


@dataclass
class Service:
    """One process group (a gunicorn master and its workers, say), logging to a file of its own."""

    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    port: int | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        if wait:
            self.wait()

    def wait(self) -> None:
        if self.port is not None:
            wait_until(f"{self.name} on port {self.port}", lambda: self.alive() and listening(self.port or 0))

    def alive(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited; its log: {self.log}")
        return True

    def signal(self, signum: int, timeout: float = 60) -> None:
        """As systemd stops a unit (KillMode=control-group): the signal to every process of the group."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        # Whatever of the group outlived its leader (a worker child) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None
        if self.port is not None:
            wait_until(f"port {self.port} to close", lambda: not listening(self.port or 0), 30)


# --- The stack ----------------------------------------------------------------------------------------


@dataclass
class Stack:
    run_dir: Path
    database: str = field(default_factory=lambda: f"tg_smoke_{os.getpid()}")
    ports: dict[str, int] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    database_created: bool = False

    @property
    def database_url(self) -> str:
        return f"{POSTGRES}/{self.database}"

    @property
    def base(self) -> str:
        return f"https://{HOST}:{self.ports['https']}"

    def node_url(self, node: str) -> str:
        return f"http://127.0.0.1:{self.ports[node]}"

    def manage(self, *args: str, extra_env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env={**self.env, **(extra_env or {})},
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if result.returncode:
            raise RuntimeError(f"manage.py {args[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as connection:
            return connection.execute(query, params).fetchall()

    def add(self, name: str, command: list[str], port: int | None = None, wait: bool = True) -> Service:
        service = Service(name, command, self.env, self.run_dir / f"{name}.log", port)
        self.services[name] = service
        service.start(wait)
        return service

    def teardown(self) -> None:
        for service in reversed(list(self.services.values())):
            with contextlib.suppress(Exception):
                service.signal(signal.SIGTERM, timeout=30)
        if self.database_created:
            subprocess.run(
                ["psql", f"{POSTGRES}/postgres", "-qc", f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)"],
                check=False,
            )


def certificate(run_dir: Path) -> tuple[Path, Path]:
    cert, key = run_dir / "fullchain.pem", run_dir / "privkey.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", f"/CN={HOST}", "-keyout", str(key), "-out", str(cert),
         "-addext", f"subjectAltName=DNS:{HOST},IP:127.0.0.1",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,digitalSignature,keyCertSign"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def production_env(stack: Stack) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TOLLGATE_", "CELERY_"))}
    keep.pop("DATABASE_URL", None)
    keep.pop("REDIS_URL", None)
    return {
        **keep,
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "TOLLGATE_ENCRYPTION_KEYS": "smoke:" + base64.b64encode(os.urandom(32)).decode(),
        "TOLLGATE_AUDIT_SIGNING_KEY": base64.b64encode(os.urandom(32)).decode(),
        "TOLLGATE_PSEUDONYM_KEY": secrets.token_urlsafe(32),
        "DATABASE_URL": stack.database_url,
        "REDIS_URL": f"redis://127.0.0.1:{stack.ports['redis']}/0",
        "DJANGO_ALLOWED_HOSTS": f"{HOST},127.0.0.1",
        # The proxy listens on a port of its own here; on 443 the origin is the host name alone.
        "DJANGO_CSRF_TRUSTED_ORIGINS": f"https://{HOST}:{stack.ports['https']}",
        "TOLLGATE_TRUSTED_PROXIES": "1",
        "TOLLGATE_AUDIT_ANCHOR_DIR": str(stack.run_dir / "anchors"),
        # The sandbox stands in for Anthropic: the provider key's base URL must be allowed explicitly.
        "TOLLGATE_UPSTREAM_BASE_URLS": f"https://api.anthropic.com,http://127.0.0.1:{stack.ports['sandbox']}",
        # The webhook receiver is on loopback: allowed for the smoke only, and only that host.
        "TOLLGATE_WEBHOOK_ALLOW_LOOPBACK": "true",
        "TOLLGATE_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "TOLLGATE_WEBHOOK_BACKOFF_SECONDS": "1",
        "TOLLGATE_JOB_LEASE_SECONDS": str(JOB_LEASE),
        "CELERY_BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "TOLLGATE_REDISPATCH_SECONDS": str(REDISPATCH),
        "EMAIL_URL": "consolemail://",
        "DJANGO_LOG_LEVEL": "WARNING",
    }


def bring_up(stack: Stack) -> None:
    for name in ("redis", "sandbox", "web1", "web2", "https", "http", "hook"):
        stack.ports[name] = free_port()
    run = stack.run_dir
    (run / "anchors").mkdir()
    (run / "state").mkdir()
    stack.env = production_env(stack)
    venv_bin = Path(sys.executable).parent

    # Redis as a broker keeps its data across a restart (append-only file): a restart loses no queued job.
    redis = ["redis-server", "--port", str(stack.ports["redis"]), "--bind", "127.0.0.1", "--dir", str(run),
             "--save", "", "--appendonly", "yes", "--appendfsync", "always"]  # fmt: skip
    stack.add("redis", redis, port=stack.ports["redis"])
    stack.add(
        "sandbox",
        [sys.executable, "-m", "sandbox", "--port", str(stack.ports["sandbox"]), "--latency-ms", "200"],
        port=stack.ports["sandbox"],
    )
    subprocess.run(["psql", f"{POSTGRES}/postgres", "-qc", f"CREATE DATABASE {stack.database}"], check=True)
    stack.database_created = True
    step = time.monotonic()
    stack.manage("migrate", "--noinput", "-v", "0")
    stack.manage("collectstatic", "--noinput", "-v", "0")
    print(f"migrate and collectstatic: {time.monotonic() - step:.0f} s", flush=True)
    step = time.monotonic()

    for node in ("web1", "web2"):
        command = unit_command(
            "tollgate-web@.service", venv_bin=venv_bin, state_dir=run / "state", instance=str(stack.ports[node])
        )
        stack.add(node, command, port=stack.ports[node], wait=False)
    stack.add("worker", unit_command("tollgate-worker.service", venv_bin=venv_bin, state_dir=run / "state"))
    stack.add("beat", unit_command("tollgate-beat.service", venv_bin=venv_bin, state_dir=run / "state"))
    for node in ("web1", "web2"):
        stack.services[node].wait()
    print(f"web nodes, worker and beat started: {time.monotonic() - step:.0f} s", flush=True)

    nginx_dir = run / "nginx"
    nginx_dir.mkdir()
    nginx_dir.chmod(0o755)  # run as root, nginx's workers are nobody
    run.chmod(0o755)
    cert, key = certificate(nginx_dir)
    site = nginx_dir / "tollgate.conf"
    site.write_text(
        nginx_site(nodes=[stack.ports["web1"], stack.ports["web2"]], https_port=stack.ports["https"],
                   http_port=stack.ports["http"], certificate=cert, key=key)
    )  # fmt: skip
    (nginx_dir / "nginx.conf").write_text(nginx_main(nginx_dir, site))
    nginx = ["nginx", "-p", str(nginx_dir), "-c", str(nginx_dir / "nginx.conf")]
    subprocess.run([*nginx, "-t", "-q"], check=True)
    stack.add("nginx", [*nginx, "-g", "daemon off;"], port=stack.ports["https"])
    wait_until("the worker", lambda: "ready." in stack.services["worker"].log.read_text(errors="replace"), 120)


# --- Accounts, the draft and the API clients (as operators and custodians set them up) -----------------

SETUP = """
import json, os, secrets
from binascii import unhexlify
from decimal import Decimal
from django.contrib.auth.models import User
from django_otp.oath import TOTP
from core.context import RequestContext, bound, new_request_id
from identity.mfa import TOTP_DIGITS, mfa_totp_enrol
from keys import services as keys
from prompts import services as prompts

spec = json.loads(os.environ["SMOKE_SETUP"])
out = {"totp": {}}
with bound(RequestContext(request_id=new_request_id(), actor_repr="smoke")):
    users = {name: User.objects.get(username=name) for name in ("smoke-admin", "author", "approver", "custodian")}
    for name in ("smoke-admin", "approver", "custodian"):
        key = secrets.token_hex(20)
        device, _ = mfa_totp_enrol(
            actor=users[name], key=key, token=f"{TOTP(unhexlify(key), digits=TOTP_DIGITS).token():0{TOTP_DIGITS}d}"
        )
        out["totp"][name] = [key, device.last_t]
    author, custodian = users["author"], users["custodian"]
    prompt = prompts.prompt_create(
        actor=author, slug=spec["prompt"], name="Smoke summary", purpose="The production smoke test's prompt.",
        owner=author, team="smoke", data_categories=["none"],
    )
    version = prompts.prompt_version_create(
        actor=author, prompt=prompt, change_summary="First version",
        content={
            "system_prompt": "Summarise the support ticket in one line.", "user_template": "{{ ticket }}",
            "variables": [{"name": "ticket", "type": "string", "required": True, "max_length": 20000}],
            "model": "claude-haiku-4-5", "max_tokens": 300, "stop_sequences": [], "cache_ttl": "off",
            "routing": {}, "redaction": {}, "output_checks": {},
        },
    )
    prompts.prompt_version_submit(actor=author, version=version)
    out["version"] = version.pk
    keys.provider_key_create(
        actor=custodian, environment="production", label="Sandbox (smoke)",
        secret="sk-ant-smoke-" + secrets.token_hex(8), owner=custodian, base_url=spec["sandbox"],
        monthly_cap_usd=Decimal("1000"), reason="Smoke test",
    )
    for name, cap in (("journey", None), ("race", Decimal(spec["race_cap"]))):
        client, webhook_secret = keys.api_client_create(
            actor=custodian, name=f"smoke-{name}", environment="production", owner=custodian, team="smoke",
            all_prompts=True, rate_limit_per_minute=100000, monthly_cap_usd=cap,
        )
        _, token = keys.api_token_issue(actor=custodian, client=client, label="smoke")
        out[name] = {"id": client.pk, "token": token, "webhook_secret": webhook_secret}
print("SMOKE_SETUP " + json.dumps(out))
"""


@dataclass
class Setup:
    passwords: dict[str, str]
    totp: dict[str, tuple[str, int]]
    version: int
    clients: dict[str, dict[str, Any]]


def set_up_accounts(stack: Stack) -> Setup:
    passwords = {name: secrets.token_urlsafe(18) for name in ("smoke-admin", "author", "approver", "custodian")}
    # The first administrator, as on a new installation; the others are created (staff accounts, no
    # rights) and given their roles with grant_access, both audited.
    stack.manage("createsuperuser", "--noinput", "--username", "smoke-admin", "--email", "admin@smoke.invalid",
                 extra_env={"DJANGO_SUPERUSER_PASSWORD": passwords["smoke-admin"]})  # fmt: skip
    create = "; ".join(
        f"User.objects.create_user({name!r}, f'{name}@smoke.invalid', {password!r}, is_staff=True)"
        for name, password in passwords.items()
        if name != "smoke-admin"
    )
    stack.manage("shell", "-c", f"from django.contrib.auth.models import User; {create}")
    for name, role in (("author", "Prompt authors"), ("approver", "Prompt approvers"), ("custodian", "Key custodians")):
        stack.manage("grant_access", "--user", name, "--role", role, "--reason", "Production smoke test")
    spec = {"prompt": PROMPT, "sandbox": f"http://127.0.0.1:{stack.ports['sandbox']}", "race_cap": str(RACE_CAP_USD)}
    output = stack.manage("shell", "-c", SETUP, extra_env={"SMOKE_SETUP": json.dumps(spec)})
    data = json.loads(output.split("SMOKE_SETUP ", 1)[1])
    return Setup(passwords, {k: (v[0], v[1]) for k, v in data["totp"].items()}, data["version"],
                 {name: data[name] for name in ("journey", "race")})  # fmt: skip


def totp_code(key_hex: str, last_step: int) -> str:
    """The code an authenticator app shows, for a time step after `last_step` (a code is accepted once)."""
    totp = TOTP(unhexlify(key_hex))
    while True:
        for offset in (0, 1):  # the next step is within the accepted drift
            totp.time = time.time() + offset * totp.step
            if totp.t() > last_step:
                return f"{totp.token():06d}"
        time.sleep(1)


# --- The journey --------------------------------------------------------------------------------------


def tls_context(stack: Stack) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(stack.run_dir / "nginx" / "fullchain.pem"))
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


def client(stack: Stack, **kwargs: Any) -> httpx2.Client:
    # Generous: a slow machine must not turn a slow answer into a failed request.
    return httpx2.Client(base_url=stack.base, verify=tls_context(stack), timeout=180.0, **kwargs)


class Browser:
    """A person in the admin through the proxy: cookies, CSRF tokens and the Referer a browser sends."""

    def __init__(self, stack: Stack) -> None:
        self.http = client(stack)
        self.base = stack.base

    def get(self, path: str) -> httpx2.Response:
        return self.http.get(path)

    def post(self, path: str, data: dict[str, str]) -> httpx2.Response:
        self.http.get(path)
        token = self.http.cookies.get("csrftoken") or ""
        return self.http.post(path, data={"csrfmiddlewaretoken": token, **data}, headers={"Referer": self.base + path})

    def sign_in(self, username: str, password: str, totp: tuple[str, int]) -> None:
        answer = self.post("/admin/login/?next=/admin/", {"username": username, "password": password})
        check(answer.status_code == 302, f"{username}: password sign-in answered {answer.status_code}")
        gate = self.get("/admin/")
        check(gate.status_code == 302 and "/admin/mfa/verify/" in gate.headers["location"], f"{username}: no 2FA gate")
        answer = self.post("/admin/mfa/verify/", {"code": totp_code(*totp)})
        check(answer.status_code == 302, f"{username}: the authenticator code answered {answer.status_code}")
        check(self.get("/admin/").status_code == 200, f"{username}: the admin is not open after two-factor")


class SmokeFailure(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SmokeFailure(message)


@dataclass
class Hooks:
    """The webhook receiver: every delivery's signature header and body."""

    received: list[tuple[str, bytes]] = field(default_factory=list)

    def serve(self, port: int) -> ThreadingHTTPServer:
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hooks.received.append((self.headers.get("Tollgate-Signature", ""), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


def signature_valid(header: str, body: bytes, secret: str) -> bool:
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    expected = hmac.new(secret.encode(), f"{parts.get('t', '')}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", "")) and abs(time.time() - int(parts.get("t", 0))) < 300


def api_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def job_wait(api: httpx2.Client, token: str, job_id: str, seconds: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        job: dict[str, Any] = api.get(f"/api/v1/jobs/{job_id}", headers=api_headers(token)).json()
        if job["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.3)


def journey(stack: Stack, setup: Setup, hooks: Hooks) -> dict[str, Any]:
    steps: dict[str, Any] = {}
    with client(stack) as api:
        check(api.get("/healthz").status_code == 200, "/healthz through the proxy")
        ready = api.get("/readyz")
        check(ready.status_code == 200, f"/readyz through the proxy: {ready.status_code} {ready.text}")
        check("max-age" in api.get("/healthz").headers.get("Strict-Transport-Security", ""), "HSTS header")

    approver = Browser(stack)
    approver.sign_in("approver", setup.passwords["approver"], setup.totp["approver"])
    version = f"/admin/prompts/promptversion/{setup.version}/do"
    answer = approver.post(f"{version}/approve/", {"reason": "Reviewed: one-line summaries only."})
    check(answer.status_code == 302, f"approve answered {answer.status_code}")
    for environment in ("staging", "production"):
        answer = approver.post(f"{version}/release/", {"environment": environment, "reason": "Smoke release"})
        check(answer.status_code == 302, f"release to {environment} answered {answer.status_code}")
    steps["approved and released by a second person"] = "yes"

    token = setup.clients["journey"]["token"]
    with client(stack) as api:
        run = api.post(
            f"/api/v1/prompts/{PROMPT}/run", json={"variables": {"ticket": TICKET}}, headers=api_headers(token)
        )
        check(run.status_code == 200, f"run answered {run.status_code}: {run.text[:300]}")
        steps["run"] = run.status_code
        callback = f"http://127.0.0.1:{stack.ports['hook']}/hook"
        posted = api.post(f"/api/v1/prompts/{PROMPT}/jobs", json={"variables": {"ticket": "Short ticket."},
                          "callback_url": callback}, headers=api_headers(token))  # fmt: skip
        check(posted.status_code == 202, f"job answered {posted.status_code}: {posted.text[:300]}")
        job = job_wait(api, token, posted.json()["id"])
        check(job["status"] == "succeeded", f"the job ended {job['status']}: {job.get('error')}")
    wait_until("the webhook", lambda: bool(hooks.received), 60)
    header, body = hooks.received[0]
    check(signature_valid(header, body, setup.clients["journey"]["webhook_secret"]), "webhook signature")
    check(json.loads(body)["id"] == job["id"], "the webhook carries the job")
    steps["job with webhook (signature verified)"] = job["status"]

    admin = Browser(stack)
    admin.sign_in("smoke-admin", setup.passwords["smoke-admin"], setup.totp["smoke-admin"])
    today = datetime.now(UTC).date().isoformat()
    package = admin.post(
        "/admin/audit/auditevent/evidence/", {"type": "usage_ledger", "first_day": today, "last_day": today}
    )
    check(package.status_code == 200 and package.headers["content-type"] == "application/zip", "evidence download")
    (stack.run_dir / "ledger.zip").write_bytes(package.content)
    (stack.run_dir / "audit.pem").write_text(stack.manage("audit_public_key"))
    verified = stack.manage("verify_export", str(stack.run_dir / "ledger.zip"), "--public-key",
                            str(stack.run_dir / "audit.pem"))  # fmt: skip
    steps["evidence package verified"] = verified.strip().splitlines()[-1] if verified.strip() else "ok"
    return steps


# --- The race on one cap ------------------------------------------------------------------------------


def race(stack: Stack, setup: Setup) -> dict[str, Any]:
    """RACE_RUNS runs at once, half to each node directly (as nginx would send them), against the race
    client's monthly cap; its spend (settled + held) is sampled all along."""
    token, client_id = setup.clients["race"]["token"], setup.clients["race"]["id"]
    counter = "SELECT coalesce(sum(spent_usd + reserved_usd), 0) FROM usage_spendcounter WHERE scope = 'api_client' AND scope_id = %s AND period = 'month'"  # noqa: E501
    highest = Decimal(0)
    done = threading.Event()

    def sample() -> None:
        nonlocal highest
        while not done.is_set():
            highest = max(highest, stack.sql(counter, client_id)[0][0])
            time.sleep(0.02)

    statuses: list[int] = []
    start = threading.Barrier(RACE_RUNS)

    def one(node: str) -> None:
        with httpx2.Client(base_url=stack.node_url(node), timeout=60.0) as http:
            start.wait()
            answer = http.post(f"/api/v1/prompts/{PROMPT}/run", json={"variables": {"ticket": TICKET}},
                               headers={**api_headers(token), "Host": HOST, "X-Forwarded-Proto": "https"})  # fmt: skip
            statuses.append(answer.status_code)

    sampler = threading.Thread(target=sample)
    sampler.start()
    threads = [threading.Thread(target=one, args=("web1" if i % 2 else "web2",)) for i in range(RACE_RUNS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    sampler.join()
    final = stack.sql(counter, client_id)[0][0]
    ledger = stack.sql("SELECT coalesce(sum(cost_usd), 0) FROM usage_usagerecord WHERE api_client_id = %s", client_id)
    counts = Counter(statuses)
    return {"cap": RACE_CAP_USD, "runs": RACE_RUNS, "succeeded": counts[200], "refused (402)": counts[402],
            "other": sum(n for s, n in counts.items() if s not in (200, 402)), "highest settled+held": highest,
            "final settled+held": final, "ledger": ledger[0][0]}  # fmt: skip


# --- Faults under load --------------------------------------------------------------------------------


@dataclass
class Load:
    """Runs posted through nginx by a few clients until stopped, each outcome filed under the phase."""

    stack: Stack
    token: str
    phase: str = "steady"
    outcomes: list[tuple[str, int, str]] = field(default_factory=list)  # (phase, status or 0, request id)
    stop: threading.Event = field(default_factory=threading.Event)

    def client_loop(self) -> None:
        with client(self.stack) as api:
            while not self.stop.is_set():
                phase = self.phase
                try:
                    answer = api.post(f"/api/v1/prompts/{PROMPT}/run", json={"variables": {"ticket": "Load."}},
                                      headers=api_headers(self.token))  # fmt: skip
                    self.outcomes.append((phase, answer.status_code, answer.headers.get("X-Request-ID", "")))
                except httpx2.HTTPError as error:
                    self.outcomes.append((phase, 0, type(error).__name__))

    @contextlib.contextmanager
    def running(self, clients: int = 6) -> Iterator[Load]:
        threads = [threading.Thread(target=self.client_loop) for _ in range(clients)]
        for thread in threads:
            thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            for thread in threads:
                thread.join()


def post_jobs(stack: Stack, token: str, count: int, refused: list[int]) -> list[str]:
    """Jobs posted through nginx: the ids accepted (202); any other answer is added to `refused`."""
    accepted = []
    with client(stack) as api:
        for index in range(count):
            answer = api.post(f"/api/v1/prompts/{PROMPT}/jobs", json={"variables": {"ticket": f"Job {index}."}},
                              headers=api_headers(token))  # fmt: skip
            if answer.status_code == 202:
                accepted.append(answer.json()["id"])
            else:
                refused.append(answer.status_code)
    return accepted


def faults(stack: Stack, setup: Setup) -> dict[str, Any]:
    token = setup.clients["journey"]["token"]
    jobs: list[str] = []
    refused: list[int] = []
    load = Load(stack, token)
    with load.running():
        time.sleep(3)
        load.phase = "web node restart"
        web1 = stack.services["web1"]
        web1.signal(signal.SIGTERM)
        time.sleep(1)
        web1.start()
        time.sleep(3)

        load.phase = "worker SIGKILL"
        jobs += post_jobs(stack, token, 30, refused)
        wait_until(
            "a job to run", lambda: stack.sql("SELECT count(*) FROM prompts_job WHERE status = 'running'")[0][0] > 0
        )
        running = stack.sql("SELECT count(*) FROM prompts_job WHERE status = 'running'")[0][0]
        worker = stack.services["worker"]
        worker.signal(signal.SIGKILL)
        time.sleep(1)
        worker.start()
        jobs += post_jobs(stack, token, 10, refused)
        time.sleep(2)

        load.phase = "Redis restart"
        redis = stack.services["redis"]
        jobs += post_jobs(stack, token, 5, refused)
        redis.signal(signal.SIGTERM)
        jobs += post_jobs(stack, token, 3, refused)  # while Redis is down: 503, or accepted and kept
        redis.start()
        jobs += post_jobs(stack, token, 5, refused)
        time.sleep(3)
        load.phase = "after"
        time.sleep(2)

    # A killed worker's jobs come back after the visibility timeout (plus kombu's 10 s restore cycle) and
    # wait out their lease; a job whose message was lost is queued again by the sweeper once overdue.
    deadline = time.monotonic() + VISIBILITY_TIMEOUT + JOB_LEASE + REDISPATCH + 90
    unfinished = "SELECT public_id FROM prompts_job WHERE public_id = ANY(%s) AND status NOT IN ('succeeded', 'failed')"
    while stack.sql(unfinished, jobs) and time.monotonic() < deadline:
        time.sleep(1)
    return {"jobs": jobs, "running_when_killed": running, "load": load, "refused": refused}


def _log_count(stack: Stack, text: str) -> int:
    return stack.services["worker"].log.read_text(errors="replace").count(text)


def tally(stack: Stack, result: dict[str, Any]) -> dict[str, Any]:
    load: Load = result["load"]
    jobs: list[str] = result["jobs"]
    failed = Counter(phase for phase, status, _ in load.outcomes if status != 200)
    served = Counter(phase for phase, status, _ in load.outcomes if status == 200)
    answered_ids = [request_id for _, status, request_id in load.outcomes if status == 200]
    in_ledger = {
        row[0] for row in stack.sql("SELECT request_id FROM usage_usagerecord WHERE request_id = ANY(%s)", answered_ids)
    }
    finished = stack.sql(
        "SELECT public_id, status, attempts, attempt_request_id FROM prompts_job "
        "WHERE public_id = ANY(%s) AND status IN ('succeeded', 'failed')",
        jobs,
    )
    # The last attempt of every finished job wrote its row (a lost attempt that had reserved gets its own
    # row from the attempt that took over: docs/queue.md, Exactly one result).
    job_rows = {
        row[0]
        for row in stack.sql(
            "SELECT request_id FROM usage_usagerecord WHERE request_id = ANY(%s)", [row[3] for row in finished]
        )
    }
    for unfinished in stack.sql(
        "SELECT public_id, status, attempts, due_at, lease_expires_at FROM prompts_job "
        "WHERE public_id = ANY(%s) AND status NOT IN ('succeeded', 'failed')",
        jobs,
    ):
        print("  lost: {} {} after {} attempts, due {}, lease until {}".format(*unfinished), file=sys.stderr)
    held_before = stack.sql("SELECT count(*) FROM usage_spendreservation WHERE status = 'held'")[0][0]
    reaped = (
        stack.manage(
            "shell", "-c", "from usage.settlement import spend_reservations_reap; print(spend_reservations_reap())"
        )
        .strip()
        .splitlines()[-1]
    )
    held_after = stack.sql("SELECT count(*) FROM usage_spendreservation WHERE status = 'held'")[0][0]
    return {
        "phases": {phase: (served[phase], failed[phase]) for phase in dict.fromkeys(p for p, _, _ in load.outcomes)},
        "failure kinds": Counter(
            f"{phase}: {status or request_id}" for phase, status, request_id in load.outcomes if status != 200
        ),
        "runs answered": len(answered_ids),
        # While Redis restarts a run is refused with 503 service_unavailable (Retry-After): anything else failed.
        "answers neither 200 nor 503": sum(1 for _, status, _ in load.outcomes if status not in (200, 503)),
        "run ledger rows missing": len(set(answered_ids) - in_ledger),
        "jobs accepted": len(jobs),
        "jobs refused (503)": sum(1 for status in result["refused"] if status == 503),
        "job posts neither 202 nor 503": sum(1 for status in result["refused"] if status != 503),
        "jobs running when the worker was killed": result["running_when_killed"],
        "jobs retried after their worker died": sum(1 for row in finished if row[2] > 1),
        "jobs lost": len(jobs) - len(finished),
        "messages queued again by the sweeper": _log_count(stack, "queued again"),
        "jobs failed": sum(1 for row in finished if row[1] == "failed"),
        "job ledger rows missing": len({row[3] for row in finished} - job_rows),
        "reservations held before reaping": held_before,
        "reservations reaped": reaped,
        "reservations left held": held_after,
    }


def main() -> int:
    began = time.monotonic()
    run_dir = Path(tempfile.mkdtemp(prefix="tollgate-smoke-"))
    stack = Stack(run_dir)
    hooks = Hooks()
    failures: list[str] = []
    server: ThreadingHTTPServer | None = None

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        bring_up(stack)
        server = hooks.serve(stack.ports["hook"])
        setting_up = time.monotonic()
        setup = set_up_accounts(stack)
        print(f"accounts, the draft and the API clients set up: {time.monotonic() - setting_up:.0f} s", flush=True)
        print(f"Up in {time.monotonic() - began:.0f} s: nginx :{stack.ports['https']} → gunicorn "
              f":{stack.ports['web1']}, :{stack.ports['web2']}; worker, beat; PostgreSQL {stack.database}; "
              f"Redis :{stack.ports['redis']}", flush=True)  # fmt: skip
        for step, outcome in journey(stack, setup, hooks).items():
            print(f"journey: {step}: {outcome}", flush=True)
        raced = race(stack, setup)
        print("race on one cap: " + ", ".join(f"{k} {v}" for k, v in raced.items()), flush=True)
        if raced["highest settled+held"] > RACE_CAP_USD or raced["ledger"] > RACE_CAP_USD or raced["other"]:
            failures.append("the race exceeded the cap or failed otherwise")
        counts = tally(stack, faults(stack, setup))
        required = {
            "requests failed (web node restart)": counts["phases"].get("web node restart", (0, 0))[1],
            "answers neither 200 nor 503": counts["answers neither 200 nor 503"],
            "job posts neither 202 nor 503": counts["job posts neither 202 nor 503"],
            "jobs lost": counts["jobs lost"],
            "ledger rows missing": counts["run ledger rows missing"] + counts["job ledger rows missing"],
            "reservations left held": counts["reservations left held"],
        }
        print("\nFaults under load (runs through nginx, per phase: answered 200 / failed):")
        for phase, (ok, bad) in counts["phases"].items():
            print(f"  {phase:<20} {ok:>5} / {bad}")
        for kind, number in counts["failure kinds"].items():
            print(f"    failed: {kind} × {number}")
        print()
        width = max(map(len, [*counts, *required])) + 2
        for name, value in counts.items():
            if name not in ("phases", "failure kinds"):
                print(f"  {name:<{width}} {value}")
        print("\n  must be zero:")
        for name, value in required.items():
            print(f"  {name:<{width}} {value}{'' if value == 0 else '   <-- FAILED'}")
            if value:
                failures.append(name)
    except Exception as error:  # anything at all: reported, and everything is still torn down
        failures.append(f"{type(error).__name__}: {error}")
    except KeyboardInterrupt:
        failures.append("interrupted")
    finally:
        if server is not None:
            server.shutdown()
        stack.teardown()
        if failures:
            for log in sorted(run_dir.glob("*.log")) + sorted(run_dir.glob("nginx/*.log")):
                tail = log.read_text(errors="replace").splitlines()[-15:]
                print(f"\n--- {log.name} (last lines) ---\n" + "\n".join(tail), file=sys.stderr)
        shutil.rmtree(run_dir, ignore_errors=True)
    print(f"\nSmoke {'FAILED: ' + '; '.join(failures) if failures else 'passed'} in {time.monotonic() - began:.0f} s.")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
