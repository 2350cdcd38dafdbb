"""Type aliases shared by every module: the data that flows through scallion."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
"""An ASGI scope."""
Message = MutableMapping[str, Any]
"""An ASGI event."""
Receive = Callable[[], Awaitable[Message]]
"""The ASGI ``receive`` callable."""
Send = Callable[[Message], Awaitable[None]]
"""The ASGI ``send`` callable."""
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
"""An ASGI 3 application."""

Request = dict[str, Any]
"""A request: the ASGI scope plus ``headers`` (dict), ``headers_list``, ``body``, ``method``, ``config``."""
Response = dict[str, Any]
"""A response: ``status`` plus optional ``body``, ``headers``, ``stream``, ``cookies``."""
Handler = Callable[..., Awaitable[Any]]
"""``async def handler(request, *route_params) -> response`` (or a websocket session)."""
Middleware = Callable[[Handler, Request], Awaitable[Any]]
"""``async def middleware(handler, request) -> response``."""
MiddlewareFactory = Callable[[Middleware], Middleware]
"""``wrap_x(next_middleware) -> middleware``."""
Hook = Callable[[Request], Any]
"""A websocket hook ``on_connect``/``on_disconnect``/``on_close``: ``(scope) -> None`` or an awaitable."""
