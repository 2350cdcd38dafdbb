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
=================  ====================================================================================
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

from scallion import ws_send

from . import raw
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


raw._WEBSOCKET.update(
    {
        "/gen": generator,
        "/gen-send": generator_ws_send,
        "/gen-flat": generator_flat,
        "/obj": obj,
        "/obj-proxy": obj_proxy,
    }
)
app = raw.app
"""raw's ASGI entry point, serving these endpoints too."""
