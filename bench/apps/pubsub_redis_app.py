"""The cross-process fan-out through Redis, two ways, for bench/pubsub_redis.py.

* ``app``: scallion, ``WS /sub`` iterating a :class:`~scallion.pubsub.RedisBroker` subscription to channel
  ``fanout`` (seed-000 generator style); ``$BENCH_HISTORY`` ``on`` keeps a history (1,000 messages, 5 minutes),
  ``off`` none.
* ``raw``: the hand-written baseline, a bare ASGI app with redis-py: one ``PubSub`` per process subscribed while
  it has subscribers, one reader task putting each message in every subscriber's queue, and each websocket
  sending from its queue (the same shape as scallion's, with nothing else).

Both connect to ``$BENCH_REDIS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from scallion import App, ws_send
from scallion.pubsub import History, RedisBroker

URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
CHANNEL = "fanout"

broker = RedisBroker(URL, history=History(size=1000) if os.environ.get("BENCH_HISTORY") == "on" else History(size=0))
app = App(max_message_rate=None)


@app.websocket("/sub")
async def subscribe(scope: dict[str, Any], receiver: AsyncIterator[str | bytes]) -> AsyncIterator[dict[str, Any]]:
    """Send every message of the channel until the client leaves."""
    async with broker.subscribe(CHANNEL, max_queue=100_000) as subscription:
        async for message in subscription:
            yield ws_send(message.data)


@app.on_stop
async def close_broker() -> None:
    await broker.close()


# -- the baseline ---------------------------------------------------------------------------------------
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_queues: set[asyncio.Queue[bytes]] = set()
_reader: asyncio.Task[None] | None = None


async def _read() -> None:
    """Subscribe one connection of this process and put every message in every subscriber's queue."""
    client = Redis.from_url(URL)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(CHANNEL)
    try:
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is not None:
                data = message["data"]
                for queue in _queues:
                    queue.put_nowait(data)
    finally:
        await pubsub.aclose()
        await client.aclose()


async def raw(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """A bare ASGI app: ``/sub`` only, lifespan accepted."""
    global _reader
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    _queues.add(queue)
    if _reader is None:  # the first subscriber (the benchmark probes until every subscriber receives)
        _reader = asyncio.get_running_loop().create_task(_read())

    async def pump() -> None:
        while True:
            data = await queue.get()
            await send({"type": "websocket.send", "text": data.decode()})

    pumping = asyncio.ensure_future(pump())
    try:
        while (await receive())["type"] != "websocket.disconnect":
            pass
    finally:
        _queues.discard(queue)
        pumping.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await pumping
