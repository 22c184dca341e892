"""The sandbox upstream: start-up time, and throughput with hundreds of concurrent connections.

The sandbox is also the upstream of the gateway benchmarks, so it must never be their bottleneck:
with 200 ms of added latency, 500 concurrent clients should see close to 500 / 0.2 = 2,500 answers/s.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
BODY = {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "benchmark " * 20}]}
HEADERS = {"x-api-key": "sk-ant-bench", "anthropic-version": "2023-06-01"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(command: list[str], port: int) -> tuple[subprocess.Popen[bytes], float]:
    started = time.perf_counter()
    env = {**os.environ, "DJANGO_DEBUG": "true"}  # the sandbox needs no secrets; Django's settings do
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.05).close()
            return process, time.perf_counter() - started
        except OSError:
            if time.perf_counter() - started > 30:
                process.kill()
                raise RuntimeError("sandbox did not start") from None
            time.sleep(0.005)


async def load(url: str, concurrency: int, total: int) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(total):
        queue.put_nowait(n)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            nonlocal errors
            while not queue.empty():
                queue.get_nowait()
                began = time.perf_counter()
                async with session.post(f"{url}/v1/messages", json=BODY, headers=HEADERS) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return time.perf_counter() - began, latencies, errors


def main() -> None:
    print("== sandbox upstream ==")
    for label, command in [
        ("python -m sandbox", [sys.executable, "-m", "sandbox"]),
        ("manage.py sandbox", [sys.executable, "manage.py", "sandbox"]),
    ]:
        port = free_port()
        process, seconds = start([*command, "--port", str(port)], port)
        process.terminate()
        process.wait()
        print(f"start-up ({label}): {seconds * 1000:.0f} ms to accept connections")

    port = free_port()
    process, _ = start([sys.executable, "-m", "sandbox", "--port", str(port), "--latency-ms", "200"], port)
    try:
        for concurrency, total in [(100, 1_000), (500, 5_000)]:
            elapsed, latencies, errors = asyncio.run(load(f"http://127.0.0.1:{port}", concurrency, total))
            ideal = concurrency / 0.2
            quantiles = statistics.quantiles(latencies, n=100)
            print(
                f"{concurrency} concurrent, 200 ms latency: {total / elapsed:,.0f} answers/s "
                f"(ideal {ideal:,.0f}), p50 {quantiles[49] * 1000:.0f} ms, p99 {quantiles[98] * 1000:.0f} ms, "
                f"errors {errors}"
            )
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    main()
