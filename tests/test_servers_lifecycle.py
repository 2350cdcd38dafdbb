"""The close-code and lifecycle table of DESIGN.md, row by row, over real servers with a real client.

Every test runs on every server (``server_kind``) and in both handler styles: seed-000 async generators in a
routing table (``tests/apps/lifecycle_gen.py``) and Emmett-style coroutines using the ``websocket`` object on
an ``App`` (``tests/apps/lifecycle_obj.py``). Hooks and ``finally`` blocks record events per connection key;
``done`` is recorded when the ASGI app returns, so once it is there the list of events is final.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from servers import (
    ALL_SERVERS,
    HTTP_RESPONSE_EXTENSION,
    RunningServer,
    close_code_seen,
    close_reason_seen,
    denial_seen,
    handshake_refused,
    new_key,
    read_until_closed,
    skip_unless_hypercorn_stops,
    start_server,
)
from websockets.asyncio.client import connect

pytestmark = pytest.mark.timeout(60)

SERVER_KINDS = ALL_SERVERS

MAX_MESSAGE_SIZE = 64 * 1024  # what both lifecycle apps configure
DISCONNECT_BOUND = 0.1
"""Seconds within which a departed client must be noticed (issue 3: "noticed within 100 ms")."""

SHUTDOWN_CODE = {
    # uvicorn closes every websocket itself with 1012 (service restart) when it stops, before the lifespan
    # shutdown in which scallion would close them with 1001 (uvicorn's protocols/websockets/*_impl.py shutdown()).
    "uvicorn-websockets-sansio": 1012,
    "uvicorn-wsproto": 1012,
    # granian would stop its Rust server first (dropping the sockets without a close frame, and with websockets in
    # flight aborting the worker); scallion's signal handler closes them with 1001 before (scallion/granian_signals.py).
    "granian": 1001,
    # hypercorn sends lifespan.shutdown while the websockets are still open: scallion closes them with 1001.
    "hypercorn": 1001,
    # daphne has no lifespan: scallion never hears of the shutdown; daphne stops its reactor, which drops the
    # connections without a close frame (tests/test_servers_more.py proves it with a raw ASGI app).
    "daphne": None,
}
"""The close code the client sees when the server shuts down, per server (DESIGN.md says 1001)."""

SHUTDOWN_RUNS_HANDLERS_OUT = {"daphne": False}
"""Whether the handlers' ``finally`` and ``on_close`` run at shutdown: not on daphne, whose stopping loop never
resumes the cancelled handlers (raw ASGI proof in tests/test_servers_more.py); on every other server they do."""


@pytest.fixture(scope="module", params=["gen", "obj"])
def style(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def server(serve_app, style: str) -> RunningServer:  # type: ignore[no-untyped-def]
    return serve_app(f"lifecycle_{style}:app")


def hooks(events: list[str]) -> list[str]:
    """Only the hook events, in order."""
    return [name for name in events if name in ("on_disconnect", "on_close")]


# -- handler returns / generator ends -------------------------------------------------------------------
async def test_handler_returns_closes_with_1000(server: RunningServer) -> None:
    key = new_key()
    async with connect(server.ws(f"/returns?key={key}")) as ws:
        messages, code, _ = await read_until_closed(ws)
    assert messages == ["bye soon"]
    assert code == 1000
    assert await server.wait_events(key) == ["on_close", "done"]


# -- ws_close(code) / websocket.close(code) -------------------------------------------------------------
@pytest.mark.parametrize("close_code", [4321, 1001, 3000])
async def test_close_with_a_code(
    server: RunningServer, style: str, close_code: int, server_kind: str, request: pytest.FixtureRequest
) -> None:
    key = new_key()
    expected = (close_code_seen(request, server_kind, close_code), close_reason_seen(server_kind, "custom reason"))
    async with connect(server.ws(f"/close/{close_code}?key={key}")) as ws:
        messages, code, reason = await read_until_closed(ws)
    assert messages == ["closing"], "nothing may be sent after the close"
    assert (code, reason) == expected
    events = await server.wait_events(key)
    if style == "gen":
        assert events == ["on_close", "done"], "the generator must not resume after yielding ws_close"
    else:
        assert events == ["send-after-close-raised:WebSocketClosedError", "on_close", "done"]


# -- client closes or vanishes ----------------------------------------------------------------------------
FIRST_MESSAGE = {"echo": "hi", "ticker": "tick 0", "sleeper": "sleeping"}


@pytest.mark.parametrize("how", ["closes", "vanishes"])
@pytest.mark.parametrize("handler", ["echo", "ticker", "sleeper"])
async def test_client_leaves(server: RunningServer, handler: str, how: str) -> None:
    """The handler (reading, only sending, or only sleeping) is stopped, its ``finally`` runs, then
    on_disconnect and on_close, each once, within DISCONNECT_BOUND of the client leaving."""
    key = new_key()
    ws = await connect(server.ws(f"/{handler}?key={key}"))
    if handler == "echo":
        await ws.send("hi")
    assert await ws.recv() == FIRST_MESSAGE[handler]
    left = time.time()
    if how == "closes":
        await ws.close()
    else:
        ws.transport.abort()  # no close frame: the TCP connection just goes away
    events = await server.wait_events(key)
    assert events == ["finally", "on_disconnect", "on_close", "done"]
    noticed = dict((name, stamp) for stamp, name in server.events(key))["finally"] - left
    assert noticed < DISCONNECT_BOUND, f"the departed client was noticed after {noticed:.3f}s"


SPINNER_CLOSES = 20
"""Connections closed by the client while ``/spinner`` sends at every turn of the loop."""


async def test_client_closes_while_the_handler_sends_at_every_turn(server: RunningServer) -> None:
    """The client's close frame lands between two sends of a handler that sends at every turn of the loop (where a
    server may already refuse sends and not yet have said ``websocket.disconnect``): each time the handler is stopped,
    its ``finally`` runs, then on_disconnect and on_close. On daphne, whose send raises autobahn's ``Disconnected``
    there (``SEND_RAISES_AFTER_CLIENT_CLOSE``), this failed before scallion took that for the departure it is."""
    for _ in range(SPINNER_CLOSES):
        key = new_key()
        async with connect(server.ws(f"/spinner?key={key}"), max_queue=None) as ws:  # reads on to the close frame
            assert await ws.recv() == "spin"
        assert await server.wait_events(key) == ["finally", "on_disconnect", "on_close", "done"]


# -- exception after accept -------------------------------------------------------------------------------
async def test_exception_after_accept_closes_with_1011_and_logs(
    server: RunningServer, server_kind: str, request: pytest.FixtureRequest
) -> None:
    key = new_key()
    expected = close_code_seen(request, server_kind, 1011)
    mark = server.log_mark()
    async with connect(server.ws(f"/fail_after?key={key}")) as ws:
        messages, code, _ = await read_until_closed(ws)
    assert messages == ["about to fail"]
    assert code == expected
    assert await server.wait_events(key) == ["on_close", "done"]
    log = await server.wait_for_log(f"RuntimeError: boom after accept {key}", since=mark)
    assert "Traceback (most recent call last)" in log


# -- exception or refusal before accept -------------------------------------------------------------------
async def test_exception_before_accept_is_http_500(server: RunningServer, server_kind: str) -> None:
    """A server-side bug before accept is not a refusal: HTTP 500 through the denial extension (issue 10), so a
    client can tell it from an auth refusal's 403."""
    key = new_key()
    mark = server.log_mark()
    response = await handshake_refused(server.ws(f"/fail_before?key={key}"))
    assert response.status_code == denial_seen(server_kind, 500, b"")[0]
    assert await server.wait_events(key) == ["on_close", "done"]
    log = await server.wait_for_log(f"RuntimeError: boom before accept {key}", since=mark)
    assert "Traceback (most recent call last)" in log


REFUSALS = {"gen": ["/refuse"], "obj": ["/refuse", "/refuse_hook"]}
DENIALS = {"gen": ["/deny"], "obj": ["/deny", "/deny_hook"]}


async def test_refusal_before_accept_is_http_403(server: RunningServer, style: str) -> None:
    for path in REFUSALS[style]:
        key = new_key()
        response = await handshake_refused(server.ws(f"{path}?key={key}"))
        assert response.status_code == 403, path
        assert await server.wait_events(key) == ["on_close", "done"], path


async def test_deny_answers_with_its_http_response(server: RunningServer, style: str, server_kind: str) -> None:
    for path in DENIALS[style]:
        key = new_key()
        response = await handshake_refused(server.ws(f"{path}?key={key}"))
        assert (response.status_code, response.body) == denial_seen(server_kind, 401, b"no entry for you"), path
        if (path.endswith("hook") or style == "gen") and HTTP_RESPONSE_EXTENSION.get(server_kind, True):
            assert response.headers.get("x-denied") == "yes", path
        assert await server.wait_events(key) == ["on_close", "done"], path


# -- message over max_message_size -----------------------------------------------------------------------
async def test_message_over_max_message_size_closes_with_1009(
    server: RunningServer, server_kind: str, request: pytest.FixtureRequest
) -> None:
    key = new_key()
    expected = close_code_seen(request, server_kind, 1009)
    async with connect(server.ws(f"/echo?key={key}")) as ws:
        await ws.send(b"x" * MAX_MESSAGE_SIZE)
        assert await ws.recv() == b"x" * MAX_MESSAGE_SIZE, "a message of exactly max_message_size is fine"
        await ws.send(b"y" * (MAX_MESSAGE_SIZE + 1))
        messages, code, _ = await read_until_closed(ws)
    assert (messages, code) == ([], expected)
    assert await server.wait_events(key) == ["finally", "on_close", "done"], "the server closed: no on_disconnect"


# -- invalid JSON in receive_json (typed receive: see test_servers_seed003.py) -------------------------------
@pytest.mark.parametrize("bad", ["{not json", '{"a": 1', "\x00"])
async def test_invalid_json_closes_with_1007(
    server: RunningServer, bad: str, server_kind: str, request: pytest.FixtureRequest
) -> None:
    key = new_key()
    expected = close_code_seen(request, server_kind, 1007)
    async with connect(server.ws(f"/json?key={key}")) as ws:
        await ws.send('{"a": [1, 2, "x"], "b": null}')
        assert json.loads(await ws.recv()) == {"a": [1, 2, "x"], "b": None}
        await ws.send(bad)
        messages, code, _ = await read_until_closed(ws)
    assert (messages, code) == ([], expected)
    assert await server.wait_events(key) == ["on_close", "done"]


# -- server shutdown --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shutdown(server_kind: str, style: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Stop a server while two connections are open (one handler reading, one sleeping); what happened."""
    skip_unless_hypercorn_stops(server_kind)

    async def scenario() -> dict[str, object]:
        server = start_server(server_kind, f"lifecycle_{style}:app", tmp_path_factory.mktemp("shutdown"))
        try:
            reading, sleeping = new_key(), new_key()
            async with (
                connect(server.ws(f"/echo?key={reading}")) as echo,
                connect(server.ws(f"/sleeper?key={sleeping}")) as sleeper,
            ):
                await echo.send("hi")
                assert await echo.recv() == "hi"
                assert await sleeper.recv() == "sleeping"
                stopping = asyncio.create_task(asyncio.to_thread(server.stop, 20))
                closed = [await read_until_closed(ws, timeout=15) for ws in (echo, sleeper)]
                returncode = await stopping
        finally:
            server.stop()
        return {
            "codes": [code for _, code, _ in closed],
            "returncode": returncode,
            "log": server.log(),
            "events": [server.event_names(key) for key in (reading, sleeping)],
        }

    return asyncio.run(scenario())


def test_server_shutdown_close_code(shutdown: dict[str, object], server_kind: str) -> None:
    """What the client sees: SHUTDOWN_CODE (1001, but for bare uvicorn's own 1012)."""
    assert shutdown["codes"] == [SHUTDOWN_CODE[server_kind]] * 2, shutdown["log"]
    assert shutdown["returncode"] == 0, shutdown["log"]


def test_server_shutdown_stops_the_handlers(shutdown: dict[str, object], server_kind: str) -> None:
    if not SHUTDOWN_RUNS_HANDLERS_OUT.get(server_kind, True):
        assert shutdown["events"] == [[], []], "daphne: nothing runs (SHUTDOWN_RUNS_HANDLERS_OUT)"
        return
    for events in shutdown["events"]:  # type: ignore[attr-defined]
        assert events[:1] == ["finally"], events


def test_server_shutdown_runs_on_close_only(shutdown: dict[str, object], server_kind: str) -> None:
    """DESIGN.md: server shutdown -> on_close, exactly once; seed 000: on_disconnect only when the client
    closed the socket, and here the server closes it. uvicorn tells the app with code 1012, which scallion
    knows for the server's; on granian scallion closes the sockets itself before granian stops."""
    if not SHUTDOWN_RUNS_HANDLERS_OUT.get(server_kind, True):
        assert shutdown["events"] == [[], []], "daphne: nothing runs (SHUTDOWN_RUNS_HANDLERS_OUT)"
        return
    for events in shutdown["events"]:  # type: ignore[attr-defined]
        assert hooks(events) == ["on_close"], f"{shutdown['events']}\n{shutdown['log']}"
        assert events[-1] == "done", events
