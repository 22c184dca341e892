"""Side by side, in one run, against the same sandbox upstream and with the same load generator:

1. the official SDK (`anthropic`) calling the sandbox directly;
2. a pinned LiteLLM proxy, installed by this benchmark into its own virtualenv under `var/` (never a
   dependency of Tollgate), with no database and spend tracking off, serving Anthropic's `/v1/messages`
   route with the sandbox as its `api_base`;
3. Tollgate's run endpoint on PostgreSQL and Redis, under each web server named in `BENCH_SERVERS`
   (default `deploy`, production's configuration in deploy/; candidates `gunicorn-WxT`, `granian-WxT`:
   bench/run_endpoint.py `server_command`), one process tree each, against the same database;
4. Tollgate's Anthropic-compatible endpoint, served by the first of those servers (production's) beside its
   run endpoint and called as LiteLLM is (the SDK, or raw HTTP with `x-api-key`): a prompt-bound call
   (`prompt:support-summary`, the user text a run renders) and a free-form one by a client allowed them
   (the model and system prompt a run sends), both asking the sandbox what a run asks.

Prints one JSON line per figure, each beside LiteLLM's (the compatible endpoint's also beside the run
endpoint's under the same server; for throughput, the sandbox alone's) as a ratio: sequential added
latency p50 / p95 over the direct SDK (all targets interleaved request by request); streaming added time
to first token p50; runs/s and errors with 100 concurrent clients and 200 ms upstream latency (each target
in turn, the order alternating over two rounds, the sandbox alone driven by the same generator); CPU
milliseconds per run of the web processes and of PostgreSQL; PostgreSQL transactions and WAL flushes per
run, and the SQL statements and PostgreSQL and Redis round trips of a run and of each compatible call
(bench/statements.py, counted in a serving process: pg_stat_statements is not preloaded here); lock waits
sampled every 50 ms during the throughput runs; the machine's load average at the start and the end. If
LiteLLM cannot be installed or started, says why and compares the SDK, Tollgate and the sandbox alone.

Needs the machine's PostgreSQL (database `bench_cmp`, created afresh; `BENCH_COMPARE_DATABASE`) and Redis
(database 9; `BENCH_COMPARE_REDIS`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import httpx2
import psycopg

from bench import statements
from bench.run_endpoint import (
    PG,
    ROOT,
    VARIABLES,
    anthropic_bodies,
    deploy_settings,
    environment,
    free_port,
    freeform_token,
    prepare,
    quantile,
    serve,
    server_command,
    wait_for,
)  # fmt: skip

LITELLM_VERSION = "1.108.7"  # the newest 1.108.x whose `proxy` extra resolves on PyPI
LITELLM_VENV = ROOT / "var" / "bench-litellm"
DATABASE = os.environ.get("BENCH_COMPARE_DATABASE", "bench_cmp")
REDIS = os.environ.get("BENCH_COMPARE_REDIS", "redis://127.0.0.1:6379/9")
SANDBOX_KEY = "sk-ant-bench-direct-0000000000"
PROXY_KEY = "sk-bench-" + secrets.token_hex(16)  # LiteLLM's master key: it refuses to start without one
RUN_PATH = "/api/v1/prompts/support-summary/run"
CAP_TABLES = {"usage_spendcounter"}  # the rows a run's spend-cap reservation updates
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ROUNDS = int(os.environ.get("BENCH_COMPARE_ROUNDS", "300"))
STREAM_ROUNDS = int(os.environ.get("BENCH_COMPARE_STREAM_ROUNDS", "100"))
CLIENTS = 100
# Per throughput run: 1,500 keeps the default run (two Tollgate servers) under about eight minutes when loaded.
THROUGHPUT_REQUESTS = int(os.environ.get("BENCH_COMPARE_REQUESTS", "1500"))
UPSTREAM_LATENCY_MS = 200
# Production's server first (the targets are checked on it), then the best of the others it was chosen among.
SERVERS = os.environ.get("BENCH_SERVERS", "deploy,granian-4x8").split(",")
# PostgreSQL connections all the Tollgate servers together may hold (each pool keeps what a throughput run
# grew for ten minutes): an equal share each, split over its workers, at most production's 20 a process.
CONNECTIONS = int(os.environ.get("BENCH_COMPARE_CONNECTIONS", "60"))


# --- LiteLLM, in a virtualenv of its own ------------------------------------------------------------


def install_litellm() -> Path:
    """The pinned LiteLLM proxy's `litellm` command, installed under var/ on first use."""
    command = LITELLM_VENV / "bin" / "litellm"
    python = LITELLM_VENV / "bin" / "python"
    if command.exists():
        installed = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
            capture_output=True, text=True, check=False,
        ).stdout.strip()  # fmt: skip
        if installed == LITELLM_VERSION:
            return command
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(LITELLM_VENV)], check=True)
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if pip.returncode != 0:
        raise RuntimeError(f"pip could not install litellm[proxy]=={LITELLM_VERSION}: {pip.stderr[-600:]}")
    return command


def start_litellm(command: Path, port: int, sandbox: str, model: str) -> subprocess.Popen[bytes]:
    """LiteLLM's proxy with one model routed to the sandbox; no database, no spend logs, no telemetry."""
    config = {
        "model_list": [
            {
                "model_name": model,
                "litellm_params": {"model": f"anthropic/{model}", "api_base": sandbox, "api_key": SANDBOX_KEY},
            }
        ],
        "litellm_settings": {"telemetry": False, "drop_params": False, "num_retries": 0},
        "general_settings": {
            "master_key": PROXY_KEY,
            "disable_spend_logs": True,
            "disable_error_logs": True,
            "disable_reset_budget": True,
        },
    }
    path = LITELLM_VENV / "config.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"DATABASE_URL", "REDIS_URL", "REDIS_HOST", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"}
    }
    env |= {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "DISABLE_SCHEMA_UPDATE": "True"}
    proxy = subprocess.Popen(
        [str(command), "--config", str(path), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "2"],
        cwd=LITELLM_VENV, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_for(port, seconds=180)
    except RuntimeError:
        proxy.terminate()
        _, errors = proxy.communicate(timeout=30)
        raise RuntimeError(f"LiteLLM's proxy did not start: {errors.decode(errors='replace')[-600:]}") from None
    return proxy


# --- what each target is -----------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    url: str  # what the load generator posts to
    headers: dict[str, str]
    body: dict[str, Any]
    process: subprocess.Popen[bytes] | None = None  # the server whose CPU is counted
    call: Callable[[], None] = lambda: None
    first_token: Callable[[], float] = lambda: 0.0


def sdk_target(
    name: str, base_url: str, request: dict[str, Any], process: subprocess.Popen[bytes] | None, key: str = SANDBOX_KEY
) -> Target:
    """Anthropic's API through the official SDK (the load generator posts the same body with aiohttp)."""
    client = anthropic.Anthropic(api_key=key, base_url=base_url, max_retries=0)

    def call() -> None:
        client.messages.create(**request)

    def first_token() -> float:
        began = time.perf_counter()
        first = 0.0
        with client.messages.stream(**request) as stream:
            for _ in stream.text_stream:
                if not first:
                    first = (time.perf_counter() - began) * 1000
        return first

    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    return Target(name, f"{base_url}/v1/messages", headers, request, process, call, first_token)


def tollgate_target(name: str, url: str, token: str, process: subprocess.Popen[bytes]) -> Target:
    http = httpx2.Client(timeout=30)
    headers = {"Authorization": f"Bearer {token}"}

    def call() -> None:
        http.post(f"{url}{RUN_PATH}", json={"variables": VARIABLES}, headers=headers).raise_for_status()

    def first_token() -> float:
        began = time.perf_counter()
        first = 0.0
        body = {"variables": VARIABLES, "stream": True}
        with http.stream("POST", f"{url}{RUN_PATH}", json=body, headers=headers) as response:
            for line in response.iter_lines():
                if not first and line == "event: delta":
                    first = (time.perf_counter() - began) * 1000
        return first

    return Target(name, f"{url}{RUN_PATH}", headers, {"variables": VARIABLES}, process, call, first_token)


# --- figures ------------------------------------------------------------------------------------------


def ratio(value: float, base: float) -> float | None:
    return round(value / base, 3) if base else None


def tollgates(names: Iterable[str]) -> list[str]:
    """The Tollgate targets: the run endpoint's (one per web server, production's first), then the
    compatible endpoint's (`tollgate-anthropic…:<server>`)."""
    return [name for name in names if name.startswith("tollgate")]


def baselines(name: str, names: Iterable[str]) -> dict[str, str]:
    """What a Tollgate target's figures are divided by, among `names`: LiteLLM's, and for the compatible
    endpoint the run endpoint's under the same server."""
    kind, _, server = name.partition(":")
    wanted = {"litellm": "litellm", **({"run_endpoint": f"tollgate:{server}"} if kind != "tollgate" else {})}
    return {label: base for label, base in wanted.items() if base in names}


def sequential(targets: list[Target], rounds: int) -> dict[str, Any]:
    """Each round calls every target once, the order rotating, so drift on the machine hits all alike."""
    times: dict[str, list[float]] = {target.name: [] for target in targets}
    for index in range(rounds + 20):
        shift = index % len(targets)
        for target in targets[shift:] + targets[:shift]:
            began = time.perf_counter()
            target.call()
            if index >= 20:  # the first rounds warm up connections and caches
                times[target.name].append((time.perf_counter() - began) * 1000)
    direct = times["sdk"]
    figures: dict[str, Any] = {"benchmark": "compare_sequential", "rounds": rounds}
    for name, values in times.items():
        figures[f"{name}_ms_p50"] = round(statistics.median(values), 2)
        figures[f"{name}_ms_p95"] = round(quantile(values, 95), 2)
        if name != "sdk":
            figures[f"{name}_added_ms_p50"] = round(statistics.median(values) - statistics.median(direct), 2)
            figures[f"{name}_added_ms_p95"] = round(quantile(values, 95) - quantile(direct, 95), 2)
    for name in tollgates(times):
        for label, base in baselines(name, times).items():
            for q in ("p50", "p95"):
                figures[f"{name}_to_{label}_added_{q}"] = ratio(
                    figures[f"{name}_added_ms_{q}"], figures[f"{base}_added_ms_{q}"]
                )
    return figures


def streaming(targets: list[Target], rounds: int) -> dict[str, Any]:
    """Time to the first text: the run endpoint's SSE `delta` event, Anthropic's text delta through the SDK
    (the sandbox, LiteLLM, the compatible endpoint)."""
    times: dict[str, list[float]] = {target.name: [] for target in targets}
    for index in range(rounds + 10):
        shift = index % len(targets)
        for target in targets[shift:] + targets[:shift]:
            first = target.first_token()
            if index >= 10 and first:
                times[target.name].append(first)
    direct = statistics.median(times["sdk"])
    figures: dict[str, Any] = {"benchmark": "compare_stream_time_to_first_token", "rounds": rounds}
    for name, values in times.items():
        figures[f"{name}_ms_p50"] = round(statistics.median(values), 2)
        figures[f"{name}_samples"] = len(values)
        if name != "sdk":
            figures[f"{name}_added_ms_p50"] = round(statistics.median(values) - direct, 2)
    for name in tollgates(times):
        for label, base in baselines(name, times).items():
            figures[f"{name}_to_{label}_added_p50"] = ratio(
                figures[f"{name}_added_ms_p50"], figures[f"{base}_added_ms_p50"]
            )
    return figures


# --- what the machine spent ---------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, user + system clock ticks) of a process, None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), int(fields[11]) + int(fields[12])


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def tree_ticks(root: int) -> dict[int, int]:
    """CPU ticks of a process and all its descendants, by pid."""
    stats = {pid: stat for pid in _pids() if (stat := _stat(pid)) is not None}
    members, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _) in stats.items() if ppid == parent and pid not in members]
        members.update(children)
        frontier.extend(children)
    return {pid: stats[pid][1] for pid in members if pid in stats}


def postgres_ticks(database: str | None) -> dict[int, int]:
    """CPU ticks of the postgres processes: the backends of one database, or all of them (None)."""
    ticks = {}
    for pid in _pids():
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != "postgres":
                continue
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if database is not None and f" {database} " not in title:
            continue
        if (stat := _stat(pid)) is not None:
            ticks[pid] = stat[1]
    return ticks


def spent_ms(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU milliseconds between two snapshots (a process born in between started at zero)."""
    return sum(ticks - before.get(pid, 0) for pid, ticks in after.items()) * 1000 / CLOCK_TICKS


@dataclass
class Sampler:
    """Every 50 ms: backends of the database waiting on a lock, and the CPU its backends have used.

    `waits` counts waiting-backend observations (one per backend per sample), keyed by the lock's type and
    the first table its statement writes; `relations` counts those whose lock names a relation (tuple
    locks); `cap_waits` those waiting for a spend-cap row: a tuple lock on a cap table, or a wait for the
    transaction holding a row by a statement that writes cap rows (the reservation and the settlement)."""

    database: str
    samples: int = 0
    waiting_samples: int = 0
    waits: Counter[str] = field(default_factory=Counter)
    relations: Counter[int] = field(default_factory=Counter)
    cap_waits: int = 0
    backend_ticks: dict[int, int] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        query = """
            SELECT a.pid, l.locktype, l.relation, c.relname, a.query
              FROM pg_stat_activity a LEFT JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted
                   LEFT JOIN pg_class c ON c.oid = l.relation
             WHERE a.datname = %s AND a.wait_event_type = 'Lock'
        """
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as connection:
            while not self.stop.wait(0.05):
                rows = connection.execute(query, (self.database,)).fetchall()
                self.samples += 1
                self.waiting_samples += bool(rows)
                for _, locktype, relation, relname, text in rows:
                    table = re.search(r'(?:UPDATE|INTO)\s+"?(\w+)"?', text or "")
                    self.waits[f"{locktype or 'lock'} by a write of {table.group(1) if table else 'unknown'}"] += 1
                    if relation is not None:
                        self.relations[relation] += 1
                    writes_caps = any(name in (text or "") for name in CAP_TABLES)
                    self.cap_waits += relname in CAP_TABLES or (locktype == "transactionid" and writes_caps)
                self.backend_ticks |= postgres_ticks(self.database)


def pg_counters(database: str) -> dict[str, int]:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as connection:
        connection.execute("SELECT pg_stat_clear_snapshot()")
        commits, rollbacks = connection.execute(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = %s", (database,)
        ).fetchone() or (0, 0)
        wal_write, wal_sync, wal_records = connection.execute(
            "SELECT wal_write, wal_sync, wal_records FROM pg_stat_wal"
        ).fetchone() or (0, 0, 0)
    return {
        "xact_commit": commits, "xact_rollback": rollbacks,
        "wal_write": wal_write, "wal_sync": wal_sync, "wal_records": wal_records,
    }  # fmt: skip


def relation_names(database: str, oids: list[int]) -> dict[int, str]:
    if not oids:
        return {}
    with psycopg.connect(f"{PG}/{database}", autocommit=True) as connection:
        rows = connection.execute("SELECT oid::int, relname FROM pg_class WHERE oid = ANY(%s)", (oids,)).fetchall()
    return dict(rows)


@contextmanager
def measured(target: Target, sandbox: subprocess.Popen[bytes], figures: dict[str, Any]) -> Iterator[None]:
    """Fills `figures` with what the machine spent while the block ran (per run once `runs` is set)."""
    web = tree_ticks(target.process.pid) if target.process else {}
    upstream = tree_ticks(sandbox.pid)
    postgres_all = postgres_ticks(None)
    sampler = Sampler(DATABASE, backend_ticks=postgres_ticks(DATABASE))
    backends_before = dict(sampler.backend_ticks)
    counters = pg_counters(DATABASE)
    thread = threading.Thread(target=sampler.run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        sampler.stop.set()
        thread.join()
        time.sleep(1.2)  # backends report their statistics to the cumulative views within a second
        runs = figures["requests"]
        web_ms = spent_ms(web, tree_ticks(target.process.pid)) if target.process else 0.0
        backends_ms = spent_ms(backends_before, sampler.backend_ticks | postgres_ticks(DATABASE))
        after = pg_counters(DATABASE)
        names = relation_names(DATABASE, list(sampler.relations))
        figures |= {
            "web_cpu_ms_per_run": round(web_ms / runs, 2),
            "sandbox_cpu_ms_per_run": round(spent_ms(upstream, tree_ticks(sandbox.pid)) / runs, 2),
            "postgres_backends_cpu_ms_per_run": round(backends_ms / runs, 2),
            "postgres_all_cpu_ms_per_run": round(spent_ms(postgres_all, postgres_ticks(None)) / runs, 2),
            "postgres_commits_per_run": round((after["xact_commit"] - counters["xact_commit"]) / runs, 2),
            "postgres_rollbacks_per_run": round((after["xact_rollback"] - counters["xact_rollback"]) / runs, 2),
            "wal_sync_per_run": round((after["wal_sync"] - counters["wal_sync"]) / runs, 3),
            "wal_write_per_run": round((after["wal_write"] - counters["wal_write"]) / runs, 3),
            "wal_records_per_run": round((after["wal_records"] - counters["wal_records"]) / runs, 2),
            "lock_samples": sampler.samples,
            "lock_samples_with_waits": sampler.waiting_samples,
            "lock_waits": dict(sampler.waits),
            "lock_wait_relations": {names.get(oid, str(oid)): count for oid, count in sampler.relations.items()},
            "cap_row_lock_waits": sampler.cap_waits,
        }


async def _load(target: Target, clients: int, total: int) -> tuple[float, list[float], int, Counter[str]]:
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    remaining = total
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients), timeout=timeout) as session:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                began = time.perf_counter()
                try:
                    async with session.post(target.url, json=target.body, headers=target.headers) as response:
                        await response.read()
                        if response.status != 200:
                            failures[str(response.status)] += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    failures[type(exc).__name__] += 1
                latencies.append((time.perf_counter() - began) * 1000)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return time.perf_counter() - began, latencies, sum(failures.values()), failures


def throughput(target: Target, sandbox: subprocess.Popen[bytes], round_: int) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "benchmark": "compare_throughput_run", "target": target.name, "round": round_,
        "clients": CLIENTS, "requests": THROUGHPUT_REQUESTS, "upstream_latency_ms": UPSTREAM_LATENCY_MS,
    }  # fmt: skip
    with measured(target, sandbox, figures):
        elapsed, latencies, errors, failures = asyncio.run(_load(target, CLIENTS, THROUGHPUT_REQUESTS))
        figures |= {
            "runs_per_s": round(THROUGHPUT_REQUESTS / elapsed, 1),
            "errors": errors,
            "error_kinds": dict(failures),
            "added_ms_p50": round(statistics.median(latencies) - UPSTREAM_LATENCY_MS, 1),
            "added_ms_p95": round(quantile(latencies, 95) - UPSTREAM_LATENCY_MS, 1),
        }
    return figures


AVERAGED = [
    "runs_per_s", "added_ms_p50", "added_ms_p95", "web_cpu_ms_per_run", "sandbox_cpu_ms_per_run",
    "postgres_backends_cpu_ms_per_run", "postgres_all_cpu_ms_per_run", "postgres_commits_per_run",
    "wal_sync_per_run", "wal_write_per_run", "wal_records_per_run",
]  # fmt: skip


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    figures: dict[str, Any] = {"benchmark": "compare_throughput", "clients": CLIENTS, "upstream_latency_ms": 200}
    names = list(dict.fromkeys(run["target"] for run in runs))
    for name in names:
        mine = [run for run in runs if run["target"] == name]
        figures[name] = {key: round(statistics.mean(run[key] for run in mine), 3) for key in AVERAGED}
        figures[name]["errors"] = sum(run["errors"] for run in mine)
        figures[name]["lock_samples"] = sum(run["lock_samples"] for run in mine)
        figures[name]["lock_samples_with_waits"] = sum(run["lock_samples_with_waits"] for run in mine)
        figures[name]["cap_row_lock_waits"] = sum(run["cap_row_lock_waits"] for run in mine)
        waits: Counter[str] = Counter()
        for run in mine:
            waits.update(run["lock_waits"])
        figures[name]["lock_waits"] = dict(waits)
    sandbox = figures["sandbox"]["runs_per_s"]
    figures["ideal_runs_per_s"] = CLIENTS * 1000 / UPSTREAM_LATENCY_MS
    if "litellm" in figures:
        figures["litellm_to_sandbox_runs_per_s"] = ratio(figures["litellm"]["runs_per_s"], sandbox)
    for name in tollgates(names):
        figures[f"{name}_to_sandbox_runs_per_s"] = ratio(figures[name]["runs_per_s"], sandbox)
        for label, base in baselines(name, names).items():
            for key in ("runs_per_s", "web_cpu_ms_per_run"):
                figures[f"{name}_to_{label}_{key}"] = ratio(figures[name][key], figures[base][key])
    return figures


def targets(seq: dict[str, Any], stream: dict[str, Any], load: dict[str, Any], litellm: bool) -> dict[str, Any]:
    """The issue's targets for production's server (the first in BENCH_SERVERS), measured as ratios in this
    one run (None where LiteLLM did not run). The compatible endpoint's prompt-bound call should cost about
    what a run costs, taken here as within a fifth of the run endpoint's figures."""
    name = f"tollgate:{SERVERS[0]}"
    anthropic, freeform = f"tollgate-anthropic:{SERVERS[0]}", f"tollgate-anthropic-freeform:{SERVERS[0]}"
    tollgate = load[name]
    cap_waits = tollgate["cap_row_lock_waits"]
    errors = {"": load[name]["errors"], "anthropic_": load[anthropic]["errors"]}
    errors["anthropic_freeform_"] = load[freeform]["errors"]
    checks: dict[str, tuple[Any, bool | None]] = {
        "added_p50_to_litellm <= 0.3": (seq.get(f"{name}_to_litellm_added_p50"), None),
        "runs_per_s_to_litellm >= 3": (load.get(f"{name}_to_litellm_runs_per_s"), None),
        "runs_per_s_to_sandbox >= 0.5": (load[f"{name}_to_sandbox_runs_per_s"], None),
        "stream_added_ttft_to_litellm <= 0.3": (stream.get(f"{name}_to_litellm_added_p50"), None),
        "wal_flushes_per_run == 1": (tollgate["wal_sync_per_run"], round(tollgate["wal_sync_per_run"], 1) == 1),
        "cap_row_lock_waits == 0": (cap_waits, cap_waits == 0),
        "anthropic_added_p50_to_run_endpoint <= 1.2": (seq[f"{anthropic}_to_run_endpoint_added_p50"], None),
        "anthropic_stream_added_ttft_to_run_endpoint <= 1.2": (stream[f"{anthropic}_to_run_endpoint_added_p50"], None),
        "anthropic_runs_per_s_to_run_endpoint >= 0.8": (load[f"{anthropic}_to_run_endpoint_runs_per_s"], None),
        **{f"{label}errors == 0": (count, count == 0) for label, count in errors.items()},
    }
    bounds = {
        "<= 0.3": lambda v: v <= 0.3, ">= 3": lambda v: v >= 3, ">= 0.5": lambda v: v >= 0.5,
        "<= 1.2": lambda v: v <= 1.2, ">= 0.8": lambda v: v >= 0.8,
    }  # fmt: skip
    result: dict[str, Any] = {"benchmark": "compare_targets", "server": name, "litellm_ran": litellm}
    for name, (value, met) in checks.items():
        if met is None and value is not None:
            met = next(check(value) for bound, check in bounds.items() if name.endswith(bound))
        result[name] = {"measured": value, "met": met}
    return result


def pool_size(server: str) -> int:
    """Each worker process's share of the connection budget (DATABASE_POOL_MAX_SIZE)."""
    command = server_command(server, 0)
    workers = int(command[command.index("--workers") + 1]) if "--workers" in command else deploy_settings()["workers"]
    return max(2, min(20, CONNECTIONS // len(SERVERS) // workers))


def described(server: str) -> str:
    """A server's command line (port 0), with its pool size and, for production's, its settings."""
    program, *arguments = server_command(server, 0)
    command = [Path(program).name, *arguments]
    if server == "deploy":
        command.extend(f"{name}={value}" for name, value in deploy_settings().items() if name != "bind")
    return " ".join([f"DATABASE_POOL_MAX_SIZE={pool_size(server)}", *command])


def load_average(moment: str) -> dict[str, Any]:
    one, five, fifteen = os.getloadavg()
    return {
        "benchmark": "compare_machine",
        "moment": moment,
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average": [round(one, 2), round(five, 2), round(fifteen, 2)],
        "cpus": os.cpu_count(),
    }


def emit(figures: dict[str, Any]) -> None:
    print(json.dumps(figures), flush=True)


def main() -> None:
    emit(load_average("start"))
    sandbox_port, proxy_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env = environment(sandbox_port, DATABASE) | {"REDIS_URL": REDIS}
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", str(sandbox_port)], cwd=ROOT, stdout=subprocess.DEVNULL
    )
    servers: list[subprocess.Popen[bytes]] = [sandbox]
    try:
        try:
            litellm_command: Path | None = install_litellm()
            litellm_note = f"litellm[proxy]=={LITELLM_VERSION} in {LITELLM_VENV.relative_to(ROOT)}"
        except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
            litellm_command, litellm_note = None, f"LiteLLM not compared: {exc}"
        token = prepare(env, DATABASE)
        freeform = freeform_token(env)
        wait_for(sandbox_port)
        tollgate = []
        for server in SERVERS:
            web_port = free_port()
            web = serve(env | {"DATABASE_POOL_MAX_SIZE": str(pool_size(server))}, web_port, server)
            servers.append(web)
            tollgate.append(tollgate_target(f"tollgate:{server}", f"http://127.0.0.1:{web_port}", token, web))
        for target in tollgate:  # every worker process loads Django on its first request: slow on a busy machine
            httpx2.post(target.url, json=target.body, headers=target.headers, timeout=300).raise_for_status()
        request = httpx2.get(f"{sandbox_url}/_sandbox/requests").json()["requests"][-1]["body"]
        request.pop("stream", None)
        # The compatible endpoint, served by production's server beside its run endpoint, asked what a run asks.
        production, bodies = tollgate[0], anthropic_bodies(request)
        base_url = production.url.removesuffix(RUN_PATH) + "/anthropic"
        compatible = [
            sdk_target(f"tollgate-anthropic:{SERVERS[0]}", base_url, bodies["prompt-bound"], production.process, token),
            sdk_target(
                f"tollgate-anthropic-freeform:{SERVERS[0]}", base_url, bodies["free-form"], production.process, freeform
            ),
        ]
        for target in compatible:
            target.call()
        sequence = [sdk_target("sdk", sandbox_url, request, None)]
        if litellm_command is not None:
            try:
                proxy = start_litellm(litellm_command, proxy_port, sandbox_url, request["model"])
                servers.append(proxy)
                litellm = sdk_target("litellm", f"http://127.0.0.1:{proxy_port}", request, proxy, PROXY_KEY)
                litellm.call()
                sequence.append(litellm)
            except (RuntimeError, anthropic.APIError) as exc:
                litellm_note = f"LiteLLM not compared: {exc}"
        has_litellm = len(sequence) == 2
        sequence.extend(tollgate + compatible)
        emit({
            "benchmark": "compare_setup", "litellm": litellm_note,
            "servers": {f"tollgate:{server}": described(server) for server in SERVERS},
            "anthropic_bodies": {target.name: target.body for target in compatible},
        })  # fmt: skip
        # Statements and round trips per call (pg_stat_statements is not preloaded).
        statements.measure(env, token, freeform)
        seq = sequential(sequence, ROUNDS)
        emit(seq)
        stream = streaming(sequence, STREAM_ROUNDS)
        emit(stream)
        alone = sdk_target("sandbox", sandbox_url, request, None)
        order = [alone, *sequence[1:]]
        runs = []
        httpx2.post(f"{sandbox_url}/_sandbox/latency", json={"ms": UPSTREAM_LATENCY_MS}).raise_for_status()
        try:
            for round_, targets_in_order in enumerate((order, order[::-1]), start=1):
                for target in targets_in_order:
                    runs.append(throughput(target, sandbox, round_))
                    emit(runs[-1])
        finally:
            httpx2.post(f"{sandbox_url}/_sandbox/latency", json={"ms": 0}).raise_for_status()
        load = summary(runs)
        emit(load)
        emit(targets(seq, stream, load, has_litellm))
    finally:
        for process in reversed(servers):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        emit(load_average("end"))


if __name__ == "__main__":
    main()
