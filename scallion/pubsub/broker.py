"""What every broker shares: subscriptions, their bounded queues, and the local fan-out by channel.

A broker keeps, per channel, the set of subscriptions of this process. A published message reaches a broker's
``deliver`` once per process (directly for :class:`~scallion.pubsub.MemoryBroker`, through Redis for
:class:`~scallion.pubsub.RedisBroker`), which puts it in the queue of each subscription of that channel. A
subscription whose reader falls ``max_queue`` messages behind stops receiving: once it has yielded what it had,
it raises :class:`SubscriptionOverflow` saying how many messages it dropped, rather than letting one slow socket
hold up a channel or grow without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import NamedTuple


class Message(NamedTuple):
    """One published message: the ``channel`` it was published on and its ``data`` (``str`` or ``bytes``)."""

    channel: str
    data: str | bytes


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


class Subscription:
    """An async iterator of :class:`Message` for some channels; use it as an async context manager
    (``async with broker.subscribe("a", "b") as subscription``): it listens from entry to exit."""

    def __init__(self, broker: Broker, channels: tuple[str, ...], max_queue: int) -> None:
        self.broker = broker
        self.channels = channels
        self.max_queue = max_queue
        self.dropped = 0
        """Messages not delivered because the queue was full (the iterator raises once it is drained)."""
        self.entered = False
        """True once the ``async with`` block was entered: only then does the subscription listen."""
        self._queue: asyncio.Queue[Message] = asyncio.Queue()

    async def __aenter__(self) -> Subscription:
        await self.broker.attach(self)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.broker.detach(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        if not self.entered:
            raise RuntimeError("a subscription listens inside `async with broker.subscribe(...) as subscription:`")
        if self.dropped and self._queue.empty():
            raise SubscriptionOverflow(self.channels, self.max_queue, self.dropped)
        message = await self._queue.get()
        if message is _END:
            self._queue.put_nowait(_END)  # every later read ends too
            raise StopAsyncIteration
        return message

    def put(self, message: Message) -> bool:
        """Queue ``message`` for the reader; False (and counted in ``dropped``) when the reader is too far behind."""
        if self.dropped or self._queue.qsize() >= self.max_queue:
            self.dropped += 1
            return False
        self._queue.put_nowait(message)
        return True

    def end(self) -> None:
        """The iterator ends after the messages already queued (the block was left, or the broker closed)."""
        self._queue.put_nowait(_END)


class Broker:
    """The base of every broker: ``subscribe``, ``publish``, ``close`` and the local fan-out.

    ``max_queue`` is how many messages a subscription may hold before it is cut off (see
    :class:`SubscriptionOverflow`)."""

    def __init__(self, *, max_queue: int = 1024) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, not {max_queue}")
        self.max_queue = max_queue
        self.subscribers: dict[str, set[Subscription]] = {}
        """The subscriptions of this process, by channel."""

    def subscribe(self, *channels: str, max_queue: int | None = None) -> Subscription:
        """A subscription to ``channels``, listening while its ``async with`` block runs."""
        if not channels:
            raise ValueError("subscribe() needs at least one channel")
        for channel in channels:
            if type(channel) is not str or not channel:
                raise TypeError(f"a channel is a non-empty str, not {channel!r}")
        return Subscription(self, channels, self.max_queue if max_queue is None else max_queue)

    async def publish(self, channel: str, data: str | bytes) -> None:
        """Send ``data`` to every subscriber of ``channel``."""
        raise NotImplementedError

    async def attach(self, subscription: Subscription) -> None:
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

    async def detach(self, subscription: Subscription) -> None:
        """Stop delivering to ``subscription`` (its ``async with`` exit); its iterator ends."""
        subscription.end()
        gone = self._forget(subscription)
        if gone:
            await self.unlisten(gone)

    def _forget(self, subscription: Subscription) -> list[str]:
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

    def deliver(self, channel: str, data: str | bytes) -> int:
        """Put a published message in the queue of every local subscriber of ``channel``; how many took it."""
        members = self.subscribers.get(channel)
        if not members:
            return 0
        message = Message(channel, data)
        return sum(subscription.put(message) for subscription in members)

    async def close(self) -> None:
        """End every subscription (its iterator stops after what it has queued) and release connections.

        The broker stays usable: the next publish or subscribe starts afresh. So one module-level broker,
        closed in ``@app.on_stop``, serves an app that is started more than once (as tests do)."""
        subscriptions: set[Subscription] = set().union(*self.subscribers.values())
        self.subscribers = {}
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
