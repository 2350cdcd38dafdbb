"""Emmett, served over granian's RSGI interface as ``emmett serve`` does (not part of the ASGI matrix)."""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from emmett import App, websocket
from emmett.tools import service

from . import HELLO, JSON_DATA
from .queued import Fanout

# Emmett makes logs/, static/ and languages/ folders under its root path: keep them out of the repository.
ROOT = Path(tempfile.gettempdir()) / "scallion-bench-emmett"
ROOT.mkdir(exist_ok=True)
app = App(__name__, root_path=str(ROOT))

subscribers: set[Callable[[Any], Awaitable[None]]] = set()
"""The sequential broadcast's subscribers."""
fanout: Fanout[Any] = Fanout()
"""The queued broadcast's subscribers."""


@app.route("/", output="str")  # type: ignore[untyped-decorator]
async def hello() -> str:
    """``GET /``."""
    return HELLO


@app.route("/json")  # type: ignore[untyped-decorator]
@service.json  # type: ignore[untyped-decorator]
async def json_response() -> dict[str, str]:
    """``GET /json``."""
    return JSON_DATA


@app.websocket("/ws")  # type: ignore[untyped-decorator]
async def echo() -> None:
    """``WS /ws``: echo every message."""
    await websocket.accept()
    while True:
        await websocket.send(await websocket.receive())


@app.websocket("/sub")  # type: ignore[untyped-decorator]
async def subscribe() -> None:
    """``WS /sub``: stay subscribed until the client leaves."""
    await websocket.accept()
    send = websocket.send
    subscribers.add(send)
    try:
        while True:
            await websocket.receive()
    finally:
        subscribers.discard(send)


@app.websocket("/pub")  # type: ignore[untyped-decorator]
async def publish() -> None:
    """``WS /pub``: send every message to every subscriber."""
    await websocket.accept()
    while True:
        message = await websocket.receive()
        for send in list(subscribers):
            try:
                await send(message)
            except Exception:  # that subscriber has just left
                subscribers.discard(send)


@app.websocket("/subq")  # type: ignore[untyped-decorator]
async def subscribe_queued() -> None:
    """``WS /subq``: a task sends what is published while this reads until the client leaves."""
    await websocket.accept()
    async with fanout.subscriber(websocket.send):
        while True:
            await websocket.receive()


@app.websocket("/pubq")  # type: ignore[untyped-decorator]
async def publish_queued() -> None:
    """``WS /pubq``: queue every message for every subscriber."""
    await websocket.accept()
    while True:
        fanout.publish(await websocket.receive())
