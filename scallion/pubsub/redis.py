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
published while this process is not subscribed is not delivered to it (docs/pubsub.md says which), but a
subscription with ``since`` finds it in the history.

History and offsets: a stream per channel (``redis_scripts``); ``publish`` runs one script that appends to the
stream, trims it (size and age) and publishes the framed message with its stream ID, so the offset of a live
message is known and live messages come in stream order. Recovery reads the stream once the subscription is
live; ``broker.Subscription`` de-duplicates the overlap.

Presence: each broker is one worker (``worker``, random). A member present through it has an entry in the
channel's sorted set scored by its expiry, pushed ``presence_ttl`` ahead every ``presence_ttl / 3`` seconds by
the heartbeat task (which runs while this process has members present or presence subscribers). Every presence
script first sweeps the expired entries and announces a leave for each member with no worker left: a worker
that dies (or loses Redis) has its members leave within ``presence_ttl * 4 / 3`` seconds, when another worker
interested in the channel beats or asks for the members. A worker that comes back (or a Redis that restarted
empty) has its members joined again by its next beat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import msgspec

from .broker import Broker, BrokerUnavailable, Message, Presence, Subscription, check_limit, check_payload
from .history import History
from .redis_scripts import MESSAGE, PRESENCE, PRESENCE_OP, PUBLISH, READ, key

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

logger = logging.getLogger("scallion.pubsub")
R = TypeVar("R")

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

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        decode: bool = True,
        max_queue: int = 1024,
        history: History | None = None,
        history_for: Mapping[str, History] | None = None,
        presence_ttl: float = 10.0,
        max_connections: int = 8,
    ) -> None:
        super().__init__(max_queue=max_queue, history=history, history_for=history_for)
        try:
            from redis.exceptions import ConnectionError as RedisConnectionError
            from redis.exceptions import TimeoutError as RedisTimeoutError
        except ImportError as exc:  # pragma: no cover - the extra is part of the test environment
            raise ImportError("RedisBroker needs redis-py: pip install 'scallion[redis]'") from exc
        if not presence_ttl > 0:
            raise ValueError(f"presence_ttl is a number of seconds above 0, not {presence_ttl!r}")
        if type(max_connections) is not int or max_connections < 2:
            raise ValueError(
                f"max_connections is at least 2 (one subscribed, one for commands), not {max_connections!r}"
            )
        self._broken: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, OSError)
        self.url = url
        self.decode = decode
        self.presence_ttl = presence_ttl
        self.max_connections = max_connections
        self.worker = uuid.uuid4().hex
        """This process's name in presence entries."""
        self._where = _without_password(url)
        self.redis = self._client()
        self._publish_script = self.redis.register_script(PUBLISH)
        self._read_script = self.redis.register_script(READ)
        self._presence_script = self.redis.register_script(PRESENCE_OP)
        self._pubsub: PubSub | None = None
        """The subscribed connection, subscribed to every channel of ``subscribers``; None while there is none."""
        self._reader: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._unconfirmed: dict[str, asyncio.Future[BrokerUnavailable | None]] = {}
        """Channels subscribed on ``_pubsub`` whose confirmation has not come back: None once it has, the error
        if the connection broke first."""
        self._commands = asyncio.Lock()

    def _client(self) -> Redis:
        """A new, unconnected client on a pool of at most ``max_connections`` connections (the subscribed one
        included; a command waits for a free one). Its retry policy is ours (none inside redis-py, whose
        defaults differ between versions): a failure surfaces at once and the broker decides what to do."""
        from redis.asyncio import BlockingConnectionPool, Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        pool = BlockingConnectionPool.from_url(
            self.url, max_connections=self.max_connections, retry=Retry(NoBackoff(), 0)
        )
        return Redis.from_pool(pool)

    def _unavailable(self, cause: BaseException) -> BrokerUnavailable:
        return BrokerUnavailable(self._where, cause)

    async def _command(self, command: Callable[[], Awaitable[R]]) -> R:
        """Run ``command``; on a pooled connection that died with a restarted Redis (redis-py drops it), once
        more on a new one; :class:`BrokerUnavailable` if Redis cannot be reached."""
        try:
            return await command()
        except self._broken:
            pass
        try:
            return await command()
        except self._broken as exc:
            raise self._unavailable(exc) from exc

    # -- publishing ---------------------------------------------------------------------------------------
    async def publish(self, channel: str, data: str | bytes) -> str | None:
        """Send ``data`` to every subscriber of ``channel`` in every process connected to this Redis, keeping it
        in the channel's history; its offset (None when the channel keeps no history). Raise
        :class:`BrokerUnavailable` if Redis cannot be reached."""
        check_payload(data)
        payload = data.encode() if isinstance(data, str) else data
        history = self.history_policy(channel)
        if not history.enabled:
            await self._command(lambda: self.redis.publish(channel, MESSAGE + MESSAGE + payload))
            return None
        args: list[str | bytes | int] = [channel, payload, history.size, _ms(history.age)]
        offset = await self._command(
            lambda: self._publish_script(keys=[key(channel, "h")], args=args, client=self.redis)
        )
        return _text(offset)

    # -- history ------------------------------------------------------------------------------------------
    def offset_order(self, offset: str) -> tuple[int, ...] | None:
        """A stream ID ``"<ms>-<n>"`` as ``(ms, n)``."""
        ms, dash, number = offset.partition("-")
        if not (dash and ms.isascii() and ms.isdigit() and number.isascii() and number.isdigit()):
            return None
        return (int(ms), int(number))

    async def _read_history(self, channel: str, history: History, mode: str, since: str, limit: int) -> Any:
        args: list[str | int] = [_ms(history.age), mode, since, limit]
        return await self._command(lambda: self._read_script(keys=[key(channel, "h")], args=args, client=self.redis))

    def _messages(self, channel: str, entries: Iterable[list[Any]]) -> list[Message]:
        return [Message(channel, self._decoded(channel, fields[1]), _text(offset)) for offset, fields in entries]

    async def history(self, channel: str, since: str | None = None, limit: int | None = None) -> list[Message]:
        check_limit(limit)
        history = self.history_policy(channel)
        if not history.enabled or limit == 0:
            return []
        if since is not None and self.offset_order(since) is not None:
            mode = "after"
        else:
            mode, since = ("all" if limit is None else "newest"), ""
        entries = await self._read_history(channel, history, mode, since, -1 if limit is None else limit)
        if mode == "newest":
            entries.reverse()
        return self._messages(channel, entries)

    async def recover(self, subscription: Subscription[Any]) -> None:
        channel, since = subscription.channels[0], subscription.since
        history = self.history_policy(channel)
        if since is None or not history.enabled or self.offset_order(since) is None:
            subscription.replay(False, [])
            return
        entries = await self._read_history(channel, history, "recover", since, -1)
        subscription.replay(entries is not None, [] if entries is None else self._messages(channel, entries))

    # -- presence -----------------------------------------------------------------------------------------
    async def _presence(self, op: str, channel: str, members: Iterable[tuple[str, bytes]]) -> Any:
        keys = [key(channel, "e"), key(channel, "n"), key(channel, "i")]
        args: list[str | bytes | int] = [op, channel, self.worker, _ms(self.presence_ttl)]
        for member, info in members:
            args += [member, info]
        return await self._command(lambda: self._presence_script(keys=keys, args=args, client=self.redis))

    async def member_joined(self, channel: str, member: str, info: Any) -> None:
        encoded = msgspec.json.encode(info)  # a TypeError here, before Redis, for an info JSON cannot carry
        self._watch()
        await self._presence("join", channel, [(member, encoded)])

    async def member_left(self, channel: str, member: str, info: Any) -> None:
        try:
            await self._presence("leave", channel, [(member, b"")])
        except BrokerUnavailable as exc:  # leaving is never an error: the entry expires with its TTL
            logger.debug("RedisBroker: %s; %s leaves %s when its entry expires", exc, member, channel)

    async def members(self, channel: str) -> dict[str, Any]:
        flat = await self._presence("members", channel, [])
        return {_text(flat[i]): msgspec.json.decode(flat[i + 1]) for i in range(0, len(flat), 2)}

    def _watch(self) -> None:
        """Run the heartbeat (while this process has members present or presence subscribers)."""
        if self._heartbeat is None:
            self._heartbeat = asyncio.get_running_loop().create_task(
                self._beat(), name="scallion RedisBroker heartbeat"
            )

    async def _beat(self) -> None:
        """Every ``presence_ttl / 3`` s, push the expiry of this process's members ahead (joining them again
        if they expired meanwhile) and sweep the channels whose presence this process watches."""
        while True:
            await asyncio.sleep(self.presence_ttl / 3)  # the heartbeat's period
            watched = {c for c, subs in self.subscribers.items() if any(s.presence for s in subs)}
            channels = watched | set(self.present)
            if not channels:
                self._heartbeat = None
                return
            for channel in channels:
                local = self.present.get(channel, {})
                try:
                    await self._presence("beat", channel, [(m, msgspec.json.encode(i)) for m, (_, i) in local.items()])
                except BrokerUnavailable as exc:
                    logger.debug("RedisBroker: heartbeat failed (%s); next in %ss", exc, self.presence_ttl / 3)
                    break
                except Exception:
                    logger.exception("RedisBroker: heartbeat failed")

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
            if subscription.presence:
                self._watch()
        except BaseException:  # unavailable, or cancelled meanwhile: the `async with` block never starts
            with contextlib.suppress(Exception):
                await self.detach(subscription)
            raise

    async def listen(self, channels: list[str]) -> None:
        # Expect the confirmations at once: a subscription to these channels entering meanwhile (they are in
        # ``subscribers`` already) must wait for them too, and the reader may read one before the SUBSCRIBE
        # call returns. The subscribing itself is shielded: if this caller is cancelled (its client left), the
        # command still goes out whole, for the others waiting on these channels and so that the connection's
        # state is known; the caller's exit then unsubscribes what nobody listens to.
        self._expect(channels)
        work = asyncio.ensure_future(self._subscribe(channels))
        try:
            try:
                await asyncio.shield(work)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await work
                raise
        except BrokerUnavailable as error:  # answer whoever waits on these channels (the reader is gone)
            for channel in channels:
                waiting = self._unconfirmed.pop(channel, None)
                if waiting is not None and not waiting.done():
                    waiting.set_result(error)
            raise

    async def _subscribe(self, channels: list[str]) -> None:
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
        """Fan one pub/sub message out: a framed message (with its offset), a presence event, or a payload
        published by something else (delivered as it is)."""
        name = _text(message["channel"])
        payload: bytes = message["data"]
        head = payload[:1]
        if head == MESSAGE:
            offset, framed, body = payload[1:].partition(MESSAGE)
            if framed:
                self.deliver(name, self._decoded(name, body), offset.decode() or None)
                return
        elif head == PRESENCE:
            try:
                event, member, info = msgspec.json.decode(payload[1:])
                self.deliver_presence(Presence(name, event, member, msgspec.json.decode(info)))
            except (msgspec.DecodeError, ValueError, TypeError):
                logger.warning("RedisBroker: a malformed presence event on %s: %r", name, payload[:100])
            return
        self.deliver(name, self._decoded(name, payload))

    def _decoded(self, channel: str, data: bytes) -> str | bytes:
        if not self.decode:
            return data
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            logger.warning("RedisBroker: a message on %s is not UTF-8; delivered as bytes", channel)
            return data

    async def close(self) -> None:
        """Leave every channel this process's members are present in, end every subscription, stop the reader
        and the heartbeat, and close the Redis connections (new ones are made on the next use)."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.wait([self._heartbeat])
            self._heartbeat = None
        for channel, members in list(self.present.items()):
            with contextlib.suppress(BrokerUnavailable):
                await self._presence("leave", channel, [(member, b"") for member in members])
        await super().close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.wait([self._reader])
            self._reader = None
        for pending in self._unconfirmed.values():
            pending.cancel()
        self._unconfirmed.clear()
        pubsub, redis = self._pubsub, self.redis
        self._pubsub, self.redis = None, self._client()  # the scripts run on whichever client is current
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


def _ms(seconds: float | None) -> int:
    """Seconds as whole milliseconds for Redis (at least 1); 0 for None (no limit)."""
    return 0 if seconds is None else max(1, round(seconds * 1000))


def _text(channel: bytes | str) -> str:
    return channel.decode("utf-8", "replace") if isinstance(channel, bytes) else channel
