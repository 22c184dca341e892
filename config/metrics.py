"""GET /metrics: Prometheus text format. Every figure is read from the database at scrape time (the
ledger's roll-ups, spend counters, the queue), so it is the same whichever process answers — correct
with any number of web servers and workers. Apps contribute series with `register()` from their
AppConfig.ready.

Access: with TOLLGATE_METRICS_TOKEN set, a scrape must send `Authorization: Bearer <token>`; without
it, only loopback clients are answered. "Loopback" is the client's address as the trusted proxies saw it
(TOLLGATE_TRUSTED_PROXIES), not REMOTE_ADDR: behind a proxy on the same host every request arrives from
127.0.0.1.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse

from config.middleware import client_ip


@dataclass
class Family:
    """One metric family: name, help, type and its samples (labels, value; suffix for histograms)."""

    name: str
    help: str
    type: str
    samples: list[tuple[str, dict[str, Any], float]] = field(default_factory=list)

    def add(self, labels: dict[str, Any], value: Any, suffix: str = "") -> None:
        self.samples.append((suffix, labels, float(value)))


Collector = Callable[[], Iterable[Family]]
_collectors: list[Collector] = []


def register(collector: Collector) -> None:
    if collector not in _collectors:
        _collectors.append(collector)


def _escape(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(value) if value != int(value) else str(int(value))


def render(families: Iterable[Family]) -> str:
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for suffix, labels, value in family.samples:
            text = ",".join(f'{name}="{_escape(label)}"' for name, label in labels.items())
            lines.append(f"{family.name}{suffix}{{{text}}} {_number(value)}" if text else
                         f"{family.name}{suffix} {_number(value)}")  # fmt: skip
    return "\n".join(lines) + "\n"


def _allowed(request: HttpRequest) -> bool:
    token: str = settings.TOLLGATE_METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(sent.encode(), token.encode())
    return _is_loopback(client_ip(request))


def _is_loopback(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:  # a forwarded value that is no address at all
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def metrics(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        raise Http404
    families = [family for collector in _collectors for family in collector()]
    response = HttpResponse(render(families), content_type="text/plain; version=0.0.4; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response
