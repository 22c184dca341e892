"""GET /metrics: Prometheus text format. Every figure is read from the database at scrape time (the
ledger's roll-ups, spend counters, the queue), so it is the same whichever process answers — correct
with any number of web servers and workers. Apps contribute series with `register()` from their
AppConfig.ready (core.metrics).

Access: with TOLLGATE_METRICS_TOKEN set, a scrape must send `Authorization: Bearer <token>`; without
it, only loopback clients are answered. "Loopback" is the client's address as the trusted proxies saw it
(TOLLGATE_TRUSTED_PROXIES), not REMOTE_ADDR: behind a proxy on the same host every request arrives from
127.0.0.1.
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse

from core.context import client_ip
from core.metrics import collect, render


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
    response = HttpResponse(render(collect()), content_type="text/plain; version=0.0.4; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response
