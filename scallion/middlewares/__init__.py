"""Middlewares: ``wrap_x(next_middleware) -> async def middleware(handler, request) -> response``.

``apply_middleware(*middlewares)(handler)`` composes them around a handler; the first one listed runs first.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from ..types import Handler, Middleware, MiddlewareFactory, Request
from .content_type import wrap_content_type
from .cookies import wrap_cookies
from .cors import wrap_cors
from .json import wrap_json
from .origin import wrap_allowed_hosts, wrap_origin
from .parameters import wrap_parameters
from .routes import call_handler, wrap_routes
from .static import wrap_static


def apply_middleware(*middlewares: MiddlewareFactory) -> Any:
    """Compose ``middlewares`` (outermost first) into a function ``handler -> async def (request)``.

    The chain is built once, here. The glue returns awaitables instead of awaiting them, so composing costs
    no coroutine per request of its own. When the only middleware is ``wrap_routes``, the app carries its
    :class:`~scallion.routing.Router` as ``direct_router``: the server serves static routes by a dict lookup
    (:func:`~scallion.asgi.direct_routes`)."""
    chain: Middleware = call_handler
    for middleware in reversed(middlewares):
        chain = middleware(chain)

    def wrap(handler: Handler) -> Handler:
        def app(request: Request) -> Awaitable[Any]:
            return chain(handler, request)

        app.__qualname__ = getattr(handler, "__qualname__", "handler")
        app.__module__ = getattr(handler, "__module__", __name__)
        app.direct_router = getattr(chain, "direct_router", None)  # type: ignore[attr-defined]  # wrap_routes alone
        return app

    return wrap


__all__ = [
    "apply_middleware",
    "wrap_allowed_hosts",
    "wrap_content_type",
    "wrap_cookies",
    "wrap_cors",
    "wrap_json",
    "wrap_origin",
    "wrap_parameters",
    "wrap_routes",
    "wrap_static",
]
