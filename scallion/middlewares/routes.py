"""``wrap_routes``: dispatch to the handler of the matching route, passing ``{param}`` values after the request."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..response import redirect, text
from ..routing import Match, Router
from ..types import Handler, Middleware, MiddlewareFactory, Request, Response


class _Bound:
    """A route handler with its route values: ``bound(request)`` calls ``handler(request, *args)``."""

    __slots__ = ("args", "func")

    def __init__(self, func: Handler, args: tuple[Any, ...]) -> None:
        self.func = func
        self.args = args

    def __call__(self, request: Request) -> Any:
        return self.func(request, *self.args)


def _refusal(request: Request, allowed: set[str], location: str | None) -> Response:
    if location is not None:
        query = request.get("query_string") or b""
        return redirect(location + ("?" + query.decode("latin-1") if query else ""), status=308)
    http = sorted(m for m in allowed if m != "WS")
    if "GET" in http and "HEAD" not in http:
        http = sorted([*http, "HEAD"])
    if not http:
        return text("Upgrade Required: this path serves websockets", 426, {"upgrade": "websocket"})
    return text("Method Not Allowed", 405, {"allow": ", ".join(http)})


def wrap_routes(table: Iterable[tuple[str, Sequence[str], Handler]]) -> MiddlewareFactory:
    """Route requests by path and method with a table of ``(path, methods, handler)``.

    A match calls the rest of the chain with that handler (route values as extra positional arguments, and
    by name in ``request["path_params"]``). No match passes the original handler on (e.g. ``standard_not_found``);
    a path that exists for other methods gets ``405`` with ``Allow`` (``426`` for a websocket-only path).
    The table is compiled once, here; a malformed route raises ``ValueError``.
    """
    router = Router(table)

    def wrap(next_middleware: Middleware) -> Middleware:
        async def route(handler: Handler, request: Request) -> Any:
            found = router.match(request["path"], request["method"])
            if found.__class__ is Match:
                match: Match = found
                request["endpoint"] = match.handler
                if match.args:
                    request["path_params"] = match.params
                    return await next_middleware(_Bound(match.handler, match.args), request)
                return await next_middleware(match.handler, request)
            if found is None:
                return await next_middleware(handler, request)
            return _refusal(request, found.allowed, found.redirect)  # type: ignore[union-attr]

        route.router = router  # type: ignore[attr-defined]
        return route

    wrap.router = router  # type: ignore[attr-defined]
    return wrap
