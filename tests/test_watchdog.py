"""The disconnect watchdog's own books, in-process: idle sockets are parked (a tick skips them) until their
reader gets an event, and everything the watchdog promises still holds for a parked socket (a departure, the
message rate, the read-ahead); a receive cancelled while it held the watchdog's reader leaves the socket watched.
The behaviour on real servers is in tests/test_faults.py and tests/test_servers_backpressure.py."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import pytest

from scallion import App, websocket
from scallion.connection import WATCH_PERIOD, Connection, Watchdog, _watchdogs
from scallion.testing import TestClient

pytestmark = pytest.mark.timeout(30)


def routed(path: str, handler: Any, **options: Any) -> App:
    hooks = {name: options.pop(name) for name in ("on_disconnect", "on_close") if name in options}
    app = App(**options)
    app.websocket(path, **hooks)(handler)
    return app


def the_watchdog() -> Watchdog:
    dog = _watchdogs.get(asyncio.get_running_loop())
    assert dog is not None, "no websocket has been watched on this loop"
    return dog


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait (looking every few ms) until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.005)


def watched(dog: Watchdog) -> set[Connection]:
    return dog.connections | dog.parked


async def test_an_idle_socket_is_parked_and_its_next_message_brings_it_back() -> None:
    seen: list[str] = []

    async def handler() -> None:
        await websocket.accept()
        await asyncio.sleep(0.2)  # not reading: the watchdog's reader reads ahead
        seen.append(await websocket.receive())
        await asyncio.sleep(60)

    async with TestClient(routed("/", handler)) as client, client.websocket("/") as ws:
        dog = the_watchdog()
        await until(lambda: len(dog.parked) == 1)
        (connection,) = dog.parked
        assert connection not in dog.connections
        await ws.send("hello")
        await until(lambda: seen == ["hello"])
        assert connection in watched(dog)
        await until(lambda: connection in dog.parked)  # idle again: parked again


async def test_a_parked_socket_still_sees_its_client_leave() -> None:
    events: list[str] = []

    async def handler() -> None:
        await websocket.accept()
        try:
            await asyncio.sleep(60)
        finally:
            events.append("cancelled")

    async def on_disconnect(scope: Any) -> None:
        events.append("on_disconnect")

    app = routed("/", handler, on_disconnect=on_disconnect)
    async with TestClient(app) as client:
        ws = client.websocket("/")
        await ws.__aenter__()
        dog = the_watchdog()
        await until(lambda: len(dog.parked) == 1)
        left = time.monotonic()
        await ws.close(1001)  # returns once the application has finished
        assert events == ["cancelled", "on_disconnect"]
        assert time.monotonic() - left < 4 * WATCH_PERIOD + 0.5
        await until(lambda: not watched(dog))


async def test_a_parked_socket_is_still_held_to_the_message_rate() -> None:
    async def handler() -> None:
        await websocket.accept()
        await asyncio.sleep(60)  # never reads: everything the client sends is read ahead

    async with TestClient(routed("/", handler, max_message_rate=10)) as client, client.websocket("/") as ws:
        dog = the_watchdog()
        await until(lambda: len(dog.parked) == 1)
        for n in range(40):  # four times the bucket, within the read-ahead bound (64)
            await ws.send(f"m{n}")
        assert await ws.wait_closed() == 1008
        assert "more than 10 messages per second" in ws.close_reason


async def test_a_socket_with_an_idle_timeout_is_never_parked() -> None:
    async def handler() -> None:
        await websocket.accept()
        await asyncio.sleep(60)

    async with TestClient(routed("/", handler, idle_timeout=0.3)) as client, client.websocket("/") as ws:
        dog = the_watchdog()
        await until(lambda: len(dog.connections) == 1)
        for _ in range(5):  # five ticks, never parked: the idle clock must run
            before = dog.last
            await until(lambda before=before: dog.last != before)
            assert not dog.parked
        assert await ws.wait_closed() == 1001


async def test_a_receive_cancelled_while_holding_the_watchdogs_reader_leaves_the_socket_watched() -> None:
    """The handler stops reading after a receive of its timed out; the departure must still be seen."""
    events: list[str] = []
    timed_out = asyncio.Event()

    async def handler() -> None:
        await websocket.accept()
        await asyncio.sleep(0.1)  # the watchdog's reader is out
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(websocket.receive(), 0.05)  # takes that reader, then is cancelled
        timed_out.set()
        try:
            await asyncio.sleep(60)
        finally:
            events.append("cancelled")

    async def on_disconnect(scope: Any) -> None:
        events.append("on_disconnect")

    app = routed("/", handler, on_disconnect=on_disconnect)
    async with TestClient(app) as client:
        ws = client.websocket("/")
        await ws.__aenter__()
        await asyncio.wait_for(timed_out.wait(), 5)
        await asyncio.wait_for(ws.close(1001), 5)  # returns once the application has finished
        assert events == ["cancelled", "on_disconnect"]


@pytest.mark.parametrize("idle_first", [True, False], ids=["watchdog-reader-out", "reading-directly"])
async def test_receive_with_a_timeout_in_a_loop_loses_nothing(idle_first: bool) -> None:
    """The heartbeat pattern: ``wait_for(receive(), timeout)`` again and again; each message still arrives once."""
    timeouts = asyncio.Event()

    async def handler() -> None:
        await websocket.accept()
        if idle_first:
            await asyncio.sleep(0.1)  # the watchdog's reader is out before the first receive
        while True:
            try:
                message = await asyncio.wait_for(websocket.receive(), 0.03)
            except TimeoutError:
                timeouts.set()
                continue
            await websocket.send(f"got {message}")

    async with TestClient(routed("/", handler)) as client, client.websocket("/") as ws:
        await asyncio.wait_for(timeouts.wait(), 5)
        for n in range(5):
            await ws.send(f"m{n}")
            assert await asyncio.wait_for(ws.receive(), 5) == f"got m{n}"
            timeouts.clear()
            await asyncio.wait_for(timeouts.wait(), 5)  # a receive timed out between two messages


async def test_the_clients_answer_to_a_server_close_does_not_cancel_the_handler() -> None:
    """After ``websocket.close()``, the client's own close (the end of the closing handshake, read by the
    watchdog's reader) is not a departure: the handler goes on to its end (seen on granian, 1 run in 3)."""
    went_on = asyncio.Event()

    async def handler() -> None:
        await websocket.accept()
        await asyncio.sleep(0.1)  # not reading: the watchdog's reader is out
        await websocket.close(4000, "done here")
        await asyncio.sleep(0.2)  # the client's close comes in meanwhile
        went_on.set()

    async with TestClient(routed("/", handler)) as client, client.websocket("/") as ws:
        assert await ws.wait_closed() == 4000
        await asyncio.wait_for(went_on.wait(), 5)
