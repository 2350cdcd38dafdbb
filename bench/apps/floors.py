"""The least any framework can cost per message with each handler style: the floors of docs/performance.md.

These are not frameworks. Each endpoint is the bare shape of one style, with nothing a framework needs
besides (no validation, no state machine, no disconnect watching, no error handling), served by
:mod:`bench.apps.raw`'s entry point. ``make bench-instructions ARGS="--only floor"`` counts them against raw.

=================  ====================================================================================
``WS /gen``        seed 000: an async generator ``async for message in receiver: yield {...}``, driven by
                   ``async for out in handler(scope, receiver): await send(out)``; the receiver's
                   ``__anext__`` is a coroutine awaiting ``receive()``
``WS /gen-send``   the same, the handler yielding ``ws_send(message)`` as seed 000 writes it
``WS /gen-flat``   the same, with the handshake and the driver in the entry's own coroutine (no ``_drive``
                   level): the corrected floor of the generator style (issue 9)
``WS /obj``        Emmett: ``async for message in ws: await ws.send(message)`` on a plain object whose
                   ``__anext__`` and ``send`` are coroutines
``WS /obj-proxy``  the same through a context-variable proxy (``websocket.send``), as Emmett's
                   ``websocket`` is
``WS /gen-hard``   ``/gen-flat`` with the least of the hardening scallion must keep (issues 8 and 9), each
                   in its cheapest form: the receiver marks a receive in progress and counts messages (the
                   watchdog's books: disconnect watching, rate limit, idle timeout), takes ``text`` or
                   ``bytes`` and checks ``max_message_size``; the driver sends ``ws_send``'s own dict
                   unchecked (any other value would be checked), checks the state, and steps a process-wide
                   C counter of sends (the loop-starvation guard); a 25 ms timer ticks, as the watchdog does
``WS /obj-hard``   ``/obj`` with the same hardening, ``send`` read through a C-level property of a context-
                   variable proxy (as scallion's ``websocket.send`` is) and checking its argument's type; the
                   handler is a coroutine of its own, awaited inside the lifecycle's ``try`` (a framework cannot
                   run a user's coroutine function in its own frame)
=================  ====================================================================================
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

from scallion import ws_send
from scallion.response import built, text

from . import HELLO, raw
from .raw import Message, Receive, Send


class Receiver:
    """The least a receiver can be: an async iterator over the text of ``websocket.receive`` messages."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self.receive = receive
        self.transmit = send

    def __aiter__(self) -> Receiver:
        return self

    async def __anext__(self) -> str:
        message = await self.receive()
        if message["type"] != "websocket.receive":
            raise StopAsyncIteration
        return message["text"]  # type: ignore[no-any-return]

    async def send(self, data: str) -> None:
        """What ``websocket.send`` is at least: one coroutine around the server's ``send``."""
        await self.transmit({"type": "websocket.send", "text": data})


async def _yield_dicts(scope: Message, receiver: Receiver) -> AsyncIterator[Message]:
    async for message in receiver:
        yield {"type": "websocket.send", "text": message}


async def _yield_ws_send(scope: Message, receiver: Receiver) -> AsyncIterator[dict[str, Any]]:
    async for message in receiver:
        yield ws_send(message)


async def _drive(handler: Any, receive: Receive, send: Send) -> None:
    await send({"type": "websocket.accept"})
    async for out in handler({}, Receiver(receive, send)):
        await send(out)


async def generator(receive: Receive, send: Send) -> None:
    """``WS /gen``."""
    await _drive(_yield_dicts, receive, send)


async def generator_ws_send(receive: Receive, send: Send) -> None:
    """``WS /gen-send``."""
    await _drive(_yield_ws_send, receive, send)


async def generator_flat(receive: Receive, send: Send) -> None:
    """``WS /gen-flat``: no coroutine between the entry and the handler's generator."""
    await send({"type": "websocket.accept"})
    async for out in _yield_ws_send({}, Receiver(receive, send)):
        await send(out)


async def obj(receive: Receive, send: Send) -> None:
    """``WS /obj``."""
    await send({"type": "websocket.accept"})
    ws = Receiver(receive, send)
    async for message in ws:
        await ws.send(message)


_current: ContextVar[Receiver] = ContextVar("current")


class _Proxy:
    """The current connection, looked up per attribute access, as a context-local ``websocket`` must."""

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        return getattr(_current.get(), name)

    def __aiter__(self) -> Receiver:
        return _current.get()


websocket: Any = _Proxy()


async def obj_proxy(receive: Receive, send: Send) -> None:
    """``WS /obj-proxy``."""
    await send({"type": "websocket.accept"})
    _current.set(Receiver(receive, send))
    async for message in websocket:
        await websocket.send(message)


_CHECKS = itertools.cycle((False,) * 255 + (True,))
"""The loop-starvation guard's shared counter: True once every 256 sends of the process."""


class _Ticks:
    """The watchdog's timer: one tick every 25 ms while a connection is open (a tick looks at nothing here)."""

    def __init__(self) -> None:
        self.open = 0
        self.timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self.open += 1
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(0.025, self.tick)

    def stop(self) -> None:
        self.open -= 1

    def tick(self) -> None:
        self.timer = asyncio.get_running_loop().call_later(0.025, self.tick) if self.open else None


_ticks = _Ticks()


class HardReceiver:
    """A receiver with the least of scallion's per-message hardening (see the module docstring)."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self.receive = receive
        self.transmit = send
        self.direct = True
        """False while a receive is in progress (the watchdog leaves the connection alone)."""
        self.received = 0
        """Messages since the watchdog's last look (rate limit, idle timeout, whether to start a reader)."""
        self.max_message_size = 1024 * 1024
        self.open = True

    def __aiter__(self) -> HardReceiver:
        return self

    async def __anext__(self) -> str | bytes:
        if self.direct:
            self.direct = False
            message = await self.receive()
            self.direct = True
            self.received += 1
        else:
            raise RuntimeError("the slow path is not part of the floor")
        if message["type"] == "websocket.receive":
            data: Any = message.get("text")
            if data is None:
                data = message.get("bytes")
            if len(data) <= self.max_message_size:
                return data  # type: ignore[no-any-return]
            raise RuntimeError("too big")
        raise StopAsyncIteration

    async def send(self, data: str | bytes) -> None:
        """``websocket.send``: type check, state check, the send, the starvation guard's counter."""
        if data.__class__ is str:
            message: Message = {"type": "websocket.send", "text": data}
        elif isinstance(data, bytes):
            message = {"type": "websocket.send", "bytes": data}
        else:
            raise TypeError("str or bytes")
        if not self.open:
            raise RuntimeError("closed")
        await self.transmit(message)
        if next(_CHECKS):
            await asyncio.sleep(0)


async def generator_hardened(receive: Receive, send: Send) -> None:
    """``WS /gen-hard``: ``/gen-flat`` with the hardening scallion keeps, at its cheapest."""
    await send({"type": "websocket.accept"})
    receiver = HardReceiver(receive, send)
    sent = built
    _ticks.start()
    try:
        async for out in _yield_ws_send({}, receiver):  # type: ignore[arg-type]
            if out is not sent.message:
                raise TypeError("only ws_send's own dicts in the floor")
            if not receiver.open:
                raise RuntimeError("closed")
            await send(out)
            if next(_CHECKS):
                await asyncio.sleep(0)
    finally:
        _ticks.stop()


_current_send: ContextVar[Any] = ContextVar("current_send")


class _HardProxy:
    """``websocket`` as scallion makes it: ``send`` is a property whose getter is ``ContextVar.get``."""

    __slots__ = ()
    send = property(_current_send.get)

    def __aiter__(self) -> HardReceiver:
        return _current.get()  # type: ignore[return-value]


hard_websocket: Any = _HardProxy()


async def _echo_hardened() -> None:
    """The user's handler of ``/obj-hard``."""
    async for message in hard_websocket:
        await hard_websocket.send(message)


async def obj_hardened(receive: Receive, send: Send) -> None:
    """``WS /obj-hard``: ``/obj`` with the hardening scallion keeps, through the proxy."""
    await send({"type": "websocket.accept"})
    receiver = HardReceiver(receive, send)
    _current.set(receiver)  # type: ignore[arg-type]
    _current_send.set(receiver.send)
    _ticks.start()
    try:
        await _echo_hardened()
    finally:
        _ticks.stop()


async def _hello_dict(request: Message) -> Message:
    return text(HELLO)


_TYPES = {"text/plain; charset=utf-8": (b"content-type", b"text/plain; charset=utf-8")}


async def hello_dict(send: Send) -> None:
    """``GET /hello-dict``."""
    response = await _hello_dict({})
    if type(response) is not dict or type(response.get("status")) is not int:
        raise TypeError("not a response")
    body = response["body"]
    headers = response["headers"]
    if type(body) is not bytes or len(headers) != 1:
        raise RuntimeError("not the floor's shape")
    pair = _TYPES[headers["content-type"]]
    length = b"%d" % len(body)
    await send(
        {"type": "http.response.start", "status": response["status"], "headers": [pair, (b"content-length", length)]}
    )
    await send({"type": "http.response.body", "body": body})


_request: ContextVar[Message] = ContextVar("request")


async def _hello_str() -> str:
    return HELLO


_TEXT = (b"content-type", b"text/plain; charset=utf-8")


async def hello_ctx(send: Send) -> None:
    """``GET /hello-ctx``."""
    token = _request.set({})
    try:
        result = await _hello_str()
    finally:
        _request.reset(token)
    if type(result) is not str:
        raise TypeError("not a str")
    body = result.encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [_TEXT, (b"content-length", b"%d" % len(body))]}
    )
    await send({"type": "http.response.body", "body": body})


raw._HTTP.update({"/hello-dict": hello_dict, "/hello-ctx": hello_ctx})
raw._WEBSOCKET.update(
    {
        "/gen": generator,
        "/gen-send": generator_ws_send,
        "/gen-flat": generator_flat,
        "/obj": obj,
        "/obj-proxy": obj_proxy,
        "/gen-hard": generator_hardened,
        "/obj-hard": obj_hardened,
    }
)
app = raw.app
"""raw's ASGI entry point, serving these endpoints too."""
