"""Mistakes ``mypy --strict`` must report (tests/test_typing.py): the proxies are typed, not ``Any``."""

from __future__ import annotations

from scallion import request, websocket


async def wrong() -> int:
    await websocket.send(42)  # E: send takes str | bytes
    print(websocket.no_such_thing)  # E: no such attribute
    return request.method  # E: method is a str
