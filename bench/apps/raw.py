"""The baseline: a bare ASGI 3 application with no framework, written as tightly as is reasonable.

Every other app is measured as a ratio to this one. It still does what a real app must: it routes by path,
encodes the JSON response on every request, echoes text as text and bytes as bytes, and leaves when the
client does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from . import HELLO, JSON_DATA
from .queued import Fanout

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_encode = msgspec.json.encode
_HELLO = HELLO.encode()
_TEXT_HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(_HELLO)).encode())]

subscribers: set[Send] = set()
"""The ``send`` of every connected sequential-broadcast subscriber."""

fanout: Fanout[Message] = Fanout()
"""The queued broadcast's subscribers."""


async def hello(send: Send) -> None:
    """``GET /``."""
    await send({"type": "http.response.start", "status": 200, "headers": _TEXT_HEADERS})
    await send({"type": "http.response.body", "body": _HELLO})


async def json_response(send: Send) -> None:
    """``GET /json``: encoded per request, as an application would."""
    body = _encode(JSON_DATA)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def not_found(send: Send) -> None:
    """Any other path."""
    await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


async def echo(receive: Receive, send: Send) -> None:
    """``WS /ws``: send every message back until the client leaves."""
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes")})


async def subscribe(receive: Receive, send: Send) -> None:
    """``WS /sub``: stay subscribed until the client leaves (reading, so the departure is seen)."""
    await send({"type": "websocket.accept"})
    subscribers.add(send)
    try:
        while (await receive())["type"] == "websocket.receive":
            pass
    finally:
        subscribers.discard(send)


async def publish(receive: Receive, send: Send) -> None:
    """``WS /pub``: fan every message out to all subscribers, one after the other."""
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        text = message.get("text")
        if text is not None:
            out = {"type": "websocket.send", "text": text}
        else:
            out = {"type": "websocket.send", "bytes": message.get("bytes")}
        for subscriber in list(subscribers):
            try:
                await subscriber(out)
            except OSError:  # that subscriber has just left (uvicorn's ClientDisconnected)
                subscribers.discard(subscriber)


async def subscribe_queued(receive: Receive, send: Send) -> None:
    """``WS /subq``: a task sends what is published while this reads until the client leaves."""
    await send({"type": "websocket.accept"})
    async with fanout.subscriber(send):
        while (await receive())["type"] == "websocket.receive":
            pass


async def publish_queued(receive: Receive, send: Send) -> None:
    """``WS /pubq``: queue every message for every subscriber."""
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        text = message.get("text")
        if text is not None:
            fanout.publish({"type": "websocket.send", "text": text})
        else:
            fanout.publish({"type": "websocket.send", "bytes": message.get("bytes")})


_HTTP = {"/": hello, "/json": json_response}
_WEBSOCKET = {"/ws": echo, "/sub": subscribe, "/pub": publish, "/subq": subscribe_queued, "/pubq": publish_queued}


async def lifespan(receive: Receive, send: Send) -> None:
    """Answer startup and shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Message, receive: Receive, send: Send) -> None:
    """The ASGI entry point."""
    kind = scope["type"]
    if kind == "http":
        await _HTTP.get(scope["path"], not_found)(send)
    elif kind == "websocket":
        if (await receive())["type"] != "websocket.connect":
            return
        handler = _WEBSOCKET.get(scope["path"])
        if handler is None:
            await send({"type": "websocket.close", "code": 1000})
            return
        await handler(receive, send)
    elif kind == "lifespan":
        await lifespan(receive, send)
