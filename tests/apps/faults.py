"""The app of the fault tests (``tests/test_faults.py``, ``tests/test_servers_shutdown.py``): websocket handlers
that read, sleep, send in a loop or work before their first receive/send, and HTTP routes that report what
happened, so the tests can ask the running server rather than guess.

Every connection is named by its ``key`` query parameter. Events (``open``, ``on_disconnect``, ``on_close``,
``finally``) are kept in memory with their ``time.time()`` and served as JSON by ``GET /events``; ``GET /stats``
gives the counters, the number of open connections and ``len(asyncio.all_tasks())``. ``on_close`` and ``on_stop``
are also appended, one line each, to ``$SCALLION_TEST_EVENTS/hooks.log``, which outlives the process (the
shutdown tests read it after the server exited).

``app`` is the :class:`~scallion.App` itself (not wrapped), so ``scallion run`` sees a scallion app.
"""

import asyncio
import itertools
import os
import time
from collections import Counter, defaultdict

from scallion import App, websocket, ws_send

MAX_MESSAGE_SIZE = 2 * 1024 * 1024
"""Bigger than the 1 MiB messages of the read-ahead test."""
SHUTDOWN_TIMEOUT = float(os.environ.get("FAULTS_SHUTDOWN_TIMEOUT", "5"))
PAYLOAD = "x" * 64

app = App(max_message_size=MAX_MESSAGE_SIZE, shutdown_timeout=SHUTDOWN_TIMEOUT)
events: dict[str, list[tuple[str, float]]] = defaultdict(list)
counts: Counter[str] = Counter()
_log_dir = os.environ.get("SCALLION_TEST_EVENTS", "")
_hooks_log = open(os.path.join(_log_dir, "hooks.log"), "a", buffering=1) if _log_dir else None  # noqa: SIM115


def key_of(scope):
    """The ``key`` query parameter of a scope ("" when absent)."""
    for part in scope.get("query_string", b"").decode("latin-1").split("&"):
        name, _, value = part.partition("=")
        if name == "key":
            return value
    return ""


def note(scope, name):
    """Record event ``name`` for the connection of ``scope``."""
    events[key_of(scope)].append((name, time.time()))
    counts[name] += 1


def log_line(line):
    if _hooks_log is not None:
        _hooks_log.write(line + "\n")


async def on_disconnect(scope):
    note(scope, "on_disconnect")


async def on_close(scope):
    note(scope, "on_close")
    log_line(f"on_close {key_of(scope)}")


HOOKS = {"on_disconnect": on_disconnect, "on_close": on_close}


@app.on_stop
async def stopped():
    log_line(f"on_stop {len(events)}")


# -- Emmett-style handlers --------------------------------------------------------------------------------
@app.websocket("/echo", **HOOKS)
async def echo():
    note(websocket.scope, "open")
    try:
        async for message in websocket:
            await websocket.send(message)
    finally:
        note(websocket.scope, "finally")


@app.websocket("/sleeper", **HOOKS)
async def sleeper():
    """Accepts, says "ready", then never reads: sleeps until cancelled."""
    note(websocket.scope, "open")
    try:
        await websocket.send("ready")
        await asyncio.sleep(3600)
    finally:
        note(websocket.scope, "finally")


@app.websocket("/sender", **HOOKS)
async def sender():
    """Sends in a loop and never reads or sleeps."""
    note(websocket.scope, "open")
    try:
        while True:
            await websocket.send(PAYLOAD)
    finally:
        note(websocket.scope, "finally")


@app.websocket("/before_accept", **HOOKS)
async def before_accept():
    """Works (sleeps) before its first receive/send, so the handshake is not answered yet."""
    note(websocket.scope, "open")
    try:
        await asyncio.sleep(3600)
        await websocket.send("too late")
    finally:
        note(websocket.scope, "finally")


# -- seed-000 handlers ------------------------------------------------------------------------------------
@websocket(**HOOKS)
async def gen_sender(scope, receiver):
    """Yields ws_send over an in-memory sequence, forever."""
    note(scope, "open")
    try:
        for item in itertools.cycle([PAYLOAD, PAYLOAD.upper()]):
            yield ws_send(item)
    finally:
        note(scope, "finally")


app.websocket("/gen_sender")(gen_sender)


# -- what happened ----------------------------------------------------------------------------------------
@app.route("/stats")
async def stats():
    return {
        "counts": dict(counts),
        "open": len(app.connections),
        "tasks": len(asyncio.all_tasks()),
        "keys": len(events),
    }


@app.route("/events")
async def all_events():
    return {key: [[name, stamp] for name, stamp in seen] for key, seen in events.items()}


@app.route("/reset", methods=["POST"])
async def reset():
    events.clear()
    counts.clear()
    return "reset"
