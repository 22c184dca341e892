"""`python -m sandbox`: the sandbox upstream without loading Django (same as `manage.py sandbox`)."""

from __future__ import annotations

import argparse

from aiohttp import web

from sandbox.server import build_app
from sandbox.state import Config


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Run the Anthropic sandbox upstream.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--batch-seconds", type=float, default=5.0)
    options = parser.parse_args()
    serve(options.host, options.port, Config(latency_ms=options.latency_ms, batch_seconds=options.batch_seconds))


def serve(host: str, port: int, config: Config) -> None:
    print(f"Anthropic sandbox on http://{host}:{port} (Ctrl-C stops it)", flush=True)  # noqa: T201
    web.run_app(
        build_app(config),
        host=host,
        port=port,
        print=None,
        access_log=None,
        backlog=1024,
        handler_cancellation=True,
        shutdown_timeout=1.0,
    )


if __name__ == "__main__":
    main()
