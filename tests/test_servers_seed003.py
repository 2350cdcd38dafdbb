"""Seed 003 (Emmett's ``websocket`` object), over real servers with a real client.

The seed's echo example is served from ``examples/seed_003.py``; the attributes, ``accept``, JSON and the rest
from ``tests/apps/lifecycle_obj.py`` (an ``App``).
"""

from __future__ import annotations

import json

import pytest
from servers import ALL_SERVERS, SENDS_EMPTY_MESSAGES, RunningServer, close_code_seen, new_key, read_until_closed
from websockets.asyncio.client import connect

pytestmark = pytest.mark.timeout(60)

SERVER_KINDS = ALL_SERVERS


@pytest.fixture(scope="module")
def seed(serve_app) -> RunningServer:  # type: ignore[no-untyped-def]
    return serve_app("seed_003:app")


@pytest.fixture(scope="module")
def obj(serve_app) -> RunningServer:  # type: ignore[no-untyped-def]
    return serve_app("lifecycle_obj:app")


# -- "a super simple echo websocket": implicit accept, default path "/" + function name -------------------
async def test_echo_example(seed: RunningServer, server_kind: str) -> None:
    mark = seed.log_mark()
    messages = ["hello", b"\x00bytes", "", "ünïcode ✓", b""]
    if not SENDS_EMPTY_MESSAGES.get(server_kind, True):
        messages = [message for message in messages if message]
    async with connect(seed.ws("/echo")) as ws:
        for message in messages:
            await ws.send(message)
            assert await ws.recv() == message
    async with connect(seed.ws("/echo")) as ws:  # the barrier: the first connection's handler has ended
        await ws.send("again")
        assert await ws.recv() == "again"
    assert "Traceback" not in seed.log(since=mark), "a client closing is not an error"


async def test_echo_example_keeps_order(seed: RunningServer) -> None:
    async with connect(seed.ws("/echo")) as ws:
        for i in range(200):
            await ws.send(f"message {i}")
        assert [await ws.recv() for _ in range(200)] == [f"message {i}" for i in range(200)]


async def test_default_path_is_the_function_name(obj: RunningServer) -> None:
    async with connect(obj.ws("/default_named")) as ws:
        messages, code, _ = await read_until_closed(ws)
    assert (messages, code) == (["served at /default_named"], 1000)


# -- the websocket object's attributes --------------------------------------------------------------------
async def test_attributes(obj: RunningServer) -> None:
    key = new_key()
    url = obj.ws(f"/attrs/lobby?key={key}&single=one&repeated=a&repeated=b")
    headers = {"Cookie": "session=abc; theme=dark", "X-Test": "yes", "User-Agent": "seed-003-test"}
    async with connect(url, additional_headers=headers, subprotocols=["chat.v1", "chat.v2"]) as ws:
        assert ws.subprotocol == "chat.v2", "accept(subprotocol=...) chose it"
        attributes = json.loads(await ws.recv())
        _, code, _ = await read_until_closed(ws)
    assert code == 1000
    assert attributes == {
        "room": "lobby",
        "scheme": "ws",
        "path": "/attrs/lobby",
        "host": f"127.0.0.1:{obj.port}",
        "x_test": "yes",
        "user_agent": "seed-003-test",
        "cookies": {"session": "abc", "theme": "dark"},
        "single": "one",
        "single_item": "one",
        "repeated": ["a", "b"],
        "missing_item": None,
        "missing_attr": None,
        "path_params": {"room": "lobby"},
        "subprotocols": ["chat.v1", "chat.v2"],
        "client_host": "127.0.0.1",
        "scope_path": "/attrs/lobby",
    }
    assert await obj.wait_events(key) == ["on_close", "done"]


# -- "when your code returns Emmett will close the connection" ---------------------------------------------
async def test_return_closes_with_1000_after_an_implicit_accept(obj: RunningServer) -> None:
    key = new_key()
    async with connect(obj.ws(f"/returns?key={key}")) as ws:
        messages, code, _ = await read_until_closed(ws)
    assert (messages, code) == (["bye soon"], 1000)
    assert await obj.wait_events(key) == ["on_close", "done"]


# -- async for, receive_json / send_json -------------------------------------------------------------------
async def test_async_for(obj: RunningServer) -> None:
    key = new_key()
    async with connect(obj.ws(f"/echo?key={key}")) as ws:
        for message in ["one", b"two", "three"]:
            await ws.send(message)
            assert await ws.recv() == message
    assert await obj.wait_events(key) == ["finally", "on_disconnect", "on_close", "done"]


@pytest.mark.parametrize("document", ['{"a": 1, "b": [1, 2.5, "x"], "c": null, "d": {"e": true}}', "[1, 2]",
                                      '"just a string"', "42"])
async def test_receive_json_send_json(obj: RunningServer, document: str) -> None:
    async with connect(obj.ws(f"/json?key={new_key()}")) as ws:
        await ws.send(document)
        assert json.loads(await ws.recv()) == json.loads(document)
        await ws.send(document.encode())  # JSON in a binary message is JSON too
        assert json.loads(await ws.recv()) == json.loads(document)


async def test_typed_receive_json_that_does_not_validate_closes_with_1007(
    obj: RunningServer, server_kind: str, request: pytest.FixtureRequest
) -> None:
    key = new_key()
    expected = close_code_seen(request, server_kind, 1007)
    async with connect(obj.ws(f"/typed?key={key}")) as ws:
        await ws.send('{"x": 1, "y": 2}')
        assert await ws.recv() == '{"sum":3}'
        await ws.send('{"x": "one", "y": 2}')
        messages, code, _ = await read_until_closed(ws)
    assert (messages, code) == ([], expected)
    assert await obj.wait_events(key) == ["on_close", "done"]
