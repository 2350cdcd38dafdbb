"""hypercorn and daphne: what each server does with plain ASGI messages (a raw ASGI app, tests/apps/raw_servers.py),
which proves the per-server expectations in tests/servers.py are the server's, not scallion's; and what scallion
does about them (docs/cli.md, Servers).

daphne (4.2, on autobahn): sends only close codes 1000 and 3000-4999 (``send`` raises ``Exception("invalid close
code 1001 ...")`` for any other), drops close reasons and empty messages, lacks the ``websocket.http.response``
extension, drops a message over its own ``--websocket-max-message-size`` (1 MiB) without a close frame, has no
lifespan, and on SIGINT drops every websocket without a close frame or resuming the handlers. hypercorn (0.18)
does all of it as ASGI says.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest
from servers import (
    HTTP_RESPONSE_EXTENSION,
    HYPERCORN_STOPS_ON_SIGINT,
    MORE_SERVERS,
    SEND_RAISES_AFTER_CLIENT_CLOSE,
    SENDS_EMPTY_MESSAGES,
    SMALL_SEND_BUFFER,
    RunningServer,
    client_socket,
    close_code_seen,
    close_reason_seen,
    read_until_closed,
    send_dropped,
    sends_close_code,
    start_server,
)
from websockets.asyncio.client import connect

from scallion.datastructures import ScopeView

pytestmark = pytest.mark.timeout(60)

SERVER_KINDS = MORE_SERVERS


@pytest.fixture(scope="module")
def raw(serve_app) -> RunningServer:  # type: ignore[no-untyped-def]
    return serve_app("raw_servers:app")


@pytest.fixture(scope="module")
def seed(serve_app) -> RunningServer:  # type: ignore[no-untyped-def]
    return serve_app("seed_000:app")


# -- raw ASGI: the server's own behaviour ------------------------------------------------------------------
@pytest.mark.parametrize("code", [1000, 1001, 1007, 1008, 1009, 1011, 3000, 4999])
async def test_raw_close_codes_the_server_sends(raw: RunningServer, server_kind: str, code: int) -> None:
    """daphne refuses every code but 1000 and 3000-4999 with a bare ``Exception``; the app's close with 1000
    after it does reach the client."""
    mark = raw.log_mark()
    async with connect(raw.ws(f"/code/{code}")) as ws:
        _, seen, _ = await read_until_closed(ws)
    if sends_close_code(server_kind, code):
        assert seen == code
        await raw.wait_for_log(f"close {code} sent", since=mark)
    else:
        assert seen == 1000
        refused = f"close {code} refused: Exception: invalid close code {code} (must be 1000 or from [3000, 4999])"
        await raw.wait_for_log(refused, since=mark)


async def test_raw_close_reason(raw: RunningServer, server_kind: str) -> None:
    async with connect(raw.ws("/reason")) as ws:
        _, code, reason = await read_until_closed(ws)
    assert (code, reason) == (4000, close_reason_seen(server_kind, "custom reason"))
    assert (server_kind == "daphne") == (reason == "")


async def test_raw_empty_messages(raw: RunningServer, server_kind: str) -> None:
    async with connect(raw.ws("/empty")) as ws:
        messages, code, _ = await read_until_closed(ws)
    expected: list[str | bytes] = ["", b"", "after"] if SENDS_EMPTY_MESSAGES.get(server_kind, True) else ["after"]
    assert (messages, code) == (expected, 1000)


async def test_raw_http_response_extension(raw: RunningServer, server_kind: str) -> None:
    async with connect(raw.ws("/extensions")) as ws:
        extensions = json.loads(await ws.recv())
    assert ("websocket.http.response" in extensions) == HTTP_RESPONSE_EXTENSION.get(server_kind, True)


async def test_raw_lifespan(raw: RunningServer, server_kind: str) -> None:
    """daphne never sends ``lifespan.startup``: ``on_start``/``on_stop`` do not run there (docs/cli.md)."""
    async with connect(raw.ws("/extensions")) as ws:  # the server is up and serving
        await ws.recv()
    assert ("lifespan.startup" in raw.log()) == (server_kind != "daphne")


@pytest.mark.parametrize("send_buffer", [None, SMALL_SEND_BUFFER], ids=["default-sndbuf", "small-sndbuf"])
async def test_raw_message_over_daphnes_own_limit_is_dropped(
    raw: RunningServer, server_kind: str, send_buffer: int | None
) -> None:
    """Over its ``--websocket-max-message-size`` (1 MiB by default) daphne drops the TCP connection without a close
    frame, as soon as it has read the frame's header (autobahn's ``_fail_connection``: an abort, a TCP RST); with a
    small send buffer the client is still writing the message then. hypercorn's default limit is 16 MiB, so it
    echoes the message."""
    message = b"x" * (1024 * 1024 + 1)
    async with connect(raw.ws("/echo"), max_size=None, sock=client_socket(raw.port, send_buffer)) as ws:
        if server_kind == "daphne":
            await send_dropped(ws, message)
            messages, code, _ = await read_until_closed(ws)
            assert (messages, code) == ([], None)
        else:
            await ws.send(message)
            assert await ws.recv() == message


SPINS = 20
"""Connections a client closes while the raw ``/spinner`` sends at every turn of the loop."""


async def test_raw_send_after_the_clients_close(raw: RunningServer, server_kind: str) -> None:
    """A client closes while the app sends at every turn of the loop. daphne receives the close frame, answers it,
    and until the TCP connection is gone (then ``websocket.disconnect``, code 1000) its ``send`` raises autobahn's
    ``Disconnected``, a RuntimeError (``sendMessage`` when not STATE_OPEN); the app's sends land in that window in
    most closes, so at least one of SPINS does. hypercorn raises nothing but an OSError, if anything."""
    lines: list[str] = []
    for _ in range(SPINS):
        mark = raw.log_mark()
        async with connect(raw.ws("/spinner"), max_queue=None) as ws:  # reads on to the close frame
            assert await ws.recv() == "spin"
        log = await raw.wait_for_log("spinner: ", since=mark)
        lines += [line for line in log.splitlines() if line.startswith("spinner: ")]
    raised = {line.split()[3] for line in lines if " send raised " in line and " oserror=False" in line}
    expected = SEND_RAISES_AFTER_CLIENT_CLOSE.get(server_kind)
    assert raised == ({expected} if expected else set()), "\n".join(lines)


async def test_raw_shutdown(server_kind: str, tmp_path: Path) -> None:
    """SIGINT with a websocket open: hypercorn cancels the app (its ``finally`` runs); daphne drops the connection
    without a close frame and never resumes the app, so its ``finally`` does not run."""
    if server_kind == "hypercorn" and not HYPERCORN_STOPS_ON_SIGINT:
        server = start_server(server_kind, "raw_servers:app", tmp_path)
        try:  # the proof that the skips elsewhere are hypercorn's doing: a raw app's socket stays open
            async with connect(server.ws("/sleeper")) as ws:
                assert await ws.recv() == "sleeping"
                server.process.send_signal(signal.SIGINT)
                with pytest.raises(AssertionError, match="did not close"):
                    await read_until_closed(ws, timeout=5)
        finally:
            server.stop(5)
        return
    server = start_server(server_kind, "raw_servers:app", tmp_path)
    try:
        async with connect(server.ws("/sleeper")) as ws:
            assert await ws.recv() == "sleeping"
            stopping = asyncio.create_task(asyncio.to_thread(server.stop, 20))
            _, code, _ = await read_until_closed(ws, timeout=15)
            returncode = await stopping
    finally:
        server.stop()
    assert returncode == 0, server.log()
    if server_kind == "daphne":
        assert code is None, server.log()
        assert "sleeper finally" not in server.log()
    else:
        assert "sleeper finally" in server.log()


# -- scallion on these servers ----------------------------------------------------------------------------
@pytest.mark.parametrize("scope", [{"type": "websocket"}, {"type": "websocket", "scheme": "http"}])
def test_websocket_scheme_is_ws_whatever_the_server_puts(scope: dict[str, str]) -> None:
    """daphne puts no ``scheme`` in a websocket scope, others may put the HTTP one: ``websocket.scheme`` is ws."""
    view = ScopeView()
    view.scope = scope  # type: ignore[assignment]
    assert view.scheme == "ws"
    view.scope = {**scope, "scheme": "https"}  # type: ignore[assignment]
    assert view.scheme == "wss"
    view.scope = {"type": "http", "scheme": "https"}  # type: ignore[assignment]
    assert view.scheme == "https"


async def test_a_close_code_the_server_refuses_is_one_warning_and_a_1000_close(
    seed: RunningServer, server_kind: str, request: pytest.FixtureRequest
) -> None:
    """Seed 000's ``ws_close(1001)``: on daphne, which refuses 1001, the client gets 1000 (the socket must not stay
    open) and the log gets one warning naming the code, not a traceback, however often it happens."""
    expected = close_code_seen(request, server_kind, 1001)
    mark = seed.log_mark()
    for _ in range(2):
        async with connect(seed.ws("/echo")) as ws:
            await ws.send("exit")
            messages, code, _ = await read_until_closed(ws)
        assert (messages, code) == (["@ECHO: exit", "bybye"], expected)
    log = seed.log(mark)
    assert "Traceback" not in log, log
    warnings = [line for line in log.splitlines() if "WARNING" in line and "1001" in line]
    assert len(warnings) == (0 if sends_close_code(server_kind, 1001) else 1), log
