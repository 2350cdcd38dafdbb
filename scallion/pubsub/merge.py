"""``merge``: the items of several async iterables, as they come."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, TypeVar

T = TypeVar("T")


async def merge(*sources: AsyncIterable[T]) -> AsyncIterator[T]:
    """Yield the items of ``sources`` in the order they arrive; stop as soon as any source ends.

    Made for a websocket handler that waits on its client and on a subscription at once::

        async for item in merge(receiver, subscription):   # ends when the client leaves
            ...

    Each source has one read in flight (in a task); when the merge stops (a source ended or raised, or the
    loop was left), the reads in flight are cancelled, so no item is taken from a source and then dropped,
    except those that completed in the same instant as the end. A source's exception propagates.
    """
    if not sources:
        return
    iterators = [aiter(source) for source in sources]
    pending: dict[asyncio.Future[Any], int] = {asyncio.ensure_future(anext(it)): i for i, it in enumerate(iterators)}
    try:
        while True:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            future = min(done, key=pending.__getitem__)  # one item per turn, the first source first
            index = pending.pop(future)
            try:
                item = future.result()
            except StopAsyncIteration:
                return
            yield item
            pending[asyncio.ensure_future(anext(iterators[index]))] = index
    finally:
        for future in pending:
            future.cancel()
        if pending:
            await asyncio.wait(pending)
