"""``wrap_origin``: refuse websocket handshakes (and optionally HTTP writes) from foreign origins.

Browsers let any page open a websocket to any server and send the user's cookies along; only the
``Origin`` header tells who asked. Checking it stops cross-site websocket hijacking.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from ..response import text
from ..types import Handler, Middleware, MiddlewareFactory, Request

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def _host_of(origin: str) -> str | None:
    """``https://Example.com:443`` -> ``example.com``; ``None`` for ``null`` or garbage."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if port is not None and str(port) != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{port}"
    return host


def _strip_default_port(host: str) -> str:
    host = host.strip().lower()
    for port in (":80", ":443"):
        if host.endswith(port):
            return host[: -len(port)]
    return host


def wrap_origin(
    allowed_origins: str | Iterable[str] = (),
    *,
    allow_same_origin: bool = True,
    allow_missing: bool = True,
    http: bool = False,
) -> MiddlewareFactory:
    """Refuse websocket handshakes whose ``Origin`` is not allowed, with ``403 Forbidden``.

    Allowed are the ``allowed_origins`` (e.g. ``"https://app.example.com"``; ``"*"`` allows any), the
    server's own origin when ``allow_same_origin`` (the ``Origin`` host equals the ``Host`` header), and
    requests without an ``Origin`` header when ``allow_missing`` (browsers always send one on websockets;
    other clients often do not). With ``http=True``, HTTP requests with an unsafe method (not GET, HEAD,
    OPTIONS) are checked the same way (a CSRF defence); otherwise HTTP passes through untouched.
    """
    listed = [allowed_origins] if isinstance(allowed_origins, str) else list(allowed_origins)
    any_origin = "*" in listed
    allowed = frozenset(origin.strip().rstrip("/").lower() for origin in listed)

    def permitted(request: Request) -> bool:
        headers = request["headers"]
        origin = headers.get("origin")
        if origin is None:
            return allow_missing
        if any_origin or origin.lower() in allowed:
            return True
        if allow_same_origin:
            host = headers.get("host")
            own = _host_of(origin)
            return host is not None and own is not None and own == _strip_default_port(host)
        return False

    def wrap(next_middleware: Middleware) -> Middleware:
        async def origin_check(handler: Handler, request: Request) -> Any:
            method = request["method"]
            if (method == "WS" or (http and method not in SAFE_METHODS)) and not permitted(request):
                return text("Forbidden: origin not allowed", 403)
            return await next_middleware(handler, request)

        return origin_check

    return wrap
