"""``wrap_cors``: Cross-Origin Resource Sharing (preflights answered here, headers added to responses)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..response import text
from ..types import Handler, Middleware, MiddlewareFactory, Request, Response

SAFELISTED_HEADERS = frozenset({"accept", "accept-language", "content-language", "content-type"})
"""Request headers a browser never asks permission for."""
DEFAULT_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _names(values: str | Iterable[str], lower: bool = True) -> list[str]:
    items = [values] if isinstance(values, str) else list(values)
    return [item.strip().lower() if lower else item.strip() for item in items]


def _add_vary(headers: dict[str, Any]) -> None:
    vary = headers.get("vary")
    if not vary:
        headers["vary"] = "Origin"
    elif vary != "*" and "origin" not in vary.lower():
        headers["vary"] = f"{vary}, Origin"


def wrap_cors(
    allow_origins: str | Iterable[str] = "*",
    allow_methods: str | Iterable[str] = DEFAULT_METHODS,
    allow_headers: str | Iterable[str] = (),
    allow_credentials: bool = False,
    expose_headers: str | Iterable[str] = (),
    max_age: int = 600,
) -> MiddlewareFactory:
    """Answer CORS preflights and add ``Access-Control-*`` headers to cross-origin responses.

    ``allow_origins``: ``"*"`` or origins such as ``"https://example.com"``. ``allow_methods`` and
    ``allow_headers`` may be ``"*"`` too. A preflight (``OPTIONS`` with ``Origin`` and
    ``Access-Control-Request-Method``) gets ``204`` with the allowed methods, headers and ``max_age``, or
    ``400`` when the origin, method or a header is not allowed; the handler is not called. Other requests
    with an allowed ``Origin`` get ``Access-Control-Allow-Origin`` (plus ``Vary: Origin`` whenever the value
    depends on the origin). With ``allow_credentials`` the origin is echoed, never ``*``, as the Fetch
    standard requires. Websocket handshakes are passed through untouched (use ``wrap_origin`` for them).
    """
    origins = _names(allow_origins)
    any_origin = "*" in origins
    allowed_origins = frozenset(origin.rstrip("/") for origin in origins)
    methods = _names(allow_methods, lower=False)
    any_method = "*" in methods
    allowed_methods = frozenset(method.upper() for method in methods)
    headers_allowed = _names(allow_headers)
    any_header = "*" in headers_allowed
    allowed_headers = SAFELISTED_HEADERS | frozenset(headers_allowed)
    star = any_origin and not allow_credentials
    """The ``Access-Control-Allow-Origin`` value is the constant ``*`` (no ``Vary: Origin`` needed)."""

    simple: dict[str, str] = {}
    if allow_credentials:
        simple["access-control-allow-credentials"] = "true"
    exposed = _names(expose_headers, lower=False)
    if exposed:
        simple["access-control-expose-headers"] = ", ".join(exposed)
    preflight: dict[str, str] = {"access-control-max-age": str(max_age)}
    if allow_credentials:
        preflight["access-control-allow-credentials"] = "true"
    if not any_method:
        preflight["access-control-allow-methods"] = ", ".join(sorted(allowed_methods))
    if not any_header and headers_allowed:
        preflight["access-control-allow-headers"] = ", ".join(headers_allowed)

    def answer_preflight(origin: str, headers: dict[str, str]) -> Response:
        method = headers["access-control-request-method"].strip()
        requested = [h.strip().lower() for h in headers.get("access-control-request-headers", "").split(",")]
        requested = [h for h in requested if h]
        if not (any_origin or origin in allowed_origins):
            return text("CORS preflight refused: origin not allowed", 400, {"vary": "Origin"})
        if not (any_method or method.upper() in allowed_methods):
            return text(f"CORS preflight refused: method {method} not allowed", 400, {"vary": "Origin"})
        refused = [h for h in requested if h not in allowed_headers]
        if refused and not any_header:
            return text(f"CORS preflight refused: headers {', '.join(refused)} not allowed", 400, {"vary": "Origin"})
        reply = dict(preflight)
        reply["access-control-allow-origin"] = "*" if star else origin
        if not star:
            reply["vary"] = "Origin"
        if any_method:
            reply["access-control-allow-methods"] = method
        if any_header and requested:
            reply["access-control-allow-headers"] = ", ".join(requested)
        return {"status": 204, "body": b"", "headers": reply}

    def wrap(next_middleware: Middleware) -> Middleware:
        async def cors(handler: Handler, request: Request) -> Any:
            headers = request["headers"]
            origin = headers.get("origin")
            if origin is None or request["method"] == "WS":
                return await next_middleware(handler, request)
            if request["method"] == "OPTIONS" and "access-control-request-method" in headers:
                return answer_preflight(origin, headers)
            response = await next_middleware(handler, request)
            if type(response) is not dict:
                return response
            merged = dict(response.get("headers") or {})
            if star:
                merged["access-control-allow-origin"] = "*"
            else:
                _add_vary(merged)
                if any_origin or origin in allowed_origins:
                    merged["access-control-allow-origin"] = origin
                else:
                    return {**response, "headers": merged}
            merged.update(simple)
            return {**response, "headers": merged}

        return cors

    return wrap
