"""``RedisBroker``: publish/subscribe across processes and machines through a Redis server (redis-py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from .broker import Broker, Subscription, check_payload

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

logger = logging.getLogger("scallion.pubsub")

RETRY_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0)
"""Seconds between attempts to read again after the Redis connection broke (the last one repeats)."""


class RedisBroker(Broker):
    """Publishes through Redis, so every process subscribed to a channel gets the message.

    ``url`` is a redis-py URL (``redis://host:port/db``, ``rediss://``, ``unix://``). Each process holds one
    connection for publishing and one for all of its subscriptions: the first local subscriber of a channel
    subscribes this process in Redis, the last one to leave unsubscribes it, and one reader task fans incoming
    messages out to the local subscribers. Redis carries bytes: with ``decode=True`` (the default) subscribers
    get ``str`` (UTF-8; a payload that is not UTF-8 arrives as ``bytes``, with a warning), with ``decode=False``
    always ``bytes``. Nothing is connected until the first publish or subscribe. If the connection breaks, the
    reader reconnects and subscribes again (redis-py); messages published meanwhile are lost, as Redis pub/sub
    keeps nothing. Needs the ``redis`` extra (``pip install 'scallion[redis]'``).
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, decode: bool = True, max_queue: int = 1024) -> None:
        super().__init__(max_queue=max_queue)
        try:
            from redis.exceptions import ConnectionError as RedisConnectionError
        except ImportError as exc:  # pragma: no cover - the extra is part of the test environment
            raise ImportError("RedisBroker needs redis-py: pip install 'scallion[redis]'") from exc
        self._broken: tuple[type[Exception], ...] = (RedisConnectionError, OSError)
        self.url = url
        self.decode = decode
        self.redis, self._pubsub = self._clients()
        self._reader: asyncio.Task[None] | None = None
        self._unconfirmed: dict[str, asyncio.Future[None]] = {}
        """Channels subscribed in Redis whose confirmation has not come back yet."""
        self._commands = asyncio.Lock()  # redis-py's PubSub is not safe for concurrent (un)subscribe calls

    async def publish(self, channel: str, data: str | bytes) -> None:
        """Send ``data`` to every subscriber of ``channel`` in every process connected to this Redis."""
        check_payload(data)
        await self.redis.publish(channel, data)

    def _clients(self) -> tuple[Redis, PubSub]:
        """New, unconnected clients: one to publish, one for this process's subscriptions."""
        from redis.asyncio import Redis

        redis = Redis.from_url(self.url)
        return redis, redis.pubsub()

    async def attach(self, subscription: Subscription) -> None:
        await super().attach(subscription)
        # Redis has subscribed this process to a channel once it says so (for a channel this subscription
        # asked for, or another local one just did): only then do messages published elsewhere reach it.
        pending = [self._unconfirmed[c] for c in subscription.channels if c in self._unconfirmed]
        if pending:
            try:
                await asyncio.shield(asyncio.gather(*pending))
            except BaseException:  # cancelled meanwhile: the `async with` block never starts, so leave now
                with contextlib.suppress(Exception):
                    await self.detach(subscription)
                raise

    async def listen(self, channels: list[str]) -> None:
        loop = asyncio.get_running_loop()
        async with self._commands:
            for channel in channels:
                self._unconfirmed.setdefault(channel, loop.create_future())
            await self._pubsub.subscribe(*channels)
            if self._reader is None:
                self._reader = loop.create_task(self._read(), name="scallion RedisBroker reader")

    async def unlisten(self, channels: list[str]) -> None:
        async with self._commands:
            await self._pubsub.unsubscribe(*channels)

    async def _read(self) -> None:
        failures = 0
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except self._broken as exc:
                delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
                failures += 1
                logger.warning("RedisBroker %s: %s; reading again in %ss", self.url, exc, delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            if message is None:
                continue
            if message["type"] == "message":
                self._deliver_raw(message)
            elif message["type"] == "subscribe":
                confirmed = self._unconfirmed.pop(_text(message["channel"]), None)
                if confirmed is not None and not confirmed.done():
                    confirmed.set_result(None)

    def _deliver_raw(self, message: dict[str, Any]) -> None:
        name = _text(message["channel"])
        data: bytes = message["data"]
        if not self.decode:
            self.deliver(name, data)
            return
        try:
            self.deliver(name, data.decode("utf-8"))
        except UnicodeDecodeError:
            logger.warning("RedisBroker: a message on %s is not UTF-8; delivered as bytes", name)
            self.deliver(name, data)

    async def close(self) -> None:
        """End every subscription, stop the reader and close both Redis connections (new ones are made on the
        next use)."""
        await super().close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.wait([self._reader])
            self._reader = None
        for pending in self._unconfirmed.values():
            pending.cancel()
        self._unconfirmed.clear()
        pubsub, redis = self._pubsub, self.redis
        self.redis, self._pubsub = self._clients()
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await redis.aclose()


def _text(channel: bytes | str) -> str:
    return channel.decode("utf-8", "replace") if isinstance(channel, bytes) else channel
