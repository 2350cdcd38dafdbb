"""``RedisBroker``: publish/subscribe across processes and machines through a Redis server (redis-py).

Theory of operation. A process holds a connection pool for publishing and, while it has subscribers, one
subscribed connection (a redis-py ``PubSub``) read by one reader task. ``self._pubsub`` is that connection, or
``None`` while there is none (before the first subscribe, or after it broke). The one rule: whenever a
subscribed connection is made, it is a fresh one subscribed to exactly the channels of ``self.subscribers``;
a broken one is dropped whole, never repaired. So what Redis has subscribed never drifts from what the local
sockets listen to, whatever failed half-way. ``self._commands`` serialises everything that changes it (connect,
subscribe, unsubscribe), as redis-py's ``PubSub`` is not safe for concurrent commands.

When the connection breaks the reader drops it, answers every subscription still waiting for Redis's
confirmation with :class:`~scallion.pubsub.BrokerUnavailable`, and connects again after ``RECONNECT_FIRST``
seconds, doubling up to ``RECONNECT_MAX`` between attempts, so it is subscribed again at most ``RECONNECT_MAX``
(plus a round trip) after Redis accepts connections. A subscribe meanwhile tries to connect at once rather than
wait for the reader, and raises ``BrokerUnavailable`` when it cannot. Redis pub/sub keeps nothing: a message
published while this process is not subscribed is not delivered to it (docs/pubsub.md says which).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from .broker import Broker, BrokerUnavailable, Subscription, check_payload

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

logger = logging.getLogger("scallion.pubsub")

RECONNECT_FIRST = 0.01
"""Seconds before the first attempt to connect again after the subscribed connection broke."""
RECONNECT_MAX = 0.05
"""The longest wait between two attempts (the delay doubles up to it): the bound on how long after Redis accepts
connections again this process is subscribed again. Trying that often costs a process about 1.4% of a core
(measured) while Redis is down."""


class RedisBroker(Broker):
    """Publishes through Redis, so every process subscribed to a channel gets the message.

    ``url`` is a redis-py URL (``redis://host:port/db``, ``rediss://``, ``unix://``). Each process holds one
    connection for publishing and one for all of its subscriptions: the first local subscriber of a channel
    subscribes this process in Redis, the last one to leave unsubscribes it, and one reader task fans incoming
    messages out to the local subscribers. Redis carries bytes: with ``decode=True`` (the default) subscribers
    get ``str`` (UTF-8; a payload that is not UTF-8 arrives as ``bytes``, with a warning), with ``decode=False``
    always ``bytes``. Nothing is connected until the first publish or subscribe.

    When Redis is unreachable, ``publish`` and entering a subscription raise :class:`BrokerUnavailable`; a
    publish on a pooled connection that died with a restarted Redis is retried once on a new connection first.
    Subscriptions survive a restart: the process subscribes again within ``RECONNECT_MAX`` seconds of Redis
    accepting connections; messages published before that are lost, as Redis pub/sub keeps nothing. Needs the
    ``redis`` extra (``pip install 'scallion[redis]'``).
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, decode: bool = True, max_queue: int = 1024) -> None:
        super().__init__(max_queue=max_queue)
        try:
            from redis.exceptions import ConnectionError as RedisConnectionError
            from redis.exceptions import TimeoutError as RedisTimeoutError
        except ImportError as exc:  # pragma: no cover - the extra is part of the test environment
            raise ImportError("RedisBroker needs redis-py: pip install 'scallion[redis]'") from exc
        self._broken: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, OSError)
        self.url = url
        self.decode = decode
        self._where = _without_password(url)
        self.redis = self._client()
        self._pubsub: PubSub | None = None
        """The subscribed connection, subscribed to every channel of ``subscribers``; None while there is none."""
        self._reader: asyncio.Task[None] | None = None
        self._unconfirmed: dict[str, asyncio.Future[BrokerUnavailable | None]] = {}
        """Channels subscribed on ``_pubsub`` whose confirmation has not come back: None once it has, the error
        if the connection broke first."""
        self._commands = asyncio.Lock()

    def _client(self) -> Redis:
        """A new, unconnected client. Its retry policy is ours (none inside redis-py, whose defaults differ
        between versions): a failure surfaces at once and the broker decides what to do."""
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        return Redis.from_url(self.url, retry=Retry(NoBackoff(), 0))

    def _unavailable(self, cause: BaseException) -> BrokerUnavailable:
        return BrokerUnavailable(self._where, cause)

    # -- publishing ---------------------------------------------------------------------------------------
    async def publish(self, channel: str, data: str | bytes) -> None:
        """Send ``data`` to every subscriber of ``channel`` in every process connected to this Redis; raise
        :class:`BrokerUnavailable` if Redis cannot be reached."""
        check_payload(data)
        try:
            await self.redis.publish(channel, data)
            return
        except self._broken:
            pass  # a pooled connection to a Redis that has since restarted: redis-py dropped it, try a new one
        try:
            await self.redis.publish(channel, data)
        except self._broken as exc:
            raise self._unavailable(exc) from exc

    # -- subscribing --------------------------------------------------------------------------------------
    async def attach(self, subscription: Subscription[Any]) -> None:
        await super().attach(subscription)  # listen() subscribes the channels new to this process
        try:
            if self._pubsub is None:  # its channels were wanted already, but the connection is down
                async with self._commands:
                    if self._pubsub is None:
                        await self._connect()
            # Redis has subscribed this process to a channel once it says so (for a channel this subscription
            # asked for, or another local one just did): only then do messages published elsewhere reach it.
            pending = [self._unconfirmed[c] for c in subscription.channels if c in self._unconfirmed]
            for outcome in await asyncio.shield(asyncio.gather(*pending)):
                if outcome is not None:
                    raise outcome
        except BaseException:  # unavailable, or cancelled meanwhile: the `async with` block never starts
            with contextlib.suppress(Exception):
                await self.detach(subscription)
            raise

    async def listen(self, channels: list[str]) -> None:
        async with self._commands:
            pubsub = self._pubsub
            if pubsub is None:
                await self._connect()  # subscribes every wanted channel, these included
                return
            try:
                await pubsub.subscribe(*channels)
            except self._broken as exc:
                error = self._unavailable(exc)
                await self._drop(pubsub, error)
                raise error from exc
            self._expect(channels)

    async def unlisten(self, channels: list[str]) -> None:
        async with self._commands:
            pubsub = self._pubsub
            if pubsub is None:
                return  # nothing is subscribed; the next connection subscribes only the channels still wanted
            try:
                await pubsub.unsubscribe(*channels)
            except self._broken as exc:  # leaving is never an error: the next connection leaves these out
                await self._drop(pubsub, self._unavailable(exc))

    async def _connect(self) -> None:
        """Make the subscribed connection: a fresh one, subscribed to every channel of ``subscribers`` (called
        holding ``_commands``, while there is none). Raise :class:`BrokerUnavailable` if Redis cannot be
        reached, leaving none."""
        channels = list(self.subscribers)
        if not channels:
            return
        pubsub = self.redis.pubsub()
        try:
            await pubsub.subscribe(*channels)
        except BaseException as exc:  # unreachable, or cancelled (the broker is closing)
            await _close_quietly(pubsub)
            if isinstance(exc, self._broken):
                raise self._unavailable(exc) from exc
            raise
        self._pubsub = pubsub
        self._expect(channels)
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read(), name="scallion RedisBroker reader")

    def _expect(self, channels: list[str]) -> None:
        """Subscriptions to ``channels`` wait for Redis's confirmation (the reader resolves them)."""
        loop = asyncio.get_running_loop()
        for channel in channels:
            if channel not in self._unconfirmed:
                self._unconfirmed[channel] = loop.create_future()

    async def _drop(self, pubsub: PubSub, error: BrokerUnavailable) -> None:
        """The subscribed connection ``pubsub`` broke: forget it, answer the subscriptions waiting for a
        confirmation with ``error``, close it."""
        if self._pubsub is not pubsub:
            return  # dropped already
        self._pubsub = None
        for waiting in self._unconfirmed.values():
            if not waiting.done():
                waiting.set_result(error)
        self._unconfirmed.clear()
        logger.warning("RedisBroker: lost the subscribed connection (%s); connecting again", error)
        await _close_quietly(pubsub)

    async def _read(self) -> None:
        """The reader: fan messages out; when the connection breaks, connect again (see the module docstring).
        It ends when the connection is gone and there is nothing left to subscribe to."""
        delay = RECONNECT_FIRST
        while True:
            pubsub = self._pubsub
            if pubsub is None:
                if not self.subscribers:
                    self._reader = None
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)
                async with self._commands:
                    if self._pubsub is None:
                        try:
                            await self._connect()
                        except BrokerUnavailable as exc:
                            logger.debug("RedisBroker: %s; next attempt in %ss", exc, delay)
                            continue
                        if self._pubsub is not None:
                            logger.info("RedisBroker %s: subscribed again", self._where)
                continue
            delay = RECONNECT_FIRST
            try:
                message = await pubsub.get_message(timeout=None)
            except Exception as exc:
                if not isinstance(exc, self._broken) and self._pubsub is pubsub:
                    logger.exception("RedisBroker: unexpected error reading from Redis; connecting again")
                async with self._commands:
                    await self._drop(pubsub, self._unavailable(exc))
                continue
            if message is None or self._pubsub is not pubsub:
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
        self._pubsub, self.redis = None, self._client()
        if pubsub is not None:
            await _close_quietly(pubsub)
        await redis.aclose()


async def _close_quietly(pubsub: PubSub) -> None:
    """Close a subscribed connection, broken or not."""
    with contextlib.suppress(Exception):
        await pubsub.aclose()  # type: ignore[no-untyped-call]


def _without_password(url: str) -> str:
    """``url`` as it may be shown in errors and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    netloc = f"{parts.username}:***@{host}" if parts.username else f"***@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _text(channel: bytes | str) -> str:
    return channel.decode("utf-8", "replace") if isinstance(channel, bytes) else channel
