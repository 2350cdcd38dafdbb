"""Reading a request: headers, cookies, query parameters, and the attribute view shared by
``request`` and ``websocket``."""

from __future__ import annotations

from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl, unquote

from .types import Request

header_names: dict[bytes, str] = {}
"""Header names already decoded, by their bytes as the server sent them: requests repeat the same few."""

SHARED_VALUES = frozenset(
    [
        "accept",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "connection",
        "content-type",
        "dnt",
        "host",
        "origin",
        "pragma",
        "priority",
        "sec-ch-ua",
        "sec-ch-ua-mobile",
        "sec-ch-ua-platform",
        "sec-fetch-dest",
        "sec-fetch-mode",
        "sec-fetch-site",
        "sec-fetch-user",
        "sec-websocket-extensions",
        "sec-websocket-version",
        "te",
        "upgrade",
        "upgrade-insecure-requests",
        "user-agent",
        "x-forwarded-proto",
        "x-requested-with",
    ]
)
"""Request headers whose values many clients and requests share (never credentials, cookies or ids): their
decoded values are remembered."""

header_values: dict[bytes, str] = {}
"""Decoded values of :data:`SHARED_VALUES` headers, by their bytes (at most 1024, each at most 256 bytes)."""


def header_name(key: bytes) -> str:
    """A header name decoded (lower-case), remembered for the next requests."""
    name = key.lower().decode("latin-1")
    if len(header_names) < 1024:
        header_names[key] = name
    return name


def header_text(name: str, value: bytes) -> str:
    """A header value decoded, remembered if ``name`` is one of :data:`SHARED_VALUES`."""
    text = value.decode() if value.isascii() else value.decode("latin-1")
    if name in SHARED_VALUES and len(value) <= 256 and len(header_values) < 1024:
        header_values[value] = text
    return text


def headers_dict(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI headers -> ``{lower-case name: value}``; repeated names are joined with ``,`` (cookies with ``; ``).
    Values are latin-1 (ASGI); an ASCII value decodes by the codec-free fast path. Names, and the values of
    :data:`SHARED_VALUES` headers, are decoded once and remembered (a dict lookup costs less than a decode)."""
    headers: dict[str, str] = {}
    names = header_names
    values = header_values
    for key, value in raw:
        try:
            name = names[key]
        except KeyError:  # a name not seen yet (or the cache is full)
            name = header_name(key)
        text = values.get(value)
        if text is None:
            text = header_text(name, value)
        if name in headers:
            headers[name] += ("; " if name == "cookie" else ",") + text
        else:
            headers[name] = text
    return headers


def parse_cookies(header: str) -> dict[str, str]:
    """A ``Cookie`` header -> ``{name: value}``; malformed pairs are skipped, quotes around values removed,
    %-escapes decoded (the inverse of how scallion writes cookies)."""
    cookies: dict[str, str] = {}
    for chunk in header.split(";"):
        name, sep, value = chunk.partition("=")
        name = name.strip()
        if not sep or not name:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        cookies.setdefault(name, unquote(value) if "%" in value else value)
    return cookies


class QueryParams(dict[str, Any]):
    """Parameters by name: one value -> ``str``, repeated -> ``list[str]``; a missing name reads as ``None``
    by item (``q["x"]``) or by attribute (``q.x``)."""

    def __missing__(self, key: str) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self.get(name)


def parse_query(query: str | bytes) -> QueryParams:
    """A query string (or urlencoded form) -> :class:`QueryParams`; UTF-8, blank values kept as ``""``."""
    text = query.decode("utf-8", "replace") if isinstance(query, bytes) else query
    params = QueryParams()
    if not text:
        return params
    if "%" in text or "+" in text:
        pairs = parse_qsl(text, keep_blank_values=True)
    else:
        pairs = [(name, value) for name, _, value in (part.partition("=") for part in text.split("&")) if name]
    for name, value in pairs:
        if name in params:
            previous = params[name]
            params[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            params[name] = value
    return params


WEBSOCKET_SCHEMES = {"http": "ws", "https": "wss"}
"""The websocket scheme of an HTTP one: what ``websocket.scheme`` reads where a server put the HTTP scheme."""


class ScopeView:
    """Attributes read off a request dict (``scope``), computed once on first use."""

    scope: Request

    @property
    def path(self) -> str:
        """The request path, e.g. ``/chat/lobby``."""
        return str(self.scope["path"])

    @property
    def scheme(self) -> str:
        """``http``/``https`` for requests, ``ws``/``wss`` for websockets, also where the server puts ``http``/
        ``https`` (or, as daphne does, nothing) in a websocket scope."""
        if self.scope.get("type") == "websocket":
            scheme = str(self.scope.get("scheme", "ws"))
            return WEBSOCKET_SCHEMES.get(scheme, scheme)
        return str(self.scope.get("scheme", "http"))

    @cached_property
    def headers(self) -> dict[str, str]:
        """Request headers, lower-case names."""
        headers = self.scope.get("headers")
        if isinstance(headers, dict):
            return headers
        return headers_dict(headers or [])

    @cached_property
    def host(self) -> str:
        """The ``Host`` header (or the server address when there is none)."""
        host = self.headers.get("host")
        if host:
            return host
        server = self.scope.get("server")
        return f"{server[0]}:{server[1]}" if server else ""

    @cached_property
    def cookies(self) -> dict[str, str]:
        """Request cookies by name."""
        cookies = self.scope.get("cookies")
        if isinstance(cookies, dict):
            return cookies
        return parse_cookies(self.headers.get("cookie", ""))

    @cached_property
    def query_params(self) -> QueryParams:
        """URL query parameters; missing names read as ``None``."""
        params = self.scope.get("query_params")
        if isinstance(params, QueryParams):
            return params
        return parse_query(self.scope.get("query_string", b""))

    @property
    def path_params(self) -> dict[str, Any]:
        """Values of the route's ``{param}`` placeholders."""
        return dict(self.scope.get("path_params") or {})

    @property
    def client(self) -> tuple[str, int] | None:
        """``(host, port)`` of the peer, when the server knows it."""
        client = self.scope.get("client")
        return (client[0], client[1]) if client else None
