"""Who is asking, and whom: the ``Origin`` and ``Host`` rules, ``wrap_origin`` and ``wrap_allowed_hosts``.

Browsers let any page open a websocket to any server and send the user's cookies along; only the ``Origin``
header tells who asked. Checking it stops cross-site websocket hijacking. A page can also reach a server on
the user's machine or network under its own domain name (DNS rebinding); only the ``Host`` header tells which
name the request addressed, and an allowlist of host names stops it.

This module is the one place that parses and matches origins and hosts: :class:`OriginPolicy` and
:class:`HostPolicy` are used by ``App`` (its defaults, ``allowed_origins`` and ``allowed_hosts``) and by the
two middlewares of the data-driven core.

Theory of operation. An origin is ``scheme://host[:port]`` (RFC 6454), with the port defaulting to the
scheme's; a ``Host`` header is ``host[:port]``. Both are lower-cased and parsed strictly: anything else (a path,
user info, a bad port, several values) is malformed and never matches. A name pattern is a name, or
``*.`` + a name for its subdomains (any depth, never the name itself). The same-origin rule compares the
Origin's host and port with the ``Host`` header's, a ``Host`` without a port meaning the Origin scheme's
default port; the scheme itself is not compared, since behind a TLS-terminating proxy the server cannot know it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..response import text
from ..types import Handler, Middleware, MiddlewareFactory, Request

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
"""The schemes whose origins the same-origin rule compares with the ``Host`` header, and their ports."""

_NAME = r"(?:\[[0-9a-f:.]+\]|[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?)"
_PORT = r"(?::([0-9]{1,5}))?"
_ORIGIN = re.compile(rf"([a-z][a-z0-9+.-]*)://(\*\.)?({_NAME}){_PORT}")
_HOST = re.compile(rf"(\*\.)?({_NAME}){_PORT}")
_CACHE_SIZE = 256

ORIGIN_FORMAT = (
    "write a scheme, a host and an optional port, such as 'https://example.com' or 'http://localhost:8000'; "
    "'https://*.example.com' for its subdomains (a wildcard only as the first label); 'null' for the null "
    "origin; '*' for any origin (unsafe)"
)
HOST_FORMAT = (
    "write a host name or address and an optional port, without a scheme, such as 'example.com', "
    "'*.example.com' (its subdomains; a wildcard only as the first label), '127.0.0.1:8000' or '[::1]'"
)

Origin = tuple[str, str, int | None]
"""A parsed origin: ``(scheme, host, port)``; the port is the scheme's default when not written."""


def _port(digits: str | None, default: int | None) -> int | None:
    if digits is None:
        return default
    port = int(digits)
    if port > 65535:
        raise ValueError(digits)
    return port


def parse_origin(origin: str) -> Origin | None:
    """``"HTTPS://Example.com"`` -> ``("https", "example.com", 443)``; None for ``null`` or a malformed value."""
    match = _ORIGIN.fullmatch(origin.lower())
    if match is None or match[2]:
        return None
    scheme, name, digits = match[1], match[3].rstrip("."), match[4]
    try:
        return scheme, name, _port(digits, DEFAULT_PORTS.get(scheme))
    except ValueError:
        return None


def parse_host(host: str) -> tuple[str, int | None] | None:
    """A ``Host`` header -> ``(name, port or None)``, lower-cased; None for a malformed value."""
    match = _HOST.fullmatch(host.lower())
    if match is None or match[1]:
        return None
    try:
        return match[2].rstrip("."), _port(match[3], None)
    except ValueError:
        return None


def _name_matches(name: str, pattern: str) -> bool:
    """``pattern`` is a name, or ``.`` + a name for its subdomains (from ``*.example.com``)."""
    return name.endswith(pattern) if pattern[0] == "." else name == pattern


class OriginPolicy:
    """Which ``Origin`` headers are allowed: the ``allowed_origins``, the server's own origin (when
    ``allow_same_origin``) and no ``Origin`` at all (when ``allow_missing``). Bad entries raise ValueError."""

    def __init__(
        self,
        allowed_origins: str | Iterable[str] = (),
        *,
        allow_same_origin: bool = True,
        allow_missing: bool = True,
    ) -> None:
        listed: list[Any] = [allowed_origins] if isinstance(allowed_origins, str) else list(allowed_origins)
        self.allow_same_origin = allow_same_origin
        self.allow_missing = allow_missing
        self.any_origin = False
        self.allow_null = False
        self.exact: set[Origin] = set()
        self.wildcards: list[Origin] = []
        """``(scheme, ".example.com", port)`` for ``scheme://*.example.com:port``."""
        for entry in listed:
            if not isinstance(entry, str):
                raise ValueError(f"allowed_origins: {entry!r} is not a string; {ORIGIN_FORMAT}")
            origin = entry.strip().lower()
            if origin == "*":
                self.any_origin = True
                continue
            if origin == "null":
                self.allow_null = True
                continue
            match = _ORIGIN.fullmatch(origin.removesuffix("/"))
            try:
                if match is None or (match[2] and match[3][0] == "["):
                    raise ValueError(entry)
                scheme, name = match[1], match[3].rstrip(".")
                parsed = (scheme, name, _port(match[4], DEFAULT_PORTS.get(scheme)))
            except ValueError:
                raise ValueError(f"allowed_origins: {entry!r} is not an origin; {ORIGIN_FORMAT}") from None
            if match[2]:
                self.wildcards.append((scheme, "." + name, parsed[2]))
            else:
                self.exact.add(parsed)

    def permits(self, headers: Mapping[str, str]) -> bool:
        """Whether a request with these (lower-cased) headers comes from an allowed origin."""
        origin = headers.get("origin")
        if origin is None:
            return self.allow_missing
        if self.any_origin:
            return True
        parsed = parse_origin(origin)
        if parsed is None:
            return self.allow_null and origin.strip().lower() == "null"
        if parsed in self.exact:
            return True
        scheme, name, port = parsed
        for allowed_scheme, suffix, allowed_port in self.wildcards:
            if scheme == allowed_scheme and port == allowed_port and name.endswith(suffix):
                return True
        if not self.allow_same_origin or scheme not in DEFAULT_PORTS:
            return False
        host = headers.get("host")
        own = None if host is None else parse_host(host)
        return own is not None and own[0] == name and (DEFAULT_PORTS[scheme] if own[1] is None else own[1]) == port


class HostPolicy:
    """Which ``Host`` headers are served: ``allowed_hosts`` entries such as ``"example.com"`` (any port),
    ``"*.example.com"`` (its subdomains), ``"127.0.0.1:8000"`` (that port only); ``"*"`` is any host. A
    missing or malformed ``Host`` is refused. Bad entries (and an empty list) raise ValueError."""

    def __init__(self, allowed_hosts: str | Iterable[str]) -> None:
        listed: list[Any] = [allowed_hosts] if isinstance(allowed_hosts, str) else list(allowed_hosts)
        if not listed:
            raise ValueError("allowed_hosts is empty, which would refuse every request; pass None to allow any host")
        self.any_host = False
        self.patterns: list[tuple[str, int | None]] = []
        """``(name or ".suffix", port or None for any port)``."""
        for entry in listed:
            if not isinstance(entry, str):
                raise ValueError(f"allowed_hosts: {entry!r} is not a string; {HOST_FORMAT}")
            host = entry.strip().lower()
            if host == "*":
                self.any_host = True
                continue
            match = _HOST.fullmatch(host)
            try:
                if match is None or (match[1] and match[2][0] == "["):
                    raise ValueError(entry)
                port = _port(match[3], None)
            except ValueError:
                raise ValueError(f"allowed_hosts: {entry!r} is not a host; {HOST_FORMAT}") from None
            name = match[2].rstrip(".")
            self.patterns.append(("." + name if match[1] else name, port))
        self._seen: dict[str, bool] = {}

    def permits(self, host: str | None) -> bool:
        """Whether a request with this ``Host`` header is served."""
        if self.any_host:
            return True
        if host is None:
            return False
        known = self._seen.get(host)
        if known is not None:
            return known
        parsed = parse_host(host)
        allowed = parsed is not None and any(
            _name_matches(parsed[0], name) and (port is None or port == parsed[1]) for name, port in self.patterns
        )
        if len(self._seen) < _CACHE_SIZE:
            self._seen[host] = allowed
        return allowed


def origin_refused() -> dict[str, Any]:
    """The answer to a websocket handshake from an origin that is not allowed: 403."""
    return text("Forbidden: origin not allowed", 403)


def host_refused(method: str) -> dict[str, Any]:
    """The answer to a request for a host that is not allowed: 400 for HTTP, 403 for a websocket handshake."""
    if method == "WS":
        return text("Forbidden: host not allowed", 403)
    return text("Bad Request: host not allowed", 400)


def wrap_origin(
    allowed_origins: str | Iterable[str] = (),
    *,
    allow_same_origin: bool = True,
    allow_missing: bool = True,
    http: bool = False,
) -> MiddlewareFactory:
    """Refuse websocket handshakes whose ``Origin`` is not allowed, with ``403 Forbidden``.

    Allowed are the ``allowed_origins`` (e.g. ``"https://app.example.com"``, ``"https://*.example.com"`` for
    its subdomains; ``"*"`` allows any), the server's own origin when ``allow_same_origin`` (the ``Origin`` host
    and port equal the ``Host`` header's), and requests without an ``Origin`` header when ``allow_missing``
    (browsers always send one on websockets; other clients often do not). With ``http=True``, HTTP requests
    with an unsafe method (not GET, HEAD, OPTIONS) are checked the same way (a CSRF defence); otherwise HTTP
    passes through untouched. Bad entries raise ValueError.
    """
    policy = OriginPolicy(allowed_origins, allow_same_origin=allow_same_origin, allow_missing=allow_missing)
    permits = policy.permits

    def wrap(next_middleware: Middleware) -> Middleware:
        async def origin_check(handler: Handler, request: Request) -> Any:
            method = request["method"]
            if (method == "WS" or (http and method not in SAFE_METHODS)) and not permits(request["headers"]):
                return origin_refused()
            return await next_middleware(handler, request)

        return origin_check

    return wrap


def wrap_allowed_hosts(allowed_hosts: str | Iterable[str] | HostPolicy) -> MiddlewareFactory:
    """Serve only requests whose ``Host`` header is allowed (see :class:`HostPolicy`): others get
    ``400 Bad Request`` (HTTP) or ``403 Forbidden`` (websocket handshakes). A defence against DNS rebinding."""
    policy = allowed_hosts if isinstance(allowed_hosts, HostPolicy) else HostPolicy(allowed_hosts)
    permits = policy.permits

    def wrap(next_middleware: Middleware) -> Middleware:
        async def host_check(handler: Handler, request: Request) -> Any:
            if not permits(request["headers"].get("host")):
                return host_refused(request["method"])
            return await next_middleware(handler, request)

        return host_check

    return wrap
