"""The run endpoint served as in production — the web server as deploy/ configures it, PostgreSQL, Redis —
against the sandbox. Prints one JSON line per figure:

1. overhead: N sequential runs through Tollgate vs the same calls made directly with the SDK → added ms
   p50 / p95 (target ≤ 3 / ≤ 8);
2. throughput: 100 concurrent clients, sandbox latency 200 ms (ideal 500 runs/s) → runs/s, errors, p95
   added latency (target ≥ 400 runs/s, zero errors);
3. streaming: added time to first token, p50 (target ≤ 5 ms).

Needs the machine's PostgreSQL (database `tollgate_bench` is created afresh) and Redis (database 3).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import runpy
import secrets
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import httpx2

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
PG = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/3")
DATABASE = "tollgate_bench"
VARIABLES = {"ticket": "The export button does nothing since this morning.", "customer_email": "ops@example.com"}
# What a run renders from VARIABLES (support-summary's user template in evaluations/demo.py, each value
# delimited as prompts/rendering.py does), before redaction: the conversation of the same call made through
# the Anthropic-compatible endpoint.
USER_TEXT = "Ticket from {customer_email}:\n{ticket}".format(
    **{name: f"<{name}>\n{value}\n</{name}>" for name, value in VARIABLES.items()}
)
ANTHROPIC_PATH = "/anthropic/v1/messages"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(port: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def environment(sandbox_port: int, database: str = DATABASE) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_DEBUG": "false",
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "TOLLGATE_ENCRYPTION_KEYS": "bench:" + base64.b64encode(b"b" * 32).decode(),
        "TOLLGATE_AUDIT_SIGNING_KEY": base64.b64encode(b"s" * 32).decode(),
        "DATABASE_URL": f"{PG}/{database}",
        "REDIS_URL": REDIS,
        "CELERY_BROKER_URL": "",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_LOG_LEVEL": "WARNING",
        "TOLLGATE_SANDBOX_URL": f"http://127.0.0.1:{sandbox_port}",
        "TOLLGATE_UPSTREAM_BASE_URLS": f"http://127.0.0.1:{sandbox_port}",
        "TOLLGATE_PSEUDONYM_KEY": secrets.token_urlsafe(32),
    }


def deploy_settings() -> dict[str, Any]:
    """The settings of production's web server, as gunicorn reads deploy/gunicorn.conf.py."""
    return {name: value for name, value in runpy.run_path(str(DEPLOY / "gunicorn.conf.py")).items() if name[0] != "_"}


def server_command(server: str, port: int) -> list[str]:
    """The command line of one way to serve Tollgate on 127.0.0.1:`port`.

    `deploy` is production's (deploy/gunicorn.conf.py, only its `bind` overridden); the candidates it was
    chosen among are `gunicorn-WxT` (gthread, W workers × T threads) and `granian-WxT` (WSGI, W workers ×
    T blocking threads)."""
    bin_dir = Path(sys.executable).parent
    if server == "deploy":
        return [
            str(bin_dir / "gunicorn"), "-c", str(DEPLOY / "gunicorn.conf.py"), "config.wsgi",
            "--bind", f"127.0.0.1:{port}",
        ]  # fmt: skip
    kind, _, shape = server.partition("-")
    workers, _, threads = shape.partition("x")
    if kind == "gunicorn" and workers.isdigit() and threads.isdigit():
        return [
            str(bin_dir / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", workers,
            "--threads", threads, "--worker-class", "gthread", "--log-level", "warning",
        ]  # fmt: skip
    if kind == "granian" and workers.isdigit() and threads.isdigit():
        # No --backpressure: it bounds connections, not requests, so the idle keep-alive connections of a
        # client pool hold its slots and the others wait out the 30 s header-read timeout (measured: p95
        # +33 s at 100 clients).
        return [
            str(bin_dir / "granian"), "config.wsgi:application", "--interface", "wsgi", "--workers", workers,
            "--blocking-threads", threads, "--log-level", "warning", "--host", "127.0.0.1", "--port", str(port),
        ]  # fmt: skip
    raise ValueError(f"unknown server {server!r}: `deploy`, `gunicorn-WxT` or `granian-WxT`")


def serve(env: dict[str, str], port: int, server: str = "deploy") -> subprocess.Popen[bytes]:
    """Tollgate served one way (`server_command`), by default as production serves it; returns once it
    listens."""
    web = subprocess.Popen(server_command(server, port), cwd=ROOT, env=env)
    wait_for(port, seconds=180)
    return web


def prepare(env: dict[str, str], database: str = DATABASE) -> str:
    """A fresh database with the demo data; returns the production demo client's token."""
    subprocess.run(["psql", PG + "/postgres", "-qc", f"DROP DATABASE IF EXISTS {database}"], check=True)
    subprocess.run(["psql", PG + "/postgres", "-qc", f"CREATE DATABASE {database}"], check=True)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    output = subprocess.run(
        [*manage, "seed_demo", "--force"], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout
    # The benchmark sends far more than a demo client's rate and caps allow.
    subprocess.run(
        [*manage, "shell", "-c",
         "from keys.models import ApiClient, ProviderKey; "
         "ApiClient.objects.update(rate_limit_per_minute=10**6, monthly_cap_usd=None); "
         "ProviderKey.objects.update(monthly_cap_usd=10**6, daily_cap_usd=None)"],
        cwd=ROOT, env=env, check=True,
    )  # fmt: skip
    match = re.search(r"tg_prd_[0-9A-Za-z]+", output)
    assert match, output
    return match.group(0)


def freeform_token(env: dict[str, str]) -> str:
    """A token of a second production client, one that may make free-form calls (`freeform_models`: every
    model a run of support-summary may be sent to) without the benchmark reaching its rate limit."""
    code = (
        "from django.contrib.auth.models import User; "
        "from keys.services import api_client_create, api_token_issue; "
        "from prompts.services import released_version_for_run; "
        "from prompts.specs import routing_of; "
        "version = released_version_for_run(slug='support-summary', environment='production'); "
        "admin = User.objects.get(username='admin'); "
        "client, _ = api_client_create(actor=admin, name='Benchmark free-form', environment='production', "
        "owner=admin, rate_limit_per_minute=10**6, freeform=True, "
        "freeform_models=[version.model, *routing_of(version).models()]); "
        "print(api_token_issue(actor=admin, client=client, label='benchmark')[1])"
    )
    output = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"tg_prd_[0-9A-Za-z]+", output)
    assert match, output
    return match.group(0)


def anthropic_bodies(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Messages API bodies for the Anthropic-compatible endpoint that ask the upstream what a run asked
    (`request`: the body the sandbox received for a run): prompt-bound (`prompt:support-summary`, the rendered
    user text), and free-form with the model and system prompt the run sent."""
    messages = [{"role": "user", "content": USER_TEXT}]
    return {
        "prompt-bound": {"model": "prompt:support-summary", "max_tokens": request["max_tokens"], "messages": messages},
        "free-form": {
            "model": request["model"],
            "max_tokens": request["max_tokens"],
            "system": request["system"],
            "messages": messages,
        },
    }


def quantile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def overhead(url: str, token: str, sandbox: str, n: int = 300) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    body = {"variables": VARIABLES}
    with httpx2.Client(timeout=30) as http:
        last = None
        for _ in range(20):  # warm-up
            last = http.post(f"{url}/api/v1/prompts/support-summary/run", json=body, headers=headers)
            last.raise_for_status()
        request = httpx2.get(f"{sandbox}/_sandbox/requests").json()["requests"][-1]["body"]
        through: list[float] = []
        for _ in range(n):
            began = time.perf_counter()
            http.post(f"{url}/api/v1/prompts/support-summary/run", json=body, headers=headers).raise_for_status()
            through.append((time.perf_counter() - began) * 1000)
    sdk = anthropic.Anthropic(api_key="sk-ant-bench-direct-0000000000", base_url=sandbox)
    for _ in range(20):
        sdk.messages.create(**request)
    direct: list[float] = []
    for _ in range(n):
        began = time.perf_counter()
        sdk.messages.create(**request)
        direct.append((time.perf_counter() - began) * 1000)
    return {
        "benchmark": "run_overhead",
        "requests": n,
        "direct_ms_p50": round(statistics.median(direct), 2),
        "tollgate_ms_p50": round(statistics.median(through), 2),
        "added_ms_p50": round(statistics.median(through) - statistics.median(direct), 2),
        "added_ms_p95": round(quantile(through, 95) - quantile(direct, 95), 2),
        "target_ms": {"p50": 3, "p95": 8},
    }


async def _throughput(url: str, token: str, clients: int, total: int) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = 0
    remaining = total
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                began = time.perf_counter()
                async with session.post(
                    f"{url}/api/v1/prompts/support-summary/run", json={"variables": VARIABLES}, headers=headers
                ) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append((time.perf_counter() - began) * 1000)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return time.perf_counter() - began, latencies, errors


def throughput(url: str, token: str, sandbox: str, clients: int = 100, total: int = 3000) -> dict[str, Any]:
    httpx2.post(f"{sandbox}/_sandbox/latency", json={"ms": 200}).raise_for_status()
    try:
        elapsed, latencies, errors = asyncio.run(_throughput(url, token, clients, total))
    finally:
        httpx2.post(f"{sandbox}/_sandbox/latency", json={"ms": 0}).raise_for_status()
    return {
        "benchmark": "run_throughput",
        "clients": clients,
        "requests": total,
        "upstream_latency_ms": 200,
        "runs_per_s": round(total / elapsed, 1),
        "ideal_runs_per_s": clients / 0.2,
        "errors": errors,
        "added_ms_p50": round(statistics.median(latencies) - 200, 1),
        "added_ms_p95": round(quantile(latencies, 95) - 200, 1),
        "target": {"runs_per_s": 400, "errors": 0},
    }


def streaming(url: str, token: str, sandbox: str, n: int = 100) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    body = {"variables": VARIABLES, "stream": True}
    through: list[float] = []
    with httpx2.Client(timeout=30) as http:
        for index in range(n + 10):
            began = time.perf_counter()
            with http.stream("POST", f"{url}/api/v1/prompts/support-summary/run", json=body, headers=headers) as r:
                first = None
                for line in r.iter_lines():
                    if first is None and line == "event: delta":
                        first = (time.perf_counter() - began) * 1000
                if index >= 10 and first is not None:
                    through.append(first)
    request = httpx2.get(f"{sandbox}/_sandbox/requests").json()["requests"][-1]["body"]
    request.pop("stream", None)
    sdk = anthropic.Anthropic(api_key="sk-ant-bench-direct-0000000000", base_url=sandbox)
    direct: list[float] = []
    for index in range(n + 10):
        began = time.perf_counter()
        with sdk.messages.stream(**request) as stream:
            first = None
            for _ in stream.text_stream:
                if first is None:
                    first = (time.perf_counter() - began) * 1000
        if index >= 10 and first is not None:
            direct.append(first)
    return {
        "benchmark": "stream_time_to_first_token",
        "requests": n,
        "direct_ms_p50": round(statistics.median(direct), 2),
        "tollgate_ms_p50": round(statistics.median(through), 2),
        "added_ms_p50": round(statistics.median(through) - statistics.median(direct), 2),
        "target_ms": 5,
    }


def main() -> None:
    sandbox_port, web_port = free_port(), free_port()
    env = environment(sandbox_port)
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", str(sandbox_port)], cwd=ROOT, stdout=subprocess.DEVNULL
    )
    web = None
    try:
        token = prepare(env)
        wait_for(sandbox_port)
        web = serve(env, web_port)
        url, sandbox_url = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{sandbox_port}"
        for figures in (
            overhead(url, token, sandbox_url),
            streaming(url, token, sandbox_url),
            throughput(url, token, sandbox_url),
        ):
            print(json.dumps(figures), flush=True)
    finally:
        for process in (web, sandbox):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)


if __name__ == "__main__":
    main()
