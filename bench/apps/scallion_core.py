"""scallion's data-driven core without the facade: ``build_server`` over a ``wrap_routes`` table.

Handlers take the request dict and return response dicts; the websocket echo is a ``@websocket`` generator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from scallion import build_server, standard_not_found, websocket, ws_send
from scallion.middlewares import apply_middleware, wrap_routes
from scallion.response import json, text

from . import HELLO, JSON_DATA


async def hello(request: dict[str, Any]) -> dict[str, Any]:
    """``GET /``."""
    return text(HELLO)


async def json_response(request: dict[str, Any]) -> dict[str, Any]:
    """``GET /json``."""
    return json(JSON_DATA)


@websocket  # type: ignore[untyped-decorator]  # scallion types `websocket` as Any
async def echo(scope: dict[str, Any], receiver: AsyncIterator[str | bytes]) -> AsyncIterator[dict[str, Any]]:
    """``WS /ws``: echo every message."""
    async for message in receiver:
        yield ws_send(message)


routes = [
    ("/", ["GET"], hello),
    ("/json", ["GET"], json_response),
    ("/ws", ["WS"], echo),
]

# max_message_rate off, as in scallion_app.py: a benchmark client is faster than the default 1000 messages/s.
app = build_server(apply_middleware(wrap_routes(routes))(standard_not_found), max_message_rate=None)
