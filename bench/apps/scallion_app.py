"""scallion through its Emmett-style facade, ``App``, with both websocket handler styles side by side.

* async-generator style (seed 000): ``/ws``, ``/subq``, ``/pubq``;
* ``websocket``-object style (Emmett): ``/ws-obj``, ``/subq-obj``, ``/pubq-obj``, ``/sub-obj``, ``/pub-obj``.

The queued broadcast (``/subq``, ``/pubq``; the row every framework writes the same way, see
``bench/apps/queued.py``) goes through ``scallion.pubsub`` in both styles: each subscriber iterates a
``MemoryBroker`` subscription, a queue of its own, and the publisher publishes. The sequential broadcast
(``/sub-obj``, ``/pub-obj``) exists in the object style only, since a generator can only send on its own
connection: subscribers register their ``websocket.send`` and the publisher calls them in turn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from scallion import App, websocket, ws_send
from scallion.pubsub import MemoryBroker

from . import HELLO, JSON_DATA

# A benchmark client sends far more than the default max_message_rate (1000 messages/s per connection): the
# limit is off. Its bookkeeping costs the same either way (one counter per message, the rest in the watchdog).
app = App(max_message_rate=None)

broker = MemoryBroker()
"""The generator-style broadcast: scallion.pubsub (a queue per subscriber, filled by ``publish``)."""

senders: set[Callable[[str | bytes], Awaitable[None]]] = set()
"""``websocket.send`` of every object-style subscriber."""


@app.route("/")
async def hello() -> str:
    """``GET /``: a ``str`` becomes ``text/plain``."""
    return HELLO


@app.route("/json")
async def json_response() -> dict[str, str]:
    """``GET /json``: a dict becomes JSON."""
    return JSON_DATA


# -- async-generator style ----------------------------------------------------------------------------
@app.websocket("/ws")
async def echo(scope: dict[str, Any], receiver: AsyncIterator[str | bytes]) -> AsyncIterator[dict[str, Any]]:
    """Echo every message."""
    async for message in receiver:
        yield ws_send(message)


@app.websocket("/subq")
async def subscribe(scope: dict[str, Any], receiver: AsyncIterator[str | bytes]) -> AsyncIterator[dict[str, Any]]:
    """Send what is published until the client leaves (scallion notices and closes the generator)."""
    async with broker.subscribe("broadcast") as subscription:
        async for message in subscription:
            yield ws_send(message.data)


@app.websocket("/pubq")
async def publish(scope: dict[str, Any], receiver: AsyncIterator[str | bytes]) -> AsyncIterator[dict[str, Any]]:
    """Publish every message to the subscribers; sends nothing back."""
    async for message in receiver:
        await broker.publish("broadcast", message)
    if False:  # an async generator that never yields: the route stays in the generator style
        yield ws_send("")


# -- websocket-object style ---------------------------------------------------------------------------
@app.websocket("/ws-obj")
async def echo_obj() -> None:
    """Echo every message."""
    async for message in websocket:
        await websocket.send(message)


@app.websocket("/sub-obj")
async def subscribe_obj() -> None:
    """Register this connection's ``send`` and read until the client leaves."""
    await websocket.accept()
    send = websocket.send
    senders.add(send)
    try:
        async for _ in websocket:
            pass
    finally:
        senders.discard(send)


@app.websocket("/pub-obj")
async def publish_obj() -> None:
    """Send every published message to every subscriber, one after the other."""
    async for message in websocket:
        for send in list(senders):
            try:
                await send(message)
            except Exception:  # that subscriber has just left
                senders.discard(send)


@app.websocket("/subq-obj")
async def subscribe_queued_obj() -> None:
    """Send what is published until the client leaves (scallion notices and cancels the handler)."""
    await websocket.accept()
    async with broker.subscribe("broadcast") as subscription:
        async for message in subscription:
            await websocket.send(message.data)


@app.websocket("/pubq-obj")
async def publish_queued_obj() -> None:
    """Publish every message to the subscribers."""
    async for message in websocket:
        await broker.publish("broadcast", message)
