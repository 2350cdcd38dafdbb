"""scallion.pubsub: MemoryBroker, RedisBroker (against a real redis-server) and merge; a chat over both brokers in
both handler styles, in process and across two real server processes sharing one Redis. Redis going away and coming
back: tests/test_pubsub_redis.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from apps.chat import chat_app
from redis.asyncio import Redis
from redis_server import RedisServer
from servers import RunningServer
from websockets.asyncio.client import connect

from scallion.pubsub import (
    Broker,
    MemoryBroker,
    Message,
    RedisBroker,
    Subscription,
    SubscriptionOverflow,
    merge,
)
from scallion.testing import TestClient

pytestmark = pytest.mark.timeout(60)


async def take(subscription: Subscription[Message], count: int) -> list[Message]:
    """The next ``count`` messages of a subscription (failing after 5 s), without their offsets (which
    tests/test_pubsub_conformance.py checks)."""
    async with asyncio.timeout(5):
        return [bare(await anext(subscription)) for _ in range(count)]


def bare(message: Message) -> Message:
    """``message`` without its offset."""
    return Message(message.channel, message.data)


# -- MemoryBroker -----------------------------------------------------------------------------------------
async def test_memory_delivers_what_was_published_to_every_subscriber_of_the_channel() -> None:
    broker = MemoryBroker()
    async with broker.subscribe("a") as first, broker.subscribe("a", "b") as second, broker.subscribe("c") as third:
        await broker.publish("a", "text")
        await broker.publish("b", b"\x00bytes")
        assert await take(first, 1) == [Message("a", "text")]
        assert await take(second, 2) == [Message("a", "text"), Message("b", b"\x00bytes")]
        assert not third._queue  # nothing was delivered to it
    assert broker.subscribers == {}  # leaving the block unsubscribes


async def test_publishing_to_a_channel_without_subscribers_is_fine() -> None:
    broker = MemoryBroker()
    await broker.publish("nobody", "hello")


async def test_bad_input_is_a_clear_error() -> None:
    broker = MemoryBroker()
    with pytest.raises(TypeError, match="publish takes str or bytes, not int"):
        await broker.publish("a", 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one channel"):
        broker.subscribe()
    with pytest.raises(TypeError, match="non-empty str"):
        broker.subscribe("")
    with pytest.raises(ValueError, match="max_queue"):
        MemoryBroker(max_queue=0)


async def test_a_subscriber_too_far_behind_is_cut_off_after_what_it_had() -> None:
    broker = MemoryBroker(max_queue=2)
    async with broker.subscribe("a") as slow, broker.subscribe("a", max_queue=10) as fast:
        for number in range(5):
            await broker.publish("a", str(number))
        assert [m.data for m in await take(slow, 2)] == ["0", "1"]
        with pytest.raises(SubscriptionOverflow, match="fell 2 messages behind; 3 dropped") as info:
            await anext(slow)
        assert info.value.dropped == 3
        assert [m.data for m in await take(fast, 5)] == ["0", "1", "2", "3", "4"]


async def test_close_ends_subscriptions_after_their_messages_and_the_broker_stays_usable() -> None:
    broker = MemoryBroker()
    async with broker.subscribe("a") as subscription:
        await broker.publish("a", "last")
        await broker.close()
        await broker.publish("a", "not for this subscription")
        assert [bare(message) async for message in subscription] == [Message("a", "last")]
    async with broker.subscribe("a") as again:  # an app started twice (tests) uses the same broker
        await broker.publish("a", "again")
        assert await take(again, 1) == [Message("a", "again")]


async def test_a_subscription_is_used_inside_its_async_with_block_once() -> None:
    broker = MemoryBroker()
    subscription = broker.subscribe("a")
    with pytest.raises(RuntimeError, match="inside `async with broker"):
        await anext(subscription)
    async with subscription:
        await broker.publish("a", "inside")
        assert await take(subscription, 1) == [Message("a", "inside")]
        with pytest.raises(RuntimeError, match="already in use"):
            async with subscription:
                pass
    await broker.publish("a", "after")  # not delivered: the block is over, and the iterator ends
    assert [message async for message in subscription] == []


# -- merge ------------------------------------------------------------------------------------------------
async def test_merge_yields_items_as_they_come_and_stops_when_one_source_ends() -> None:
    first: asyncio.Queue[str | None] = asyncio.Queue()
    second: asyncio.Queue[str | None] = asyncio.Queue()

    async def drain(queue: asyncio.Queue[str | None]) -> AsyncIterator[str]:
        while (item := await queue.get()) is not None:
            yield item

    seen: list[str] = []
    async with asyncio.timeout(5):
        merged = merge(drain(first), drain(second))
        first.put_nowait("1a")
        seen.append(await anext(merged))
        second.put_nowait("2a")
        seen.append(await anext(merged))
        first.put_nowait("1b")
        seen.append(await anext(merged))
        second.put_nowait(None)  # the second source ends: so does the merge
        with pytest.raises(StopAsyncIteration):
            await anext(merged)
    assert seen == ["1a", "2a", "1b"]


async def test_merge_cancels_the_reads_in_flight_when_it_stops() -> None:
    cancelled = asyncio.Event()

    async def forever() -> AsyncIterator[str]:
        try:
            await asyncio.Event().wait()
            yield "never"
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def two() -> AsyncIterator[str]:
        yield "x"
        yield "y"

    async with asyncio.timeout(5):
        assert [item async for item in merge(forever(), two())] == ["x", "y"]
        await cancelled.wait()


async def test_merge_propagates_a_source_error() -> None:
    async def broken() -> AsyncIterator[str]:
        yield "fine"
        raise ValueError("source broke")

    async def quiet() -> AsyncIterator[str]:
        await asyncio.Event().wait()
        yield "never"

    with pytest.raises(ValueError, match="source broke"):
        async with asyncio.timeout(5):
            async for _ in merge(broken(), quiet()):
                pass


# -- RedisBroker ------------------------------------------------------------------------------------------
@pytest.fixture
async def redis_brokers(redis_server: RedisServer) -> AsyncIterator[Callable[..., RedisBroker]]:
    """Make RedisBrokers on the test Redis (as if in different processes); closed after the test."""
    made: list[RedisBroker] = []

    def make(**options: Any) -> RedisBroker:
        broker = RedisBroker(redis_server.url, **options)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        await broker.close()


async def numsub(url: str, channel: str) -> int:
    """How many Redis connections are subscribed to ``channel``."""
    client = Redis.from_url(url)
    try:
        return int(dict(await client.pubsub_numsub(channel))[channel.encode()])
    finally:
        await client.aclose()


async def test_redis_reaches_the_subscribers_of_every_process(
    redis_brokers: Callable[..., RedisBroker], redis_server: RedisServer
) -> None:
    one, two = redis_brokers(), redis_brokers()
    async with one.subscribe("room") as here, two.subscribe("room") as there, two.subscribe("room") as again:
        assert await numsub(redis_server.url, "room") == 2  # one Redis subscription per process
        await one.publish("room", "hello")
        await two.publish("room", b"\xff\x00")
        for subscription in (here, there, again):
            assert await take(subscription, 2) == [Message("room", "hello"), Message("room", b"\xff\x00")]
    assert await numsub(redis_server.url, "room") == 0  # the last subscriber out unsubscribes its process


async def test_redis_decode_false_gives_bytes_and_decode_warns_on_binary(
    redis_brokers: Callable[..., RedisBroker], caplog: pytest.LogCaptureFixture
) -> None:
    raw, text = redis_brokers(decode=False), redis_brokers()
    async with raw.subscribe("b") as raw_sub, text.subscribe("b") as text_sub:
        with caplog.at_level(logging.WARNING, logger="scallion.pubsub"):
            await raw.publish("b", "é")
            await raw.publish("b", b"\xff")
            assert await take(raw_sub, 2) == [Message("b", "é".encode()), Message("b", b"\xff")]
            assert await take(text_sub, 2) == [Message("b", "é"), Message("b", b"\xff")]
    assert "not UTF-8" in caplog.text


async def test_redis_broker_is_usable_after_close(redis_brokers: Callable[..., RedisBroker]) -> None:
    broker = redis_brokers()
    async with broker.subscribe("r") as first:
        await broker.close()
        assert [message async for message in first] == []
    async with broker.subscribe("r") as second:
        await broker.publish("r", "reopened")
        assert await take(second, 1) == [Message("r", "reopened")]


async def test_redis_subscription_cancelled_while_subscribing_leaves_nothing_behind(
    redis_brokers: Callable[..., RedisBroker], redis_server: RedisServer
) -> None:
    broker = redis_brokers()

    async def join() -> None:
        async with broker.subscribe("cancelled"):
            await asyncio.Event().wait()

    task = asyncio.ensure_future(join())
    async with asyncio.timeout(5):
        while "cancelled" not in broker.subscribers:  # the task is now inside the SUBSCRIBE round trip
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.wait([task])
        assert broker.subscribers == {}
        while await numsub(redis_server.url, "cancelled"):  # polling Redis for the unsubscribe
            await asyncio.sleep(0.01)
    async with broker.subscribe("cancelled") as subscription:  # and the channel works afterwards
        await broker.publish("cancelled", "fine")
        assert await take(subscription, 1) == [Message("cancelled", "fine")]


async def test_redis_bad_input_is_a_clear_error(redis_brokers: Callable[..., RedisBroker]) -> None:
    broker = redis_brokers()
    with pytest.raises(TypeError, match="publish takes str or bytes, not dict"):
        await broker.publish("a", {"no": "json"})  # type: ignore[arg-type]


# -- a chat, in process -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_chat_in_both_styles(kind: str, redis_brokers: Callable[..., RedisBroker]) -> None:
    broker: Broker = MemoryBroker() if kind == "memory" else redis_brokers()
    app = chat_app(broker)
    async with (
        TestClient(app) as client,
        client.websocket("/gen/lobby") as alice,
        client.websocket("/obj/lobby") as bob,
        client.websocket("/obj/elsewhere") as carol,
    ):
        for ws in (alice, bob, carol):
            assert await ws.receive() == "ready"
        await alice.send("hi bob")
        assert await alice.receive() == "hi bob"
        assert await bob.receive() == "hi bob"
        await bob.send(b"\xffbinary")  # not UTF-8: bytes through Redis too
        assert await alice.receive() == b"\xffbinary"
        assert await bob.receive() == b"\xffbinary"
        await carol.send("alone")
        assert await carol.receive() == "alone"
    assert broker.subscribers == {}  # every socket's subscription ended with it


# -- a chat across two real server processes sharing Redis --------------------------------------------------
async def test_chat_across_two_servers(serve_app: Callable[..., RunningServer], redis_server: RedisServer) -> None:
    first = serve_app("chat:app", SCALLION_TEST_REDIS=redis_server.url)
    second = serve_app("chat:app", SCALLION_TEST_REDIS=redis_server.url)
    async with (
        asyncio.timeout(15),
        connect(first.ws("/gen/room")) as alice,
        connect(second.ws("/obj/room")) as bob,
    ):
        assert await alice.recv() == "ready"
        assert await bob.recv() == "ready"
        await alice.send("from the first server")
        assert await bob.recv() == "from the first server"
        assert await alice.recv() == "from the first server"
        await bob.send("from the second")
        assert await alice.recv() == "from the second"
        assert await bob.recv() == "from the second"
    async with asyncio.timeout(10):  # both sockets gone: no process stays subscribed
        while await numsub(redis_server.url, "room"):
            await asyncio.sleep(0.01)  # polling Redis for the unsubscribes, not synchronisation
