"""What every broker promises, run against a MemoryBroker and a RedisBroker (on the session's real redis-server):
offsets, bounded history (size, age, per pattern), recovery with ``since`` (no gap and no duplicate at the seam,
even while 10,000 publishes race with the subscribes), and presence (join/leave, members, events).

Redis-only behaviour (several processes, a SIGKILLed worker, Redis restarts) is in tests/test_pubsub_redis.py."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis_server import RedisServer

from scallion.pubsub import Broker, History, MemoryBroker, Message, Presence, RedisBroker, Subscription

pytestmark = pytest.mark.timeout(60)

Make = Callable[..., Broker]


@pytest.fixture(params=["memory", "redis"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Make]:
    """Make brokers of one kind (closed after the test). Two RedisBrokers act as two processes; two calls for a
    MemoryBroker give the same broker (one process), so tests that need two processes are Redis-only."""
    made: list[Broker] = []
    shared: list[MemoryBroker] = []

    def build(**options: Any) -> Broker:
        broker: Broker
        if request.param == "memory":
            if shared:
                return shared[0]
            broker = MemoryBroker(**options)
            shared.append(broker)
        else:
            server: RedisServer = request.getfixturevalue("redis_server")
            broker = RedisBroker(server.url, **options)
        made.append(broker)
        return broker

    yield build
    for broker in made:
        await broker.close()


def channel(name: str) -> str:
    """A channel of this test alone (the Redis server is shared by the session)."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def take(subscription: Subscription[Any], count: int, timeout: float = 5) -> list[Any]:
    """The next ``count`` items of a subscription (failing after ``timeout`` s)."""
    async with asyncio.timeout(timeout):
        return [await anext(subscription) for _ in range(count)]


async def nothing_more(subscription: Subscription[Any], probe: Callable[[], Any]) -> None:
    """Nothing is queued before what ``probe`` publishes (a message that must come next)."""
    await probe()
    item = (await take(subscription, 1))[0]
    assert item.data == "probe", f"unexpected {item!r} before the probe"


def datas(messages: list[Any]) -> list[str | bytes]:
    return [message.data for message in messages]


# -- offsets and history ----------------------------------------------------------------------------------
async def test_publish_returns_ordered_offsets_that_messages_carry(make: Make) -> None:
    broker = make()
    room = channel("offsets")
    async with broker.subscribe(room) as subscription:
        offsets = [await broker.publish(room, f"m{n}") for n in range(5)]
        received = await take(subscription, 5)
    assert all(type(offset) is str for offset in offsets)
    assert [m.offset for m in received] == offsets
    assert received[0] == Message(room, "m0", offsets[0])
    channel_name, data, *_ = received[0]  # a Message still unpacks as (channel, data, ...)
    assert (channel_name, data) == (room, "m0")
    orders = [broker.offset_order(offset) for offset in offsets]  # type: ignore[arg-type]
    assert None not in orders and orders == sorted(orders) and len(set(orders)) == 5


async def test_history_oldest_first_with_since_and_limit(make: Make) -> None:
    broker = make()
    room = channel("history")
    offsets = [await broker.publish(room, f"m{n}") for n in range(6)]
    everything = await broker.history(room)
    assert everything == [Message(room, f"m{n}", offsets[n]) for n in range(6)]
    assert datas(await broker.history(room, limit=2)) == ["m4", "m5"]  # the newest two
    assert datas(await broker.history(room, since=offsets[1])) == ["m2", "m3", "m4", "m5"]
    assert datas(await broker.history(room, since=offsets[1], limit=2)) == ["m2", "m3"]  # the next two
    assert await broker.history(room, since=offsets[5]) == []
    assert await broker.history(channel("empty")) == []
    with pytest.raises(ValueError, match="limit"):
        await broker.history(room, limit=-1)


async def test_history_keeps_the_newest_size_messages(make: Make) -> None:
    broker = make(history=History(size=3, age=None))
    room = channel("size")
    for n in range(10):
        await broker.publish(room, str(n))
    assert datas(await broker.history(room)) == ["7", "8", "9"]


async def test_history_per_channel_pattern_and_off(make: Make) -> None:
    broker = make(history=History(size=2), history_for={"quiet-*": History(size=0), "big-*": History(size=5)})
    quiet, big, other = channel("quiet"), channel("big"), channel("other")
    async with broker.subscribe(quiet) as subscription:
        assert await broker.publish(quiet, "no history") is None
        assert await take(subscription, 1) == [Message(quiet, "no history", None)]
    assert await broker.history(quiet) == []
    for n in range(6):
        await broker.publish(big, str(n))
        await broker.publish(other, str(n))
    assert datas(await broker.history(big)) == ["1", "2", "3", "4", "5"]
    assert datas(await broker.history(other)) == ["4", "5"]
    with pytest.raises(ValueError, match=r"History\.size"):
        History(size=-1)
    with pytest.raises(ValueError, match=r"History\.age"):
        History(age=0)


async def test_history_expires_by_age(make: Make) -> None:
    broker = make(history=History(size=100, age=0.3))
    room = channel("age")
    first = await broker.publish(room, "old")
    assert datas(await broker.history(room)) == ["old"]
    started = time.monotonic()
    async with asyncio.timeout(5):
        while await broker.history(room):  # polling the condition: the message ages out
            await asyncio.sleep(0.02)
    assert time.monotonic() - started >= 0.2  # not before its age (less the time of the first look)
    await broker.publish(room, "new")
    assert datas(await broker.history(room)) == ["new"]
    async with broker.subscribe(room, since=first) as subscription:  # the offset aged out: not recovered
        assert subscription.recovered is False


# -- recovery ---------------------------------------------------------------------------------------------
async def test_subscribe_since_replays_what_followed_then_goes_live(make: Make) -> None:
    broker = make()
    room = channel("recover")
    offsets = [await broker.publish(room, f"m{n}") for n in range(4)]
    async with broker.subscribe(room, since=offsets[1]) as subscription:
        assert subscription.recovered is True
        await broker.publish(room, "live")
        received = await take(subscription, 3)
        assert datas(received) == ["m2", "m3", "live"]
        assert [m.offset for m in received[:2]] == offsets[2:]
        await nothing_more(subscription, lambda: broker.publish(room, "probe"))
    async with broker.subscribe(room, since=await broker.publish(room, "last")) as caught_up:
        assert caught_up.recovered is True  # nothing after it yet: recovered, nothing replayed
        await nothing_more(caught_up, lambda: broker.publish(room, "probe"))


async def test_plain_subscribe_is_live_only(make: Make) -> None:
    broker = make()
    room = channel("live")
    await broker.publish(room, "before")
    async with broker.subscribe(room) as subscription:
        assert subscription.recovered is False
        await nothing_more(subscription, lambda: broker.publish(room, "probe"))


async def test_since_older_than_history_says_not_recovered_and_replays_nothing(make: Make) -> None:
    broker = make(history=History(size=3, age=None))
    room = channel("trimmed")
    first = await broker.publish(room, "0")
    for n in range(1, 6):
        await broker.publish(room, str(n))
    async with broker.subscribe(room, since=first) as subscription:
        assert subscription.recovered is False  # 1 and 2 are gone: the app must resynchronise
        await nothing_more(subscription, lambda: broker.publish(room, "probe"))
    for foreign in ("0-1", "garbage", "99999999999999-0"):
        async with broker.subscribe(room, since=foreign) as subscription:
            assert subscription.recovered is False
            await nothing_more(subscription, lambda: broker.publish(room, "probe"))


async def test_since_is_for_one_channel(make: Make) -> None:
    broker = make()
    with pytest.raises(ValueError, match="one channel"):
        broker.subscribe("a", "b", since="1-1")
    with pytest.raises(TypeError, match="since is an offset"):
        broker.subscribe("a", since=5)  # type: ignore[arg-type]


async def test_the_seam_no_gap_no_duplicate_while_10000_publishes_race_with_subscribes(make: Make) -> None:
    total = 10_000
    publisher = make(history=History(size=2 * total, age=None))
    subscriber = make(history=History(size=2 * total, age=None))  # another process, with Redis
    room = channel("seam")
    start = await publisher.publish(room, "start")
    assert start is not None
    published: list[str] = []
    subscribed: list[int] = []  # how many had been published when each subscription was entered

    async def publish() -> None:
        for n in range(total):
            await publisher.publish(room, str(n))
            published.append(str(n))
            if n % 50 == 0:
                await asyncio.sleep(0)  # let the subscribers in (the memory broker never waits otherwise)

    async def follow() -> list[Any]:
        async with subscriber.subscribe(room, since=start, max_queue=2 * total) as subscription:
            subscribed.append(len(published))
            assert subscription.recovered is True
            received = []
            async with asyncio.timeout(30):
                while len(received) < total:
                    received.append(await anext(subscription))
            return received

    async def staggered(step: int) -> list[Any]:
        while len(published) < step:  # enter at different points of the run
            await asyncio.sleep(0.001)  # polling a condition, not synchronisation
        return await follow()

    async with asyncio.timeout(50):
        results = await asyncio.gather(publish(), *(staggered(step) for step in (0, 1, 500, 3000, 7000)))
    expected = [str(n) for n in range(total)]
    for received in results[1:]:
        assert datas(received) == expected  # in order, none missing, none twice
        orders = [subscriber.offset_order(m.offset) for m in received]
        assert orders == sorted(orders)
    assert len(set(subscribed)) > 1, f"every subscription entered at the same point: {subscribed}"


# -- presence ---------------------------------------------------------------------------------------------
async def test_join_makes_a_member_present_until_its_last_socket_leaves(make: Make) -> None:
    broker = make()
    room = channel("presence")
    assert await broker.members(room) == {}
    async with broker.join(room, "ada", info={"name": "Ada"}):
        assert await broker.members(room) == {"ada": {"name": "Ada"}}
        async with broker.join(room, "ada", info={"name": "Ada, second tab"}), broker.join(room, "bob"):
            assert await broker.members(room) == {"ada": {"name": "Ada"}, "bob": None}
        assert await broker.members(room) == {"ada": {"name": "Ada"}}  # ada still has a socket
    assert await broker.members(room) == {}
    with pytest.raises(TypeError, match="member_id"):
        broker.join(room, "")


async def test_presence_events_are_opt_in_one_join_and_one_leave_per_member(make: Make) -> None:
    broker = make()
    room = channel("events")
    async with broker.subscribe(room, presence=True) as watching, broker.subscribe(room) as not_watching:
        async with broker.join(room, "ada", info={"n": 1}):
            async with broker.join(room, "ada", info={"n": 2}):
                pass
            await broker.publish(room, "between")
        assert await take(watching, 3) == [
            Presence(room, "join", "ada", {"n": 1}),
            Message(room, "between", (await broker.history(room, limit=1))[0].offset),
            Presence(room, "leave", "ada", {"n": 1}),
        ]
        await nothing_more(watching, lambda: broker.publish(room, "probe"))
        assert datas(await take(not_watching, 2)) == ["between", "probe"]  # no presence events without asking


async def test_a_membership_is_entered_once_and_leaving_after_close_is_quiet(make: Make) -> None:
    broker = make()
    room = channel("once")
    membership = broker.join(room, "ada")
    async with membership:
        with pytest.raises(RuntimeError, match="already in use"):
            async with membership:
                pass
        await broker.close()
    assert await broker.members(room) == {}
