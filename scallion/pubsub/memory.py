"""``MemoryBroker``: publish/subscribe, history and presence among the sockets of one process.

Offsets are ``"<epoch>-<n>"``: ``n`` counts the publishes of this broker (so it increases within every
channel) and ``epoch`` is when the broker was made, in milliseconds, so an offset kept by a client across a
restart of the process is recognised as foreign (not recovered) rather than compared with new numbers.
A channel's log is dropped once age has emptied it, so idle channels cost nothing.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from typing import Any

from .broker import Broker, Message, Presence, Subscription, check_limit, check_payload
from .history import ChannelLog, History


class MemoryBroker(Broker):
    """Fans each message out to the subscribers of this process, as published (``str`` stays ``str``), keeps
    each channel's history in memory and knows who is present.

    For one server worker, and for tests; with several workers or machines use :class:`~scallion.pubsub.RedisBroker`.
    """

    def __init__(
        self,
        *,
        max_queue: int = 1024,
        history: History | None = None,
        history_for: Mapping[str, History] | None = None,
    ) -> None:
        super().__init__(max_queue=max_queue, history=history, history_for=history_for)
        self.epoch = str(time.time_ns() // 1_000_000)
        self._numbers = itertools.count(1)
        self._logs: dict[str, ChannelLog] = {}

    async def publish(self, channel: str, data: str | bytes) -> str | None:
        """Queue ``data`` for every subscriber of ``channel`` in this process; its offset (None when the channel
        keeps no history)."""
        check_payload(data)
        history = self.history_policy(channel)
        if not history.enabled:
            self.deliver(channel, data)
            return None
        number = next(self._numbers)
        offset = f"{self.epoch}-{number}"
        log = self._logs.get(channel)
        if log is None:
            log = self._logs[channel] = ChannelLog(history)
        else:
            log.trim()
        log.append(Message(channel, data, offset), number)
        self.deliver(channel, data, offset)
        return offset

    def offset_order(self, offset: str) -> tuple[int, ...] | None:
        epoch, _, number = offset.partition("-")
        if epoch != self.epoch or not number.isdigit():
            return None
        return (int(number),)

    def _log(self, channel: str) -> ChannelLog | None:
        log = self._logs.get(channel)
        if log is not None:
            log.trim()
            if not log.entries:
                del self._logs[channel]
                return None
        return log

    async def history(self, channel: str, since: str | None = None, limit: int | None = None) -> list[Message]:
        check_limit(limit)
        log = self._log(channel)
        if log is None:
            return []
        order = None if since is None else self.offset_order(since)
        return log.after(None if order is None else order[0], limit)[1]

    async def recover(self, subscription: Subscription[Any]) -> None:
        assert subscription.since is not None
        log = self._log(subscription.channels[0])
        order = self.offset_order(subscription.since)
        if log is None or order is None:
            subscription.replay(False, [])
            return
        subscription.replay(*log.after(order[0], None))

    async def members(self, channel: str) -> dict[str, Any]:
        return {member: info for member, (_, info) in self.present.get(channel, {}).items()}

    async def member_joined(self, channel: str, member: str, info: Any) -> None:
        self.deliver_presence(Presence(channel, "join", member, info))

    async def member_left(self, channel: str, member: str, info: Any) -> None:
        self.deliver_presence(Presence(channel, "leave", member, info))
