"""The queued broadcast every framework writes the same way: one publish puts the message in a queue per
subscriber, and each subscriber's own task sends what its queue holds (while the handler reads, so a departure
is seen). It is what ``scallion.pubsub`` does, so the generator style (which can only send on its own
connection) and every other framework are compared on equal terms; the hand-written sequential broadcast
(the publisher sends to each subscriber in turn) stays as a second row.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Fanout(Generic[T]):
    """The subscribers' queues of one broadcast channel."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[T]] = set()

    def publish(self, message: T) -> None:
        """Queue ``message`` for every subscriber."""
        for queue in self.queues:
            queue.put_nowait(message)

    @contextlib.asynccontextmanager
    async def subscriber(self, send: Callable[[T], Awaitable[object]]) -> AsyncIterator[None]:
        """While the block runs, a task sends this subscriber what is published (with ``send``)."""
        queue: asyncio.Queue[T] = asyncio.Queue()

        async def forward() -> None:
            while True:
                await send(await queue.get())

        self.queues.add(queue)
        task = asyncio.create_task(forward())
        try:
            yield
        finally:
            self.queues.discard(queue)
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
