"""Graceful shutdown with many open websockets, on every server, bare and through ``scallion run``.

200 websockets are open (half of the handlers reading, half sleeping without reading) when the server's main
process gets SIGINT or SIGTERM (by PID). Every connection must get its ``on_close`` exactly once, ``@app.on_stop``
must run, the process must exit 0 (bare uvicorn on SIGTERM: -15, its own doing) within ``shutdown_timeout``
(5 s) and some slack, and each client must see the close code of its server:

- ``scallion run`` (uvicorn or granian) and bare granian: 1001 (going away), sent by scallion before the server
  stops (for granian, scallion's signal handler replaces granian's: see scallion/granian_signals.py);
- bare uvicorn: 1012 (service restart), which uvicorn sends itself before the lifespan shutdown runs.

Before the fix, granian lost them: its Rust server stopped first and, with websockets in flight, the worker aborted
on a Rust panic, so 0/200 ``on_close`` and no ``on_stop`` ran in most runs, and no close frame was sent.
Hooks are read from ``hooks.log``, which the app (tests/apps/faults.py) appends to and which outlives the process.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import pytest
from servers import SCALLION_RUN, RawWebSocket, RunningServer, new_key, start_server

pytestmark = pytest.mark.timeout(60)

OPEN = 200
EXIT_BOUND = 12.0
"""Seconds within which the server must have exited: shutdown_timeout (5 s) plus slack."""
CLOSE_CODE = {
    "uvicorn-websockets-sansio": 1012,
    "uvicorn-wsproto": 1012,
    "granian": 1001,
    "scallion-run-uvicorn": 1001,
    "scallion-run-granian": 1001,
}
KINDS = ["uvicorn-websockets-sansio", "uvicorn-wsproto", "granian", *SCALLION_RUN]


def clean_exit(kind: str, number: int) -> int:
    """The exit status of a clean stop: 0, except bare uvicorn stopped by SIGTERM, which re-raises the signal
    after its graceful shutdown (uvicorn's Server.capture_signals) and so dies of it (``scallion run`` exits 0)."""
    return -signal.SIGTERM if kind.startswith("uvicorn-") and number == signal.SIGTERM else 0


async def close_code(ws: RawWebSocket, timeout: float) -> int | None:
    """The code of the server's close frame, or None when the connection ended without one."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                opcode, payload = await ws.recv()
                if opcode == 8:
                    return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    except TimeoutError:
        return -1  # still open: the server never closed it
    finally:
        ws.writer.transport.abort()


def hooks(server: RunningServer) -> list[str]:
    path = server.events_dir / "hooks.log"
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("kind", KINDS)
async def test_shutdown_with_open_websockets(kind: str, number: int, tmp_path: Path) -> None:
    server = start_server(kind, "faults:app", tmp_path)
    try:
        keys = [new_key() for _ in range(OPEN)]
        sockets = []
        for i, key in enumerate(keys):
            path = "/echo" if i % 2 else "/sleeper"
            ws = await RawWebSocket.connect(server.port, f"{path}?key={key}")
            sockets.append(ws)
            if path == "/echo":
                await ws.send_text("hi")
            assert (await ws.recv())[1] in (b"hi", b"ready")
        server.signal(number)
        codes = await asyncio.gather(*(close_code(ws, EXIT_BOUND) for ws in sockets))
        returncode = await asyncio.to_thread(server.wait_exit, EXIT_BOUND)
    finally:
        server.stop()
    lines = hooks(server)
    closed = Counter(line.split()[1] for line in lines if line.startswith("on_close "))
    log = server.log()[-3000:]
    assert returncode == clean_exit(kind, number), log
    assert sum(closed[key] == 1 for key in keys) == OPEN, f"on_close ran for {len(closed)}/{OPEN}\n{log}"
    assert sum(1 for line in lines if line.startswith("on_stop")) == 1, log
    assert Counter(codes) == Counter({CLOSE_CODE[kind]: OPEN}), log
