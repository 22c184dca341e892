"""The queue served as in production — the web server as deploy/ configures it, two Celery workers,
PostgreSQL, Redis — against the sandbox at 200 ms latency. Prints one JSON line per figure:

1. throughput: 600 jobs posted by 50 concurrent clients → jobs/s end to end (posted to recorded result);
2. spike: 1,000 jobs posted at once against a sandbox limited to 600 requests/minute, with the queue's
   budget at 590/minute → drain time, 429s the sandbox answered, jobs that did not succeed (target: none).

Needs the machine's PostgreSQL (database `tollgate_bench` is created afresh) and Redis (database 3).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import aiohttp
import httpx2
import redis

from bench.run_endpoint import PG, REDIS, ROOT, VARIABLES, environment, free_port, prepare, serve, wait_for

WORKER_THREADS = 16


def _workers(env: dict[str, str], rpm: int) -> list[subprocess.Popen[bytes]]:
    worker_env = {**env, "TOLLGATE_QUEUE_RPM": str(rpm), "TOLLGATE_QUEUE_CONCURRENCY": str(2 * WORKER_THREADS)}
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "threads", "--concurrency",
               str(WORKER_THREADS), "--loglevel", "WARNING", "--without-gossip", "--without-mingle"]  # fmt: skip
    return [subprocess.Popen([*command, "-n", f"bench{index}@%h"], cwd=ROOT, env=worker_env) for index in range(2)]


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=60)


def _count(sql: str) -> int:
    out = subprocess.run(["psql", f"{PG}/tollgate_bench", "-tAc", sql], check=True, capture_output=True, text=True)
    return int(out.stdout.strip() or 0)


def _clear() -> None:
    subprocess.run(
        ["psql", f"{PG}/tollgate_bench", "-qc", "DELETE FROM prompts_webhookdelivery; DELETE FROM prompts_job;"],
        check=True,
    )


async def _post_all(url: str, token: str, total: int, clients: int) -> int:
    errors = 0
    remaining = total
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:

        async def client() -> None:
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                async with session.post(
                    f"{url}/api/v1/prompts/support-summary/jobs", json={"variables": VARIABLES}, headers=headers
                ) as response:
                    await response.read()
                    errors += response.status != 202

        await asyncio.gather(*(client() for _ in range(clients)))
    return errors


def _drain(total: int, timeout: float) -> float:
    began = time.perf_counter()
    while _count("SELECT count(*) FROM prompts_job WHERE status IN ('succeeded', 'failed')") < total:
        if time.perf_counter() - began > timeout:
            raise RuntimeError("the queue did not drain in time")
        time.sleep(0.2)
    return time.perf_counter() - began


def throughput(url: str, token: str, env: dict[str, str], total: int = 600) -> dict[str, Any]:
    workers = _workers(env, rpm=0)
    try:
        time.sleep(5)  # the workers connect
        began = time.perf_counter()
        rejected = asyncio.run(_post_all(url, token, total, clients=50))
        _drain(total, timeout=600)
        elapsed = time.perf_counter() - began
    finally:
        _stop(workers)
    return {
        "benchmark": "jobs_throughput",
        "workers": 2,
        "threads_per_worker": WORKER_THREADS,
        "upstream_latency_ms": 200,
        "jobs": total,
        "rejected": rejected,
        "jobs_per_s": round(total / elapsed, 1),
        "succeeded": _count("SELECT count(*) FROM prompts_job WHERE status = 'succeeded'"),
    }


def spike(url: str, token: str, env: dict[str, str], sandbox: str, total: int = 1000) -> dict[str, Any]:
    _clear()
    httpx2.post(f"{sandbox}/_sandbox/ratelimit", json={"rpm": 600}).raise_for_status()
    workers = _workers(env, rpm=590)
    try:
        time.sleep(5)
        began = time.perf_counter()
        rejected = asyncio.run(_post_all(url, token, total, clients=50))
        posted = time.perf_counter() - began
        _drain(total, timeout=600)
        elapsed = time.perf_counter() - began
        refused = httpx2.get(f"{sandbox}/_sandbox/ratelimit").json()["rate_limited"]
    finally:
        httpx2.post(f"{sandbox}/_sandbox/ratelimit", json={"rpm": 0})
        _stop(workers)
    return {
        "benchmark": "jobs_spike",
        "jobs": total,
        "sandbox_rpm": 600,
        "queue_rpm": 590,
        "rejected_at_submit": rejected,
        "posted_in_s": round(posted, 1),
        "drained_in_s": round(elapsed, 1),
        "upstream_429s": refused,
        "jobs_not_succeeded": _count("SELECT count(*) FROM prompts_job WHERE status <> 'succeeded'"),
        "target": {"upstream_429s_in_results": 0},
    }


def main() -> None:
    sandbox_port, web_port = free_port(), free_port()
    env = environment(sandbox_port)
    env["CELERY_BROKER_URL"] = env["REDIS_URL"]
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", str(sandbox_port), "--latency-ms", "200"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    web = None
    redis.Redis.from_url(REDIS).flushdb()  # no messages or budgets left from an earlier run
    try:
        token = prepare(env)
        wait_for(sandbox_port)
        web = serve(env, web_port)
        url, sandbox_url = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{sandbox_port}"
        print(json.dumps(throughput(url, token, env)), flush=True)
        print(json.dumps(spike(url, token, env, sandbox_url)), flush=True)
    finally:
        for process in (web, sandbox):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)


if __name__ == "__main__":
    main()
