"""How much a channel remembers: :class:`History` (a size and an age), chosen per channel by pattern, and the
in-process log that :class:`~scallion.pubsub.MemoryBroker` keeps.

An offset is the position of a message in its channel: an opaque ``str``, given by ``publish`` and carried by
``Message.offset``, that a client sends back to resume (``subscribe(channel, since=offset)``). A broker can
compare two offsets of one channel (``Broker.offset_order``) but users should not: a
:class:`~scallion.pubsub.RedisBroker` offset is a Redis stream ID (``"1764625963000-0"``), a
:class:`~scallion.pubsub.MemoryBroker` one is ``"<epoch>-<n>"`` with a per-process epoch, so an offset from
another process (one that restarted) is never mistaken for one of this process.

History is trimmed by size on every publish and by age on every publish and read: a message stays while it is
one of the newest ``size`` of its channel and younger than ``age`` seconds. A recovery (``since=offset``) is
complete exactly when the message at ``offset`` is still in history: then every later one is too.
"""

from __future__ import annotations

import fnmatch
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .broker import Message


@dataclass(frozen=True)
class History:
    """What a channel keeps for ``history()`` and recovery: the newest ``size`` messages (0 turns history off:
    ``publish`` then returns ``None``), each for at most ``age`` seconds (``None``: no age limit)."""

    size: int = 1000
    age: float | None = 300.0

    def __post_init__(self) -> None:
        if type(self.size) is not int or self.size < 0:
            raise ValueError(f"History.size is a count of messages, 0 or more, not {self.size!r}")
        if self.age is not None and not self.age > 0:
            raise ValueError(f"History.age is a number of seconds above 0 (or None), not {self.age!r}")

    @property
    def enabled(self) -> bool:
        """Whether the channel keeps anything."""
        return self.size > 0


DEFAULT_HISTORY = History()
"""The newest 1,000 messages of each channel, for 5 minutes."""


class HistoryPolicy:
    """The :class:`History` of each channel: the first ``patterns`` entry (``fnmatch`` patterns, such as
    ``"ticker.*"``, in the mapping's order) that matches the channel's name, else ``default``."""

    def __init__(self, default: History = DEFAULT_HISTORY, patterns: Mapping[str, History] | None = None) -> None:
        self.default = default
        self.patterns = dict(patterns or {})
        for pattern, history in self.patterns.items():
            if not isinstance(history, History):
                raise TypeError(f"history_for[{pattern!r}] is a History, not {history!r}")
        self._cache: dict[str, History] = {}

    def __call__(self, channel: str) -> History:
        """The history of ``channel``."""
        found = self._cache.get(channel)
        if found is None:
            found = next((h for p, h in self.patterns.items() if fnmatch.fnmatchcase(channel, p)), self.default)
            if len(self._cache) < 10_000:  # bounded: channel names may be unbounded (one per user)
                self._cache[channel] = found
        return found


class ChannelLog:
    """The history of one channel in this process: ``(message, when)`` pairs, oldest first."""

    __slots__ = ("entries", "history")

    def __init__(self, history: History) -> None:
        self.history = history
        self.entries: deque[tuple[Message, float, int]] = deque(maxlen=history.size)
        """(message, time.monotonic() when published, sequence number)."""

    def append(self, message: Message, sequence: int) -> None:
        """Remember ``message`` (the oldest goes when the log is full)."""
        self.entries.append((message, time.monotonic(), sequence))

    def trim(self) -> None:
        """Forget the messages older than the history's age."""
        if self.history.age is None:
            return
        cutoff = time.monotonic() - self.history.age
        entries = self.entries
        while entries and entries[0][1] < cutoff:
            entries.popleft()

    def after(self, sequence: int | None, limit: int | None) -> tuple[bool, list[Message]]:
        """Whether the message numbered ``sequence`` is held, and the messages after it (all of them when
        ``sequence`` is None: then ``limit`` keeps the newest, else the oldest)."""
        if sequence is None:
            messages = [entry[0] for entry in self.entries]
            return False, messages if limit is None else messages[len(messages) - limit :] if limit else []
        found = False
        messages = []
        for message, _, number in self.entries:
            if number > sequence:
                messages.append(message)
                if limit is not None and len(messages) >= limit:
                    break
            elif number == sequence:
                found = True
        return found, messages
