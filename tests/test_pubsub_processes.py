"""History, recovery and presence through Redis across real server processes (tests/apps/chat.py ``/feed``, on
every server of tests/servers.py), with a real websockets client and the test itself as one more process
publishing and asking for members through its own RedisBroker.

* recovery across a server-process restart: a client resumes on a new process from the last offset it saw;
* presence across two processes: members and join/leave events;
* a worker killed with SIGKILL: its members leave within ``presence_ttl * 4 / 3`` (the documented bound)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from redis_server import RedisServer
from servers import RunningServer
from websockets.asyncio.client import ClientConnection, connect

from scallion.pubsub import RedisBroker

pytestmark = pytest.mark.timeout(60)

TTL = 1.0
"""The apps' presence TTL, seconds: a killed worker's members must be gone within TTL * 4 / 3."""


@pytest.fixture
async def broker(redis_server: RedisServer) -> AsyncIterator[RedisBroker]:
    """The test's own broker on the session's Redis (one more process)."""
    mine = RedisBroker(redis_server.url, presence_ttl=TTL)
    yield mine
    await mine.close()


def room() -> str:
    return f"room-{uuid.uuid4().hex[:8]}"


async def recv(ws: ClientConnection, timeout: float = 5) -> str:
    async with asyncio.timeout(timeout):
        message = await ws.recv()
    assert isinstance(message, str)
    return message


async def ready(ws: ClientConnection) -> tuple[str, int]:
    """The feed's first message: whether it recovered, and the pid of the process serving it."""
    word, recovered, pid = (await recv(ws)).split()
    assert word == "ready"
    return recovered, int(pid)


async def until(condition: Callable[[], object], timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not await condition():  # type: ignore[misc]
            await asyncio.sleep(0.01)  # polling a condition, not synchronisation


async def test_recovery_across_a_server_process_restart(
    serve_app: Callable[..., RunningServer], redis_server: RedisServer, broker: RedisBroker
) -> None:
    name = room()
    first = serve_app("chat:app", SCALLION_TEST_REDIS=redis_server.url)
    async with connect(first.ws(f"/feed/{name}")) as ws:
        assert (await ready(ws))[0] == "False"  # no since: live only
        for n in range(3):
            await broker.publish(name, f"before {n}")
        seen = [(await recv(ws)).split(" ", 2) for _ in range(3)]
    assert [data for _, _, data in seen] == ["before 0", "before 1", "before 2"]
    last = seen[-1][1]
    first.stop()  # the process goes away; messages keep coming meanwhile
    missed = [await broker.publish(name, f"missed {n}") for n in range(5)]
    second = serve_app("chat:app", SCALLION_TEST_REDIS=redis_server.url)
    async with connect(second.ws(f"/feed/{name}?since={last}")) as ws:
        assert (await ready(ws))[0] == "True"
        live = await broker.publish(name, "live")
        got = [(await recv(ws)).split(" ", 2) for _ in range(6)]
    assert got == [["msg", offset, f"missed {n}"] for n, offset in enumerate(missed)] + [["msg", live, "live"]]
    second.stop()


async def test_presence_across_two_processes(
    serve_app: Callable[..., RunningServer], redis_server: RedisServer, broker: RedisBroker
) -> None:
    name = room()
    env = {"SCALLION_TEST_REDIS": redis_server.url, "SCALLION_TEST_PRESENCE_TTL": str(TTL)}
    first, second = serve_app("chat:app", **env), serve_app("chat:app", **env)
    async with connect(first.ws(f"/feed/{name}?user=ada")) as ada:
        await ready(ada)
        assert await recv(ada) == "join ada"
        async with connect(second.ws(f"/feed/{name}?user=bob")) as bob, connect(second.ws(f"/feed/{name}?user=bob")):
            await ready(bob)
            assert await recv(ada) == "join bob"  # once, though bob has two sockets
            assert await broker.members(name) == {"ada": {"user": "ada"}, "bob": {"user": "bob"}}
        assert await recv(ada) == "leave bob"
        assert await broker.members(name) == {"ada": {"user": "ada"}}
    await until(lambda: _empty(broker, name))


async def _empty(broker: RedisBroker, name: str) -> bool:
    return await broker.members(name) == {}


async def test_a_worker_killed_with_sigkill_has_its_members_leave_within_the_ttl(
    serve_app: Callable[..., RunningServer], redis_server: RedisServer, broker: RedisBroker
) -> None:
    name = room()
    env = {"SCALLION_TEST_REDIS": redis_server.url, "SCALLION_TEST_PRESENCE_TTL": str(TTL)}
    first, doomed = serve_app("chat:app", **env), serve_app("chat:app", **env)
    async with connect(first.ws(f"/feed/{name}?user=ada")) as ada:
        await ready(ada)
        assert await recv(ada) == "join ada"
        bob = await connect(doomed.ws(f"/feed/{name}?user=bob"))
        _, pid = await ready(bob)
        assert await recv(ada) == "join bob"
        os.kill(pid, signal.SIGKILL)  # the worker holding bob's membership dies without a word
        killed = time.monotonic()
        assert await recv(ada, timeout=TTL * 4 / 3 + 2) == "leave bob"
        took = time.monotonic() - killed
        print(f"a SIGKILLed worker's member left after {took * 1000:.0f} ms (TTL {TTL} s)")
        assert took < TTL * 4 / 3 + 0.25  # the documented bound, plus scheduling slack on a busy machine
        assert await broker.members(name) == {"ada": {"user": "ada"}}
        with_bob_gone = bob
    await with_bob_gone.close()
    doomed.stop()
