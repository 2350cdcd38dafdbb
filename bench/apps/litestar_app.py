"""Litestar, written the way its documentation shows (plain ``@websocket`` handlers, not listeners)."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, MediaType, WebSocket, get, websocket
from litestar.exceptions import WebSocketDisconnect

from . import HELLO, JSON_DATA
from .queued import Fanout

subscribers: set[WebSocket[Any, Any, Any]] = set()
"""The sequential broadcast's subscribers."""
fanout: Fanout[str] = Fanout()
"""The queued broadcast's subscribers."""


@get("/", media_type=MediaType.TEXT)
async def hello() -> str:
    """``GET /``."""
    return HELLO


@get("/json")
async def json_response() -> dict[str, str]:
    """``GET /json``."""
    return JSON_DATA


@websocket("/ws")
async def echo(socket: WebSocket[Any, Any, Any]) -> None:
    """``WS /ws``: echo every text message."""
    await socket.accept()
    try:
        while True:
            await socket.send_text(await socket.receive_text())
    except WebSocketDisconnect:
        pass


@websocket("/sub")
async def subscribe(socket: WebSocket[Any, Any, Any]) -> None:
    """``WS /sub``: stay subscribed until the client leaves."""
    await socket.accept()
    subscribers.add(socket)
    try:
        while True:
            await socket.receive_text()
    except WebSocketDisconnect:
        pass
    finally:
        subscribers.discard(socket)


@websocket("/pub")
async def publish(socket: WebSocket[Any, Any, Any]) -> None:
    """``WS /pub``: send every message to every subscriber."""
    await socket.accept()
    try:
        while True:
            message = await socket.receive_text()
            for subscriber in list(subscribers):
                try:
                    await subscriber.send_text(message)
                except Exception:  # that subscriber has just left
                    subscribers.discard(subscriber)
    except WebSocketDisconnect:
        pass


@websocket("/subq")
async def subscribe_queued(socket: WebSocket[Any, Any, Any]) -> None:
    """``WS /subq``: a task sends what is published while this reads until the client leaves."""
    await socket.accept()
    async with fanout.subscriber(socket.send_text):
        try:
            while True:
                await socket.receive_text()
        except WebSocketDisconnect:
            pass


@websocket("/pubq")
async def publish_queued(socket: WebSocket[Any, Any, Any]) -> None:
    """``WS /pubq``: queue every message for every subscriber."""
    await socket.accept()
    try:
        while True:
            fanout.publish(await socket.receive_text())
    except WebSocketDisconnect:
        pass


app = Litestar(
    route_handlers=[hello, json_response, echo, subscribe, publish, subscribe_queued, publish_queued],
    openapi_config=None,
)
