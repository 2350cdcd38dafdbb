"""Starlette, written the way its documentation shows."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from . import HELLO, JSON_DATA
from .queued import Fanout

subscribers: set[WebSocket] = set()
"""The sequential broadcast's subscribers."""
fanout: Fanout[str] = Fanout()
"""The queued broadcast's subscribers."""


async def hello(request: Request) -> PlainTextResponse:
    """``GET /``."""
    return PlainTextResponse(HELLO)


async def json_response(request: Request) -> JSONResponse:
    """``GET /json``."""
    return JSONResponse(JSON_DATA)


async def echo(ws: WebSocket) -> None:
    """``WS /ws``: echo every text message."""
    await ws.accept()
    try:
        while True:
            await ws.send_text(await ws.receive_text())
    except WebSocketDisconnect:
        pass


async def subscribe(ws: WebSocket) -> None:
    """``WS /sub``: stay subscribed until the client leaves."""
    await ws.accept()
    subscribers.add(ws)
    try:
        while True:
            await ws.receive_text()
    except WebSocketDisconnect:
        pass
    finally:
        subscribers.discard(ws)


async def publish(ws: WebSocket) -> None:
    """``WS /pub``: send every message to every subscriber."""
    await ws.accept()
    try:
        while True:
            message = await ws.receive_text()
            for subscriber in list(subscribers):
                try:
                    await subscriber.send_text(message)
                except Exception:  # that subscriber has just left
                    subscribers.discard(subscriber)
    except WebSocketDisconnect:
        pass


async def subscribe_queued(ws: WebSocket) -> None:
    """``WS /subq``: a task sends what is published while this reads until the client leaves."""
    await ws.accept()
    async with fanout.subscriber(ws.send_text):
        try:
            while True:
                await ws.receive_text()
        except WebSocketDisconnect:
            pass


async def publish_queued(ws: WebSocket) -> None:
    """``WS /pubq``: queue every message for every subscriber."""
    await ws.accept()
    try:
        while True:
            fanout.publish(await ws.receive_text())
    except WebSocketDisconnect:
        pass


app = Starlette(
    routes=[
        Route("/", hello),
        Route("/json", json_response),
        WebSocketRoute("/ws", echo),
        WebSocketRoute("/sub", subscribe),
        WebSocketRoute("/pub", publish),
        WebSocketRoute("/subq", subscribe_queued),
        WebSocketRoute("/pubq", publish_queued),
    ]
)
