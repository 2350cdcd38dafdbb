"""Real servers in subprocesses for the real-server tests (``tests/test_servers_*.py``).

``start_server(kind, "module:app", workdir)`` picks a free port on 127.0.0.1, starts uvicorn (with the
``websockets-sansio`` or ``wsproto`` implementation), granian, hypercorn or daphne on it, waits until the port
accepts TCP connections and returns a :class:`RunningServer`. The server's stdout and stderr go to one log file,
so tests can assert on printed and logged lines; apps under ``tests/apps`` write lifecycle events (hooks,
``finally`` blocks) to one file per connection key in ``events_dir`` (see ``tests/apps/recorder.py``).
``stop()`` ends the server by PID: SIGINT, then SIGKILL after a timeout.

No fixed sleeps: every wait polls a condition (a TCP connect, a file) against a deadline.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.http11 import Response

REPO = Path(__file__).resolve().parent.parent
APPS = REPO / "tests" / "apps"
EXAMPLES = REPO / "examples"

SERVERS = ("uvicorn-websockets-sansio", "uvicorn-wsproto", "granian")
"""The server kinds every real-server test runs against."""

MORE_SERVERS = ("hypercorn", "daphne")
"""Other servers users run. The modules that set ``SERVER_KINDS = ALL_SERVERS`` (the seed tests, the lifecycle
table, HTTP) run on them too; the rest stay on SERVERS, to keep the suite's time down (tests/conftest.py)."""

ALL_SERVERS = (*SERVERS, *MORE_SERVERS)
"""Every server kind ``start_server`` knows besides ``scallion run``."""

# -- what a server cannot do: per-server expectations, each proven with a raw ASGI app (tests/test_servers_more.py)
HYPERCORN_STOPS_ON_SIGINT = sys.version_info < (3, 12)
"""hypercorn 0.18 stops on SIGINT with a websocket open (cancelling the app) on Python 3.11; on 3.12 and 3.13 it does
not close the connection within 15 s, proven with a raw ASGI app (tests/test_servers_more.py::test_raw_shutdown)."""


def skip_unless_hypercorn_stops(kind: str) -> None:
    """Skip a shutdown test on hypercorn where it does not stop on SIGINT (see HYPERCORN_STOPS_ON_SIGINT)."""
    if kind == "hypercorn" and not HYPERCORN_STOPS_ON_SIGINT:
        pytest.skip("hypercorn 0.18 on Python 3.12+ does not stop on SIGINT with a websocket open (raw ASGI proof)")


def sends_close_code(kind: str, code: int) -> bool:
    """Whether server ``kind`` sends close ``code``: daphne's (autobahn's ``sendClose``) raises ``Exception("invalid
    close code 1001 (must be 1000 or from [3000, 4999])")`` for any other code."""
    return kind != "daphne" or code == 1000 or 3000 <= code <= 4999


def close_code_seen(request: pytest.FixtureRequest, kind: str, code: int) -> int:
    """The close code a client sees when scallion closes with ``code`` on ``kind``: ``code``, or 1000 where the
    server refuses to send it (daphne; docs/cli.md, Servers)."""
    return code if sends_close_code(kind, code) else 1000


def close_reason_seen(kind: str, reason: str) -> str:
    """The close reason a client sees: daphne drops every reason (its ``serverClose`` passes only the code)."""
    return "" if kind == "daphne" else reason


SENDS_EMPTY_MESSAGES = {"daphne": False}
"""daphne sends nothing for an empty text or binary message (``if message.get("text")`` in its handle_reply);
every other server sends it."""

HTTP_RESPONSE_EXTENSION = {"daphne": False}
"""daphne lacks ASGI's ``websocket.http.response`` extension: a denial (``ws_deny``, an exception before accept)
reaches the client as the plain close-before-accept, HTTP 403 without a body; every other server has it."""


SEND_RAISES_AFTER_CLIENT_CLOSE = {"daphne": "autobahn.exception.Disconnected"}
"""Servers whose ``send`` raises something other than the ``OSError`` ASGI asks for when the client has gone: daphne
raises autobahn's ``Disconnected`` (a ``RuntimeError``, "Attempt to send on a closed protocol") for a message sent
after the client's close frame arrived and before it tells the app ``websocket.disconnect`` (raw ASGI proof:
tests/test_servers_more.py::test_raw_send_after_the_clients_close). scallion takes it for the client's departure
(``scallion.connection.departed``)."""


def denial_seen(kind: str, status: int, body: bytes) -> tuple[int, bytes]:
    """``(status, body)`` the client gets when scallion denies a handshake with that HTTP response."""
    return (status, body) if HTTP_RESPONSE_EXTENSION.get(kind, True) else (403, b"")


POLL = 0.005
"""Seconds between two looks at a polled condition (a file, a port)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command(kind: str, target: str, port: int) -> list[str]:
    """The command line that serves ASGI app ``target`` ("module:attr") with server ``kind`` on ``port``."""
    if kind.startswith("uvicorn-"):
        ws = kind.removeprefix("uvicorn-")
        return [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port),
                "--ws", ws, "--lifespan", "on"]
    if kind == "granian":
        return [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
                "--port", str(port), "--workers", "1", target]
    if kind == "hypercorn":  # one worker process under hypercorn's supervisor, as `hypercorn app:app` runs
        return [sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}", target]
    if kind == "daphne":  # no lifespan: daphne never sends lifespan.startup/shutdown
        return [sys.executable, "-m", "daphne", "--bind", "127.0.0.1", "--port", str(port), target]
    if kind in SCALLION_RUN:  # `scallion run`, whose uvicorn is websockets-sansio (uvicorn's "auto")
        return [sys.executable, "-m", "scallion", "run", target, "--host", "127.0.0.1", "--port", str(port),
                "--server", kind.removeprefix("scallion-run-")]
    raise ValueError(f"unknown server kind {kind!r}")


SCALLION_RUN = ("scallion-run-uvicorn", "scallion-run-granian")
"""Server kinds served through ``scallion run`` (for the shutdown tests; not in SERVERS)."""


def _descendants(pid: int) -> list[int]:
    """PIDs of the processes under ``pid`` (children, grandchildren, ...), from /proc."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.append(child)
                    todo.append(child)
    return found


def _rss(pid: int) -> int:
    """Resident memory of one process in bytes (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class RunningServer:
    """A server subprocess serving one app on ``127.0.0.1:port``."""

    kind: str
    target: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    events_dir: Path
    returncode: int | None = None
    _log_file: object = field(default=None, repr=False)

    # -- addresses --------------------------------------------------------------------------------------
    def ws(self, path: str) -> str:
        """``ws://127.0.0.1:port/path``."""
        return f"ws://127.0.0.1:{self.port}{path}"

    def http(self, path: str) -> str:
        """``http://127.0.0.1:port/path``."""
        return f"http://127.0.0.1:{self.port}{path}"

    # -- the log --------------------------------------------------------------------------------------
    def log(self, since: int = 0) -> str:
        """What the server printed and logged (stdout and stderr), from byte offset ``since``."""
        with open(self.log_path, "rb") as file:
            file.seek(since)
            return file.read().decode("utf-8", "replace")

    def log_mark(self) -> int:
        """The current end of the log: pass it as ``since`` to read only what comes after."""
        return self.log_path.stat().st_size

    async def wait_for_log(self, text: str, since: int = 0, count: int = 1, timeout: float = 5.0) -> str:
        """Wait until ``text`` appears ``count`` times in the log after ``since``; return that part of the log."""
        async with _deadline(timeout, lambda: f"{text!r} x{count} not in the {self.kind} log:\n{self.log(since)}"):
            while True:
                log = self.log(since)
                if log.count(text) >= count:
                    return log
                await asyncio.sleep(POLL)

    # -- lifecycle events written by tests/apps/recorder.py -------------------------------------------
    def events(self, key: str) -> list[tuple[float, str]]:
        """``(time.time(), name)`` of every event recorded for connection ``key``, in order."""
        path = self.events_dir / key
        if not path.exists():
            return []
        events = []
        for line in path.read_text().splitlines():
            stamp, _, name = line.partition(" ")
            events.append((float(stamp), name))
        return events

    def event_names(self, key: str) -> list[str]:
        """The names of the events recorded for ``key``, in order."""
        return [name for _, name in self.events(key)]

    async def wait_events(self, key: str, last: str = "done", timeout: float = 5.0) -> list[str]:
        """Wait until event ``last`` is recorded for ``key`` (by default ``done``: the ASGI app returned);
        return all event names."""
        async with _deadline(timeout, lambda: f"no {last!r} event for {key} on {self.kind}: "
                                              f"{self.event_names(key)}\nlog:\n{self.log()}"):
            while last not in (names := self.event_names(key)):
                await asyncio.sleep(POLL)
            return names

    # -- resources ------------------------------------------------------------------------------------
    def rss(self) -> int:
        """Resident memory of the server and all its worker processes, in bytes."""
        return sum(_rss(pid) for pid in [self.process.pid, *_descendants(self.process.pid)])

    # -- stopping -------------------------------------------------------------------------------------
    def signal(self, number: int) -> None:
        """Send signal ``number`` to the server's main process (by PID)."""
        self.process.send_signal(number)

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code once the server's main process has exited within ``timeout`` seconds, else None."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 10.0) -> int:
        """Stop the server by PID: SIGINT, then SIGKILL (it and its workers) after ``timeout``; the exit code."""
        if self.returncode is not None:
            return self.returncode
        workers = _descendants(self.process.pid)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        for pid in workers:  # only processes this server started, by PID
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.returncode = self.process.returncode
        if self._log_file is not None:
            self._log_file.close()  # type: ignore[attr-defined]
        return self.returncode


class _deadline:
    """``async with _deadline(seconds, message)``: fail the test with ``message()`` when time runs out."""

    def __init__(self, seconds: float, message) -> None:  # type: ignore[no-untyped-def]
        self.timeout = asyncio.timeout(seconds)
        self.message = message

    async def __aenter__(self) -> None:
        await self.timeout.__aenter__()

    async def __aexit__(self, kind, exc, tb) -> None:  # type: ignore[no-untyped-def]
        try:
            await self.timeout.__aexit__(kind, exc, tb)
        except TimeoutError:
            raise AssertionError(self.message()) from None


def wait_for_port(port: int, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 20.0) -> None:
    """Poll a TCP connect to ``127.0.0.1:port`` until it succeeds; fail early if the server exits."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return
        except OSError:
            if time.monotonic() > deadline:
                log = log_path.read_text()
                raise RuntimeError(f"nothing listens on port {port} after {timeout}s:\n{log}") from None
            time.sleep(0.02)  # poll interval between connection attempts, not synchronisation


def start_server(kind: str, target: str, workdir: Path, env: dict[str, str] | None = None) -> RunningServer:
    """Serve ``target`` ("module:app" importable from tests/apps or examples) with server ``kind``.

    The log goes to ``workdir/<kind>-<module>-<id>.log``, recorded events to a fresh directory under
    ``workdir`` (the apps read it from ``SCALLION_TEST_EVENTS``).
    """
    name = f"{kind}-{target.partition(':')[0]}-{uuid.uuid4().hex[:6]}"
    log_path = workdir / f"{name}.log"
    events_dir = workdir / f"{name}-events"
    events_dir.mkdir(parents=True)
    port = free_port()
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(APPS), str(EXAMPLES), os.environ.get("PYTHONPATH", "")]),
        "PYTHONUNBUFFERED": "1",
        "SCALLION_TEST_EVENTS": str(events_dir),
        **(env or {}),
    }
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed by stop()
    process = subprocess.Popen(
        server_command(kind, target, port),
        cwd=workdir,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    server = RunningServer(kind, target, port, process, log_path, events_dir, _log_file=log_file)
    try:
        wait_for_port(port, process, log_path)
    except BaseException:
        server.stop()
        raise
    return server


# -- the client side ----------------------------------------------------------------------------------
async def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """``GET path`` on ``127.0.0.1:port`` over a raw asyncio stream (HTTP/1.1, ``Connection: close``):
    ``(status, body)``."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), None)
            body = await (reader.readexactly(length) if length is not None else reader.read())
            return status, body
        finally:
            writer.close()


def new_key() -> str:
    """A fresh connection key: the apps record this connection's events under it (``?key=...``)."""
    return uuid.uuid4().hex


SMALL_SEND_BUFFER = 8192
"""A client ``SO_SNDBUF`` (bytes) small enough that a 1 MiB message is still being written when the server has read
its frame header: a client on such a socket always meets a server's reaction to the header mid-send."""


def client_socket(port: int, send_buffer: int | None = None) -> socket.socket:
    """A TCP connection to ``127.0.0.1:port`` for ``connect(url, sock=...)``; ``send_buffer`` sets its SO_SNDBUF."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if send_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.connect(("127.0.0.1", port))
    return sock


async def send_dropped(ws: ClientConnection, message: str | bytes) -> None:
    """Send ``message`` to a server that drops the connection over it without a close frame (daphne over its own
    message-size limit). daphne aborts the TCP connection (RST) as soon as it has read the frame's header, so the
    drop can come while the client is still writing the message: then ``send`` raises ConnectionClosed, which says
    no close frame came. Either way, ``read_until_closed`` afterwards gives no messages and close code None."""
    try:
        await ws.send(message)
    except ConnectionClosed as exc:
        assert exc.rcvd is None, f"the server sent a close frame ({exc.rcvd}) instead of dropping the connection"


async def read_until_closed(ws: ClientConnection, timeout: float = 5.0) -> tuple[list[str | bytes], int | None, str]:
    """Every message until the server closes: ``(messages, close code, close reason)``; the code is None
    when the connection ended without a close frame from the server."""
    messages: list[str | bytes] = []
    async with _deadline(timeout, lambda: f"the server did not close within {timeout}s; got {messages!r}"):
        try:
            while True:
                messages.append(await ws.recv())
        except ConnectionClosed as exc:
            received = exc.rcvd
            return messages, (received.code if received else None), (received.reason if received else "")


async def handshake_refused(url: str, **options: Any) -> Response:
    """Connect to ``url`` expecting an HTTP refusal of the handshake; the HTTP response."""
    try:
        async with connect(url, **options):
            pass
    except InvalidStatus as exc:
        return exc.response
    raise AssertionError(f"the handshake to {url} was accepted")


class RawWebSocket:
    """A minimal websocket client over a raw asyncio stream, for the fault tests: thousands of cheap
    connections that can vanish abruptly, by FIN (the transport closed without a close frame) or by RST
    (``SO_LINGER`` 0, then closed). Frames are RFC 6455: client frames masked, server frames small."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, path: str, handshake: bool = True) -> RawWebSocket:
        """Open a TCP connection and send the upgrade request for ``path``; with ``handshake``, wait for 101."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        ws = cls(reader, writer)
        if handshake:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                writer.close()
                raise AssertionError(f"handshake to {path} refused: {head!r}")
        return ws

    async def send_text(self, text: str) -> None:
        """Send one masked text frame."""
        payload = text.encode()
        mask = os.urandom(4)
        size = len(payload)
        header = bytes([0x81]) + (bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + struct.pack("!H", size))
        self.writer.write(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        await self.writer.drain()

    async def recv(self) -> tuple[int, bytes]:
        """The next server frame: ``(opcode, payload)``."""
        first, second = await self.reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        return first & 0x0F, await self.reader.readexactly(size)

    def drop(self, rst: bool) -> float:
        """Vanish without a close frame: FIN, or RST when ``rst``; the ``time.time()`` of the drop."""
        if rst:
            sock = self.writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        stamp = time.time()
        self.writer.transport.abort()
        return stamp
