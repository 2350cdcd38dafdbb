"""Log levels that mean something, and ``scallion run``'s logging (issue 10, item 5):

- A server bug (a handler's exception) is ERROR with its traceback on the ``scallion`` logger.
- Client misbehaviour (bad JSON 1007, oversize 1009, rate 1008, read-ahead full 1008) is INFO on
  ``scallion.client``, rate-limited: one line per connection and a few per client address per window, with a
  count of the suppressed lines (:class:`scallion.log.ClientLog`).
- ``scallion run`` formats scallion's lines like uvicorn's (``ERROR:    scallion: ...``), ``--log-level``
  governs them (``critical`` silences them), and a refused handshake on the default websocket implementation
  logs no ERROR (uvicorn websockets-sansio's spurious "ASGI callable returned without completing handshake." is
  filtered).

In-process tests use the TestClient, each with a client address of its own (the rate limit is per address);
``scallion run`` tests use a real subprocess and python-websockets. A line is looked for only after an event
that follows it: scallion logs before it sends the close frame, so a received close code means its line (or
its absence) is in the log.
"""

from __future__ import annotations

import asyncio
import logging
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli import Running, scallion_run
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from scallion import App, websocket
from scallion.log import ClientLog
from scallion.testing import TestClient

pytestmark = pytest.mark.timeout(60)


def client_lines(caplog: pytest.LogCaptureFixture, code: int) -> list[logging.LogRecord]:
    """The records about closing a websocket with ``code``."""
    return [r for r in caplog.records if f"with {code}:" in r.getMessage()]


def limits_app(**options: object) -> App:
    """``/json`` reads JSON forever, ``/idle`` accepts and never reads, ``/echo`` echoes, ``/crash`` raises."""
    app = App(**options)  # type: ignore[arg-type]

    @app.websocket("/json")
    async def json_reader() -> None:
        while True:
            await websocket.receive_json()

    @app.websocket("/idle")
    async def idle() -> None:
        await websocket.accept()
        await asyncio.Event().wait()

    @app.websocket("/echo")
    async def echo() -> None:
        async for message in websocket:
            await websocket.send(message)

    @app.websocket("/crash")
    async def crash() -> None:
        await websocket.accept()
        raise ValueError("boom")

    return app


# -- levels (in process) ---------------------------------------------------------------------------------
async def test_a_crashed_handler_is_error_with_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="scallion"):
        async with TestClient(limits_app(), client=("10.1.0.1", 1)) as client, client.websocket("/crash") as ws:
            assert await ws.wait_closed() == 1011
    [record] = [r for r in caplog.records if "crash" in r.getMessage()]
    assert (record.name, record.levelno) == ("scallion", logging.ERROR)
    assert record.exc_info is not None and record.exc_info[0] is ValueError


async def test_bad_json_is_info_on_the_client_logger(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="scallion"):
        async with TestClient(limits_app(), client=("10.1.0.2", 1)) as client, client.websocket("/json") as ws:
            await ws.send("{not json")
            assert await ws.wait_closed() == 1007
    [record] = client_lines(caplog, 1007)
    assert (record.name, record.levelno) == ("scallion.client", logging.INFO)
    assert record.exc_info is None


async def test_oversize_rate_and_read_ahead_are_info(caplog: pytest.LogCaptureFixture) -> None:
    app = limits_app(max_message_size=10, max_message_rate=20, max_queue=2)
    with caplog.at_level(logging.DEBUG, logger="scallion"):
        async with TestClient(app, client=("10.1.0.3", 1)) as client:
            async with client.websocket("/echo") as ws:
                await ws.send("x" * 11)
                assert await ws.wait_closed() == 1009
            async with TestClient(app, client=("10.1.0.4", 1)) as other, other.websocket("/echo") as ws:
                for _ in range(200):
                    await ws.send("x")
                assert await ws.wait_closed() == 1008
            async with TestClient(app, client=("10.1.0.5", 1)) as third, third.websocket("/idle") as ws:
                for _ in range(10):
                    await ws.send("x")
                assert await ws.wait_closed() == 1008
    records = client_lines(caplog, 1009) + client_lines(caplog, 1008)
    reasons = " ".join(r.getMessage() for r in records)
    assert "exceeds max_message_size" in reasons and "messages per second" in reasons and "read-ahead" in reasons
    assert {(r.name, r.levelno) for r in records} == {("scallion.client", logging.INFO)}


async def test_bad_json_lines_are_rate_limited_per_client(caplog: pytest.LogCaptureFixture) -> None:
    """20 connections of one client address that each send bad JSON write a few lines, not 20; another client
    still gets its line."""
    app = limits_app()
    with caplog.at_level(logging.DEBUG, logger="scallion"):
        async with TestClient(app, client=("10.1.0.6", 1)) as client:
            for _ in range(20):
                async with client.websocket("/json") as ws:
                    await ws.send("{not json")
                    assert await ws.wait_closed() == 1007
        flood = len(client_lines(caplog, 1007))
        async with TestClient(app, client=("10.1.0.7", 1)) as other, other.websocket("/json") as ws:
            await ws.send("[1,")
            assert await ws.wait_closed() == 1007
    assert 1 <= flood <= 10, flood  # 5 per client address and window (10 if the 5 s window turned meanwhile)
    assert len(client_lines(caplog, 1007)) == flood + 1
    assert "similar line(s) about clients suppressed" in client_lines(caplog, 1007)[-1].getMessage()


class Key:
    """A stand-in for a connection: ClientLog only holds a weak reference to it."""


def test_client_log_one_line_per_connection_then_the_suppressed_count(caplog: pytest.LogCaptureFixture) -> None:
    log = ClientLog("scallion.test_client_log", interval=60, per_connection=1, per_client=3)
    first, second = Key(), Key()
    scope = {"client": ("10.1.0.8", 1)}
    with caplog.at_level(logging.INFO, logger="scallion.test_client_log"):
        for _ in range(4):
            log.info(scope, first, "line from %s", "first")
        log.info(scope, second, "line from %s", "second")
    assert [r.getMessage() for r in caplog.records] == [
        "line from first",
        "line from second (3 similar line(s) about clients suppressed since the previous one)",
    ]


def test_client_log_window_opens_again(caplog: pytest.LogCaptureFixture) -> None:
    interval = 0.2
    log = ClientLog("scallion.test_client_log", interval=interval, per_client=1)
    scope = {"client": ("10.1.0.9", 1)}
    with caplog.at_level(logging.INFO, logger="scallion.test_client_log"):
        started = time.monotonic()
        log.info(scope, None, "one")
        log.info(scope, None, "two")
        while time.monotonic() - started < interval:  # the window's end is a time: wait for it, looking often
            time.sleep(0.01)
        log.info(scope, None, "three")
    assert [r.getMessage() for r in caplog.records] == [
        "one",
        "three (1 similar line(s) about clients suppressed since the previous one)",
    ]


# -- scallion run ----------------------------------------------------------------------------------------
LOG_APP = '''
"""The app of tests/test_logging.py."""

from scallion import App, websocket, ws_deny, ws_send

app = App()


@app.route("/hello")
async def hello():
    return "hello"


async def deny(scope):
    return ws_deny(401, b"who are you?")


@app.websocket("/denied", on_connect=deny)
async def denied(scope, receiver):
    yield ws_send("never")


@app.websocket("/json")
async def json_reader():
    while True:
        await websocket.receive_json()


@app.websocket("/crash")
async def crash():
    await websocket.accept()
    raise ValueError("boom")
'''


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("logapp")
    (directory / "logapp.py").write_text(textwrap.dedent(LOG_APP))
    return directory


@pytest.fixture
def running(request: pytest.FixtureRequest, log_dir: Path) -> Iterator[Running]:
    """``scallion run logapp.py`` with the test's parameters as options."""
    options = getattr(request, "param", ())
    with scallion_run("logapp.py", *options, cwd=log_dir) as server:
        yield server


def close_code(running: Running, path: str, send: str | None = None) -> int | None:
    """Open ``path``, send ``send``, and return the close code the server sent."""
    with connect(running.ws(path), open_timeout=10) as ws:
        if send is not None:
            ws.send(send)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    return closed.value.rcvd.code if closed.value.rcvd else None




def test_run_logs_a_crash_as_error_with_traceback_like_uvicorn(running: Running) -> None:
    assert close_code(running, "/crash") == 1011
    log = running.wait_for_log("ValueError: boom", deadline=10.0)
    line = next(line for line in log.splitlines() if "crash" in line and "failed" in line)
    assert line.startswith("ERROR:    scallion: websocket handler logapp.crash failed"), log
    assert "Traceback (most recent call last)" in log.split(line, 1)[1]


@pytest.mark.parametrize("running", [("--server", "granian")], indirect=True)
def test_run_granian_logs_like_granian_at_its_level(running: Running) -> None:
    assert close_code(running, "/crash") == 1011
    log = running.wait_for_log("ValueError: boom", deadline=10.0)
    assert "[ERROR] scallion: websocket handler logapp.crash failed" in log, log
    assert close_code(running, "/json", "{not json") == 1007
    running.wait_for_log("[INFO] scallion.client: closing websocket /json with 1007", deadline=10.0)


@pytest.mark.parametrize("running", [("--server", "granian", "--log-level", "critical")], indirect=True)
def test_run_granian_log_level_critical_silences_scallion(running: Running) -> None:
    assert close_code(running, "/crash") == 1011
    assert close_code(running, "/json", "{not json") == 1007
    log = running.log()
    assert "scallion" not in log and "boom" not in log and "1007" not in log, log


def test_run_logs_bad_json_as_info_rate_limited(running: Running) -> None:
    for _ in range(12):
        assert close_code(running, "/json", "{not json") == 1007
    lines = [line for line in running.log().splitlines() if "with 1007" in line]
    assert 1 <= len(lines) <= 10, running.log()  # 5 per client and window of 5 s
    assert all(line.startswith("INFO:     scallion.client: closing websocket /json with 1007") for line in lines)


@pytest.mark.parametrize("running", [("--log-level", "critical")], indirect=True)
def test_run_log_level_critical_silences_scallion(running: Running) -> None:
    assert close_code(running, "/crash") == 1011
    assert close_code(running, "/json", "{not json") == 1007
    log = running.log()
    assert "scallion" not in log and "boom" not in log and "1007" not in log, log


@pytest.mark.parametrize("running", [(), ("--ws", "websockets-sansio")], indirect=True, ids=["default", "sansio"])
def test_run_refused_handshakes_log_no_error(running: Running) -> None:
    for path, status in [("/denied", 401), ("/nowhere", 404)]:
        with pytest.raises(InvalidStatus) as refused, connect(running.ws(path), open_timeout=10):
            pass
        assert refused.value.response.status_code == status
    assert running.get("/hello")[0] == 200
    log = running.wait_for_log('"GET /hello HTTP/1.1" 200', deadline=10.0)  # after the refusals' lines
    assert '"WebSocket /denied" 401' in log and '"WebSocket /nowhere" 404' in log
    assert "ERROR" not in log, log
