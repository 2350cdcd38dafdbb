"""What every broker shares: subscriptions, their bounded queues, the local fan-out by channel, recovery's seam,
and the local count of present members.

A broker keeps, per channel, the set of subscriptions of this process. A published message reaches a broker's
``deliver`` once per process (directly for :class:`~scallion.pubsub.MemoryBroker`, through Redis for
:class:`~scallion.pubsub.RedisBroker`), which puts it in the queue of each subscription of that channel. A
subscription whose reader falls ``max_queue`` messages behind stops receiving: once it has yielded what it had,
it raises :class:`SubscriptionOverflow` saying how many messages it dropped, rather than letting one slow socket
hold up a channel or grow without bound.

Recovery (``subscribe(channel, since=offset)``), the seam. Entering the subscription first makes it live (its
queue receives every message published from then on), then reads the history after ``offset``: that read sees
everything published before it, so history and live overlap and nothing falls between them. The history goes
into a replay buffer yielded first; live messages whose offset is not after the last replayed one are the
overlap and are skipped as they are read. Offsets of a channel are ordered (``Broker.offset_order``), and a
channel's live messages arrive in offset order, so the skip ends at the first live message past the replay.

Presence: ``join(channel, member)`` counts the sockets of this process per member; the broker's
``member_joined`` runs for a member's first, ``member_left`` after its last.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Generic, Literal, NamedTuple, TypeVar, overload

from .history import DEFAULT_HISTORY, History, HistoryPolicy


class Message(NamedTuple):
    """One published message: the ``channel`` it was published on, its ``data`` (``str`` or ``bytes``) and its
    ``offset`` in the channel (opaque; ``None`` when the channel keeps no history)."""

    channel: str
    data: str | bytes
    offset: str | None = None


class Presence(NamedTuple):
    """A member joined (``event == "join"``) or left (``"leave"``) a ``channel``; ``info`` is what it joined
    with. Only subscriptions made with ``presence=True`` receive these."""

    channel: str
    event: Literal["join", "leave"]
    member: str
    info: Any = None


class SubscriptionOverflow(Exception):
    """The subscriber fell ``max_queue`` messages behind; ``dropped`` messages after that were not delivered."""

    def __init__(self, channels: tuple[str, ...], max_queue: int, dropped: int) -> None:
        super().__init__(
            f"subscription to {', '.join(channels)} fell {max_queue} messages behind; {dropped} dropped since"
        )
        self.channels = channels
        self.max_queue = max_queue
        self.dropped = dropped


class BrokerUnavailable(Exception):
    """The broker's server (Redis) cannot be reached: a publish that raises it was not delivered, a
    subscription that raises it never started. ``url`` says where (without a password), ``__cause__`` why."""

    def __init__(self, url: str, cause: BaseException) -> None:
        super().__init__(f"the broker at {url} is unavailable: {cause}")
        self.url = url


_END = Message("", "")  # put in a queue, by identity, when its block is left or the broker closes

T = TypeVar("T")


class Subscription(Generic[T]):
    """An async iterator of :class:`Message` (and :class:`Presence` with ``presence=True``) for some channels;
    use it as an async context manager (``async with broker.subscribe("a", "b") as subscription``): it listens
    from entry to exit. With ``since``, it first yields the channel's messages after that offset."""

    def __init__(
        self,
        broker: Broker,
        channels: tuple[str, ...],
        max_queue: int,
        since: str | None = None,
        presence: bool = False,
    ) -> None:
        self.broker = broker
        self.channels = channels
        self.max_queue = max_queue
        self.since = since
        self.presence = presence
        self.dropped = 0
        """Messages not delivered because the queue was full (the iterator raises once it is drained)."""
        self.entered = False
        """True once the ``async with`` block was entered: only then does the subscription listen."""
        self.recovered = False
        """With ``since``: True when every message after ``since`` was still in history (they come first),
        False when some were not (none of them is replayed: resynchronise, e.g. from ``broker.history()``).
        Always False without ``since``."""
        self._queue: deque[Message | Presence] = deque()
        """What was delivered and not yet read (``_END`` last once the subscription ends)."""
        self._waiter: asyncio.Future[None] | None = None
        """The reader's future while it waits for a message."""
        self._replay: deque[Message] = deque()
        self._skip_through: tuple[int, ...] | None = None
        """While set: live messages of ``channels[0]`` at or before this offset were replayed already."""
        self._special = True
        """Whether ``__anext__`` takes the slow path: before entry, and while replaying or skipping."""

    async def __aenter__(self) -> Subscription[T]:
        await self.broker.attach(self)
        if self.since is not None:
            try:
                await self.broker.recover(self)
            except BaseException:
                with contextlib.suppress(Exception):
                    await self.broker.detach(self)
                raise
        self._special = bool(self._replay) or self._skip_through is not None
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.broker.detach(self)

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> T:
        if self._special:  # not entered, or replaying, or skipping the overlap: the slow path
            return await self._next_special()
        queue = self._queue
        while not queue:  # _wait(), inline: one coroutine less to resume on every message (keep the two alike)
            if self.dropped:
                raise SubscriptionOverflow(self.channels, self.max_queue, self.dropped)
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        message = queue.popleft()
        if message is _END:
            queue.appendleft(_END)  # every later read ends too
            raise StopAsyncIteration
        return message  # type: ignore[return-value]

    async def _wait(self) -> None:
        """Wait until the queue holds something; raise :class:`SubscriptionOverflow` if it never will."""
        while not self._queue:
            if self.dropped:
                raise SubscriptionOverflow(self.channels, self.max_queue, self.dropped)
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    async def _next_special(self) -> T:
        if not self.entered:
            raise RuntimeError("a subscription listens inside `async with broker.subscribe(...) as subscription:`")
        if self._replay:
            return self._replay.popleft()  # type: ignore[return-value]
        while True:
            if not self._queue:
                await self._wait()
            message = self._queue.popleft()
            if message is _END:
                self._queue.appendleft(_END)
                raise StopAsyncIteration
            if self._skip_through is not None and type(message) is Message and message.offset is not None:
                order = self.broker.offset_order(message.offset)
                if order is not None and order <= self._skip_through:
                    continue  # replayed from history already
                self._skip_through = None  # live messages come in order: no later one was replayed
            self._special = self._skip_through is not None
            return message  # type: ignore[return-value]

    def put(self, message: Message | Presence) -> bool:
        """Queue ``message`` for the reader; False (and counted in ``dropped``) when the reader is too far behind."""
        return offer((self,), message) == 1

    def replay(self, recovered: bool, messages: list[Message]) -> None:
        """The outcome of recovery: yield ``messages`` (from history) before the live ones, skipping the live
        ones they overlap."""
        self.recovered = recovered
        if not recovered or not messages:
            return
        self._replay.extend(messages)
        last = messages[-1].offset
        self._skip_through = None if last is None else self.broker.offset_order(last)

    def end(self) -> None:
        """The iterator ends after the messages already queued (the block was left, or the broker closed)."""
        self._queue.append(_END)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def offer(subscriptions: Iterable[Subscription[Any]], message: Message | Presence) -> int:
    """Queue ``message`` for each of ``subscriptions`` whose reader is not too far behind (the others count it in
    their ``dropped``), waking a waiting reader; how many took it. One loop for a whole channel: the fan-out's
    hot path, with no call per subscriber."""
    taken = 0
    for subscription in subscriptions:
        queue = subscription._queue
        if subscription.dropped or len(queue) >= subscription.max_queue:
            subscription.dropped += 1
            continue
        queue.append(message)
        taken += 1
        waiter = subscription._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
    return taken


class Membership:
    """``async with broker.join(channel, member_id, info=...)``: the member is present while the block runs."""

    def __init__(self, broker: Broker, channel: str, member: str, info: Any) -> None:
        self.broker = broker
        self.channel = channel
        self.member = member
        self.info = info
        self._joined = False

    async def __aenter__(self) -> Membership:
        if self._joined:
            raise RuntimeError("this membership is already in use; join() again for another")
        await self.broker.enter(self.channel, self.member, self.info)
        self._joined = True
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._joined:
            self._joined = False
            await self.broker.leave(self.channel, self.member)


class Broker:
    """The base of every broker: ``subscribe``, ``publish``, ``history``, ``join``, ``members``, ``close`` and the
    local fan-out.

    ``max_queue`` is how many messages a subscription may hold before it is cut off (see
    :class:`SubscriptionOverflow`). ``history`` is what each channel keeps (:class:`~scallion.pubsub.History`:
    the newest 1,000 messages for 5 minutes by default), ``history_for`` the same by channel pattern
    (``{"ticker.*": History(size=0)}``: the first matching pattern wins)."""

    def __init__(
        self,
        *,
        max_queue: int = 1024,
        history: History | None = None,
        history_for: Mapping[str, History] | None = None,
    ) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, not {max_queue}")
        self.max_queue = max_queue
        self.history_policy: HistoryPolicy = HistoryPolicy(history or DEFAULT_HISTORY, history_for)
        """The :class:`~scallion.pubsub.History` of each channel."""
        self.subscribers: dict[str, set[Subscription[Any]]] = {}
        """The subscriptions of this process, by channel."""
        self.present: dict[str, dict[str, tuple[int, Any]]] = {}
        """The members present through this process, by channel: member -> (sockets, info)."""

    @overload
    def subscribe(
        self, *channels: str, max_queue: int | None = None, since: str | None = None, presence: Literal[False] = False
    ) -> Subscription[Message]: ...

    @overload
    def subscribe(
        self, *channels: str, max_queue: int | None = None, since: str | None = None, presence: Literal[True]
    ) -> Subscription[Message | Presence]: ...

    def subscribe(
        self, *channels: str, max_queue: int | None = None, since: str | None = None, presence: bool = False
    ) -> Subscription[Any]:
        """A subscription to ``channels``, listening while its ``async with`` block runs.

        ``since``: an offset of the (one) channel; the messages after it still in history come first, then the
        live ones, with none missing or repeated between (``subscription.recovered`` says whether history still
        had them all). ``presence=True``: :class:`Presence` events too, when members join and leave."""
        if not channels:
            raise ValueError("subscribe() needs at least one channel")
        for channel in channels:
            if type(channel) is not str or not channel:
                raise TypeError(f"a channel is a non-empty str, not {channel!r}")
        if since is not None:
            if type(since) is not str:
                raise TypeError(f"since is an offset (a str from Message.offset or publish), not {since!r}")
            if len(channels) != 1:
                raise ValueError("since= is an offset of one channel: subscribe to that channel alone")
        return Subscription(self, channels, self.max_queue if max_queue is None else max_queue, since, presence)

    async def publish(self, channel: str, data: str | bytes) -> str | None:
        """Send ``data`` to every subscriber of ``channel``; the message's offset (None without history)."""
        raise NotImplementedError

    async def history(self, channel: str, since: str | None = None, limit: int | None = None) -> list[Message]:
        """The messages ``channel`` still holds, oldest first: after the offset ``since`` (the first ``limit``
        of them), or without ``since`` the newest ``limit`` (all when None)."""
        raise NotImplementedError

    def offset_order(self, offset: str) -> tuple[int, ...] | None:
        """A key that orders the offsets of one channel; None for an offset this broker did not make."""
        raise NotImplementedError

    async def recover(self, subscription: Subscription[Any]) -> None:
        """Fill ``subscription``'s replay from history (after it is live: see the module docstring)."""
        raise NotImplementedError

    def join(self, channel: str, member_id: str, info: Any = None) -> Membership:
        """``async with broker.join(channel, member_id, info=...)``: ``member_id`` is present in ``channel``
        while the block runs (from any number of sockets: it leaves when the last one does)."""
        if type(channel) is not str or not channel:
            raise TypeError(f"a channel is a non-empty str, not {channel!r}")
        if type(member_id) is not str or not member_id:
            raise TypeError(f"a member_id is a non-empty str, not {member_id!r}")
        return Membership(self, channel, member_id, info)

    async def members(self, channel: str) -> dict[str, Any]:
        """The members present in ``channel``, each with its ``info``."""
        raise NotImplementedError

    async def enter(self, channel: str, member: str, info: Any) -> None:
        """One more socket of ``member`` in ``channel`` (a :class:`Membership` entered)."""
        members = self.present.setdefault(channel, {})
        count, known = members.get(member, (0, info))
        members[member] = (count + 1, known)
        if count:
            return
        try:
            await self.member_joined(channel, member, info)
        except BaseException:
            self._forget_member(channel, member)
            raise

    async def leave(self, channel: str, member: str) -> None:
        """One socket of ``member`` fewer (a :class:`Membership` left); the last one makes it leave."""
        last, info = self._forget_member(channel, member)
        if last:
            await self.member_left(channel, member, info)

    def _forget_member(self, channel: str, member: str) -> tuple[bool, Any]:
        """Count one socket of ``member`` out: whether that was its last one here, and its info."""
        members = self.present.get(channel)
        if members is None or member not in members:
            return False, None  # the broker was closed meanwhile
        count, info = members[member]
        if count > 1:
            members[member] = (count - 1, info)
            return False, info
        del members[member]
        if not members:
            del self.present[channel]
        return True, info

    async def member_joined(self, channel: str, member: str, info: Any) -> None:
        """Hook: ``member`` has its first socket in ``channel`` in this process."""

    async def member_left(self, channel: str, member: str, info: Any) -> None:
        """Hook: ``member`` has no socket left in ``channel`` in this process."""

    async def attach(self, subscription: Subscription[Any]) -> None:
        """Start delivering to ``subscription`` (its ``async with`` entry): a message published after this returns
        reaches it."""
        if subscription.entered:
            raise RuntimeError("this subscription is already in use; subscribe() again for another")
        subscription.entered = True
        new = [channel for channel in subscription.channels if channel not in self.subscribers]
        for channel in subscription.channels:
            self.subscribers.setdefault(channel, set()).add(subscription)
        if new:
            try:
                await self.listen(new)
            except BaseException:  # Redis unreachable, or the handler cancelled (its client left) meanwhile
                gone = self._forget(subscription)
                if gone:
                    with contextlib.suppress(Exception):
                        await self.unlisten(gone)
                raise

    async def detach(self, subscription: Subscription[Any]) -> None:
        """Stop delivering to ``subscription`` (its ``async with`` exit); its iterator ends."""
        subscription.end()
        gone = self._forget(subscription)
        if gone:
            await self.unlisten(gone)

    def _forget(self, subscription: Subscription[Any]) -> list[str]:
        gone = []
        for channel in subscription.channels:
            members = self.subscribers.get(channel)
            if members is not None:
                members.discard(subscription)
                if not members:
                    del self.subscribers[channel]
                    gone.append(channel)
        return gone

    async def listen(self, channels: list[str]) -> None:
        """Hook: this process has its first subscriber to ``channels``."""

    async def unlisten(self, channels: list[str]) -> None:
        """Hook: this process has no subscriber to ``channels`` any more."""

    def deliver(self, channel: str, data: str | bytes, offset: str | None = None) -> int:
        """Put a published message in the queue of every local subscriber of ``channel``; how many took it."""
        members = self.subscribers.get(channel)
        if not members:
            return 0
        return offer(members, Message(channel, data, offset))

    def deliver_presence(self, event: Presence) -> None:
        """Put a join or leave in the queue of every local subscriber of its channel that asked for them."""
        offer([s for s in self.subscribers.get(event.channel, ()) if s.presence], event)

    async def close(self) -> None:
        """End every subscription (its iterator stops after what it has queued) and release connections.

        The broker stays usable: the next publish or subscribe starts afresh. So one module-level broker,
        closed in ``@app.on_stop``, serves an app that is started more than once (as tests do)."""
        subscriptions: set[Subscription[Any]] = set().union(*self.subscribers.values())
        self.subscribers = {}
        self.present = {}
        for subscription in subscriptions:
            subscription.end()

    async def __aenter__(self) -> Broker:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def check_payload(data: object) -> None:
    """Raise a clear error for a publish of something other than ``str`` or ``bytes``."""
    if not isinstance(data, (str, bytes)):
        raise TypeError(f"publish takes str or bytes, not {type(data).__name__}")


def check_limit(limit: object) -> None:
    """Raise a clear error for a ``history(limit=...)`` that is not a count."""
    if limit is not None and (type(limit) is not int or limit < 0):
        raise ValueError(f"limit is a number of messages, 0 or more (or None), not {limit!r}")
