"""``wrap_routes``: dispatch to the handler of the matching route, passing ``{param}`` values after the request."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Sequence
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


def call_handler(handler: Handler, request: Request) -> Awaitable[Any]:
    """The innermost link of every middleware chain (:func:`~scallion.middlewares.apply_middleware`)."""
    return handler(request)


async def _ready(response: Response) -> Response:
    return response


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
    The table is compiled once, here, and every row checked: a malformed path, methods that are not a list of
    method names, a handler that cannot take the route's values, two handlers for one path and method, or a
    handler of the wrong kind for ``"WS"`` raises ``ValueError`` (see :mod:`scallion.routing`). An undecorated
    async generator function under ``"WS"`` is treated as ``@websocket``.
    """
    router = Router(table)

    static = router.static

    def wrap(next_middleware: Middleware) -> Middleware:
        last = next_middleware is call_handler  # the innermost middleware (as a rule): call the handler itself

        def route(handler: Handler, request: Request) -> Awaitable[Any]:
            matches = static.get(request["path"])
            match = matches.get(request["method"]) if matches is not None else None
            found = match or router.match(request["path"], request["method"])
            if type(found) is Match:
                request["endpoint"] = found.handler
                if found.args:
                    request["path_params"] = found.params
                    if last:
                        return found.handler(request, *found.args)
                    return next_middleware(_Bound(found.handler, found.args), request)
                if last:
                    return found.handler(request)
                return next_middleware(found.handler, request)
            if found is None:
                return next_middleware(handler, request)
            return _ready(_refusal(request, found.allowed, found.redirect))  # type: ignore[union-attr]

        route.router = router  # type: ignore[attr-defined]
        # Innermost, routing is all this link does: a server may route static paths itself (asgi.direct_routes).
        route.direct_router = router if last else None  # type: ignore[attr-defined]
        return route

    wrap.router = router  # type: ignore[attr-defined]
    return wrap
