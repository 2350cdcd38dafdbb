"""Graceful shutdown on granian: SIGINT/SIGTERM close scallion's websockets (1001) before granian's server stops.

granian's worker installs a loop signal handler that stops its Rust server at once; the server then drops every
websocket without a close frame and, with websocket tasks still in flight, the worker aborts on a Rust panic
("Cannot drop pointer into Python heap without the thread being attached", granian issues #799/#884: ``panic =
"abort"``) before the ASGI lifespan shutdown is sent, so neither ``on_close`` nor ``on_stop`` would run (measured
with granian 2.8.9: 0/200 on_close). Closing first, while the server still runs, delivers 1001 and lets every
handler and hook finish; the lifespan shutdown then finds nothing open and runs ``on_stop``.

Two ways in: ``scallion run --server granian`` replaces granian's handler before the worker serves
(:func:`close_websockets_before_granian_stops`, from the worker's loader); a bare ``granian app:app`` has it
replaced at lifespan startup (:func:`take_over_granian_signals`, from :meth:`scallion.asgi.Server.lifespan`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

logger = logging.getLogger("scallion")


def close_websockets_before_granian_stops(closer: Callable[[], Awaitable[None]]) -> None:
    """In a granian worker process (``scallion run --server granian``): on SIGINT/SIGTERM, await ``closer()`` (the
    app's ``close_websockets``) on the worker's event loop first, and only then tell granian's Rust server to stop.

    Why: granian's worker installs a loop signal handler that stops its Rust server at once; the server then drops
    every websocket without a close frame and, with websocket tasks still in flight, the worker aborts on a Rust
    panic ("Cannot drop pointer into Python heap without the thread being attached", granian issues #799/#884:
    ``panic = "abort"``) before the ASGI lifespan shutdown is sent, so neither ``on_close`` nor ``on_stop`` run.
    Closing first, while the server still runs, delivers 1001 and lets every handler and hook finish; the lifespan
    shutdown then finds nothing open and runs ``on_stop``. granian's worker takes its handler from
    ``granian._signals.set_loop_signals`` when it starts serving, after loading the app (this function runs in the
    loader), so replacing that function here, in the worker process only, is contained."""
    import granian._signals as granian_signals
    from granian._granian import WorkerSignal

    global _granian_signals_taken
    _granian_signals_taken = True

    def set_loop_signals(loop: asyncio.AbstractEventLoop) -> Any:
        stop_server = WorkerSignal()
        drain_on_signals(loop, stop_server, closer)
        return stop_server

    granian_signals.set_loop_signals = set_loop_signals


_granian_signals_taken = False
"""True in a granian worker whose signal handling :func:`close_websockets_before_granian_stops` replaced."""


def drain_on_signals(loop: asyncio.AbstractEventLoop, stop_server: Any, closer: Callable[[], Awaitable[None]]) -> None:
    """Handle SIGINT/SIGTERM on ``loop``: await ``closer()``, then ``stop_server.set()`` (granian's WorkerSignal)."""

    draining: list[asyncio.Task[None]] = []

    async def drain() -> None:
        try:
            await closer()
        except Exception:
            logger.exception("closing websockets at shutdown failed")
        finally:
            stop_server.set()

    def on_signal() -> None:
        # once only: Ctrl-C in a terminal reaches the worker twice (SIGINT from the terminal, SIGTERM from
        # granian's main process), and the drain is bounded by the app's shutdown_timeout anyway
        if not draining:
            draining.append(loop.create_task(drain()))

    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, on_signal)


def take_over_granian_signals(closer: Callable[[], Awaitable[None]]) -> bool:
    """Called at lifespan startup: in a granian worker not started by ``scallion run`` (bare ``granian app:app``),
    make SIGINT/SIGTERM close the websockets (``closer()``) before granian's Rust server stops; True if done.

    By the time an app runs, granian's worker has installed its own loop signal handler, which stops the server
    (and, with websockets in flight, aborts the worker: see :func:`close_websockets_before_granian_stops`).
    asyncio keeps one handler per signal, so scallion installs its own in place of granian's and, once the
    websockets are closed, sets the same ``WorkerSignal`` granian's handler would have set. granian keeps it in
    the local ``shutdown_event`` of its worker function (granian 2.8), whose frame is below the lifespan's on
    the stack; if it is not found (another granian), nothing changes and a warning says so."""
    if _granian_signals_taken:
        return True
    granian_dir = os.path.dirname(sys.modules["granian"].__file__ or "") + os.sep
    frame: FrameType | None = sys._getframe()
    while frame is not None:
        if frame.f_code.co_filename.startswith(granian_dir):
            candidate = frame.f_locals.get("shutdown_event")
            if type(candidate).__name__ == "WorkerSignal":
                drain_on_signals(asyncio.get_running_loop(), candidate, closer)
                return True
        frame = frame.f_back
    logger.warning("granian's worker signal was not found: open websockets may miss on_close at shutdown")
    return False
