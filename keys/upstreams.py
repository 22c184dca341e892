"""Where a provider key may be sent: the allow-list of upstream base URLs (TOLLGATE_UPSTREAM_BASE_URLS).

A provider key's secret travels to its `base_url` on every call, so whoever can edit that field could send
the key anywhere. Only the listed origins are accepted: when a key is saved, and again before every call
(the list may have shrunk, or a row been edited in the database). An entry is `scheme://host[:port]`;
without a port it allows the scheme's default port only, and `:*` allows any port (for a local sandbox).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a base URL that is nothing but an origin (an optional "/" path), else None."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username is not None or parts.password is not None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    return scheme, parts.hostname.lower().rstrip("."), port or _DEFAULT_PORTS[scheme]


def _matches(entry: str, origin: tuple[str, str, int]) -> bool:
    any_port = entry.strip().endswith(":*")
    allowed = _origin(entry.strip()[:-2] if any_port else entry)
    if allowed is None:
        return False
    scheme, host, port = allowed
    return scheme == origin[0] and host == origin[1] and (any_port or port == origin[2])


def upstream_url_allowed(url: str) -> bool:
    """Whether a provider key may be sent to `url` (TOLLGATE_UPSTREAM_BASE_URLS)."""
    origin = _origin(url)
    return origin is not None and any(_matches(entry, origin) for entry in settings.TOLLGATE_UPSTREAM_BASE_URLS)
