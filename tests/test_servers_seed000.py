"""Seed 000 (shallot's websocket handlers), sentence by sentence, over real servers with a real client.

The seed's own examples are served from ``examples/seed_000.py``; what the examples do not show (bytes, route
parameters, middlewares, wrong yields, coroutine handlers) is served from ``tests/apps/lifecycle_gen.py``.
"""

from __future__ import annotations

import json

import pytest
from servers import (
    ALL_SERVERS,
    SENDS_EMPTY_MESSAGES,
    SMALL_SEND_BUFFER,
    RunningServer,
    client_socket,
    close_code_seen,
    handshake_refused,
    new_key,
    read_until_closed,
    send_dropped,
)
from websockets.asyncio.client import connect

pytestmark = pytest.mark.timeout(60)

DISCONNECTED = "-> Client Disconnected!"
CLOSED = "--> The connection has been closed! Either by the server or by the client"
SEED_MAX_MESSAGE_SIZE = 1024 * 1024  # build_server's default; examples/seed_000.py does not change it
SERVER_KINDS = ALL_SERVERS
SERVER_LIMITS_MESSAGE_SIZE = {"daphne": SEED_MAX_MESSAGE_SIZE}
"""Servers whose own message-size limit (their default) is no larger than the seed's: over it, daphne drops the
connection without a close frame before scallion sees the message (so the client gets no 1009, and scallion,
told of a departure, runs on_disconnect too). Raw ASGI proof in tests/test_servers_more.py."""


@pytest.fixture(scope="module")
def seed(serve_app) -> RunningServer:  # type: ignore[no-untyped-def]
    return serve_app("seed_000:app")


@pytest.fixture(scope="module")
def gen(serve_app) -> RunningServer:  # type: ignore[no-untyped-def]
    return serve_app("lifecycle_gen:app")


def hook_lines(log: str) -> list[str]:
    """The lines the hooks example prints, in order."""
    return [line for line in log.splitlines() if line in (DISCONNECTED, CLOSED)]


# -- "a simple echo-server implementation" ---------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/echo"])
async def test_echo_example(
    seed: RunningServer, path: str, server_kind: str, request: pytest.FixtureRequest
) -> None:
    expected = close_code_seen(request, server_kind, 1001)
    async with connect(seed.ws(path)) as ws:
        await ws.send("hello")
        assert await ws.recv() == "@ECHO: hello"
        await ws.send("exit")
        messages, code, _ = await read_until_closed(ws)
    assert messages == ["@ECHO: exit", "bybye"], "nothing is sent after ws_close"
    assert code == expected


async def test_echo_example_receives_str_or_bytes_as_the_client_chose(seed: RunningServer) -> None:
    async with connect(seed.ws("/echo")) as ws:
        await ws.send(b"raw")
        assert await ws.recv() == "@ECHO: b'raw'"  # the handler got bytes
        await ws.send("text")
        assert await ws.recv() == "@ECHO: text"


# -- hooks: "when a client disconnects you should see the following output" --------------------------------
async def test_hooks_example_client_closes(seed: RunningServer) -> None:
    """on_disconnect then on_close, each once per connection (a second connection is the barrier that shows
    the first printed nothing more)."""
    mark = seed.log_mark()
    for round_ in (1, 2):
        async with connect(seed.ws("/hooks")) as ws:
            await ws.send("hi")
            assert await ws.recv() == "@ECHO: hi"
        log = await seed.wait_for_log(CLOSED, since=mark, count=round_)
    assert hook_lines(log) == [DISCONNECTED, CLOSED] * 2


async def test_hooks_example_client_vanishes(seed: RunningServer) -> None:
    mark = seed.log_mark()
    ws = await connect(seed.ws("/hooks"))
    await ws.send("hi")
    assert await ws.recv() == "@ECHO: hi"
    ws.transport.abort()
    log = await seed.wait_for_log(CLOSED, since=mark)
    assert hook_lines(log) == [DISCONNECTED, CLOSED]


@pytest.mark.parametrize("send_buffer", [None, SMALL_SEND_BUFFER], ids=["default-sndbuf", "small-sndbuf"])
async def test_hooks_example_server_closes_runs_only_on_close(
    seed: RunningServer, server_kind: str, send_buffer: int | None
) -> None:
    """"on_disconnect will only be called when client closes the socket, on_close will be called anyway":
    the server closes this one (1009, message over max_message_size). With a small send buffer the message is
    still being written when the server reads its header (where daphne drops the connection)."""
    mark = seed.log_mark()
    server_drops = SERVER_LIMITS_MESSAGE_SIZE.get(server_kind, 2**63) <= SEED_MAX_MESSAGE_SIZE
    async with connect(seed.ws("/hooks"), sock=client_socket(seed.port, send_buffer)) as ws:
        message = b"x" * (SEED_MAX_MESSAGE_SIZE + 1)
        await (send_dropped(ws, message) if server_drops else ws.send(message))
        messages, code, _ = await read_until_closed(ws)
    assert (messages, code) == ([], None if server_drops else 1009)
    async with connect(seed.ws("/hooks")) as ws:  # the barrier
        await ws.send("hi")
        assert await ws.recv() == "@ECHO: hi"
    log = await seed.wait_for_log(CLOSED, since=mark, count=2)
    assert hook_lines(log) == [DISCONNECTED, CLOSED] * 2 if server_drops else [CLOSED, DISCONNECTED, CLOSED]


# -- on_connect -------------------------------------------------------------------------------------------
async def test_on_connect_accepts_with_the_subprotocol(seed: RunningServer) -> None:
    async with connect(seed.ws("/guarded?token=let-me-in"), subprotocols=["sub-123"]) as ws:
        assert ws.subprotocol == "sub-123"
        await ws.send("in")
        assert await ws.recv() == "@ECHO: in"


@pytest.mark.parametrize("query", ["", "?token=wrong"])
async def test_on_connect_refuses(seed: RunningServer, query: str) -> None:
    response = await handshake_refused(seed.ws(f"/guarded{query}"), subprotocols=["sub-123"])
    assert response.status_code == 403


# -- "The data can be str or bytes", "yield ... text or bytes" ---------------------------------------------
async def test_bytes_and_str_both_ways(gen: RunningServer, server_kind: str) -> None:
    messages = ["text", b"\x00\xffbinary", "", b"", "ünïcode ✓"]
    if not SENDS_EMPTY_MESSAGES.get(server_kind, True):  # daphne: tests/servers.py
        messages = [message for message in messages if message]
    async with connect(gen.ws(f"/echo?key={new_key()}")) as ws:
        for message in messages:
            await ws.send(message)
            assert await ws.recv() == message


# -- "used as a normal handler with all other middlewares, especially with routing" -----------------------
async def test_route_params_are_extra_arguments_and_middlewares_enrich_the_scope(gen: RunningServer) -> None:
    key = new_key()
    url = gen.ws(f"/scope/lobby/alice?key={key}&x=1&x=2&single=one")
    async with connect(url, additional_headers={"Cookie": "session=abc; theme=dark", "X-Test": "yes"}) as ws:
        scope = json.loads(await ws.recv())
        _, code, _ = await read_until_closed(ws)
    assert code == 1000
    assert scope["args"] == ["lobby", "alice"]
    assert scope["path_params"] == {"room": "lobby", "user": "alice"}
    assert (scope["path"], scope["method"]) == ("/scope/lobby/alice", "WS")
    assert scope["query_string"] == f"key={key}&x=1&x=2&single=one"
    assert (scope["cookie_header"], scope["x_test"]) == ("session=abc; theme=dark", "yes")
    assert scope["cookies"] == {"session": "abc", "theme": "dark"}
    assert scope["query_params"] == {"key": key, "x": ["1", "2"], "single": "one"}


# -- "Your data must be a dict with a key text or bytes and the type websocket.send" -------------------------
@pytest.mark.parametrize("variant", ["str", "none", "int-text", "no-type"])
async def test_yielding_a_wrong_type_closes_with_1011_and_logs_a_type_error(
    gen: RunningServer, variant: str, server_kind: str, request: pytest.FixtureRequest
) -> None:
    key = new_key()
    mark = gen.log_mark()
    expected = close_code_seen(request, server_kind, 1011)
    async with connect(gen.ws(f"/wrong/{variant}?key={key}")) as ws:
        messages, code, _ = await read_until_closed(ws)
    assert (messages, code) == (["first, a good one"], expected)
    assert await gen.wait_events(key) == ["on_close", "done"]
    log = await gen.wait_for_log("TypeError", since=mark)
    assert "lifecycle_gen.wrong_type" in log, log


# -- "By default shallot will close the websocket when you stop yielding messages" (1000) ------------------
async def test_generator_end_closes_with_1000(gen: RunningServer) -> None:
    key = new_key()
    async with connect(gen.ws(f"/returns?key={key}")) as ws:
        messages, code, _ = await read_until_closed(ws)
    assert (messages, code) == (["bye soon"], 1000)
    assert await gen.wait_events(key) == ["on_close", "done"]


# -- DESIGN.md: "A plain async def h(scope, receiver) coroutine is allowed too" -----------------------------
async def test_plain_coroutine_handler_runs_then_closes_with_1000(gen: RunningServer) -> None:
    key = new_key()
    async with connect(gen.ws(f"/coro?key={key}")) as ws:
        await ws.send("only one")
        messages, code, _ = await read_until_closed(ws)
    assert (messages, code) == ([], 1000)
    assert await gen.wait_events(key) == ["got:only one", "on_close", "done"]
