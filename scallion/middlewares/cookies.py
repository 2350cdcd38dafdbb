"""``wrap_cookies``: request cookies as ``request["cookies"]``.

Response cookies need no middleware: the core writes one ``Set-Cookie`` per entry of a response's
``cookies`` (see :func:`scallion.cookies.set_cookie_header`). To delete a cookie, set it again with the same
``path`` (and ``domain``) and ``max_age`` 0: ``{"session": {"value": "", "path": "/", "max_age": 0}}``.
"""

from __future__ import annotations

from typing import Any

from ..datastructures import parse_cookies
from ..types import Handler, Middleware, Request


def wrap_cookies(next_middleware: Middleware) -> Middleware:
    """Set ``request["cookies"]`` (``{name: value}``, %-escapes decoded) from the ``Cookie`` header, for
    HTTP requests and websocket handshakes alike."""

    async def cookies(handler: Handler, request: Request) -> Any:
        header = request["headers"].get("cookie")
        request["cookies"] = parse_cookies(header) if header else {}
        return await next_middleware(handler, request)

    return cookies
