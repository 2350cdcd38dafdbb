"""Fuzzing the websocket core: Hypothesis-generated ASGI event sequences, fed in-process to both handler styles.

The test is the ASGI server. It calls ``await app(scope, receive, send)`` where ``receive`` hands out the
generated events (well-formed client messages of every size around ``max_message_size``, malformed events,
events of other protocols, duplicate connects, disconnects anywhere) and ``send`` records what the app sends.
Every example runs on its own event loop whose clock is virtual (:class:`VirtualLoop`): when nothing is ready,
the clock jumps to the next timer, so the 25 ms watchdog, the handlers' sleeps, ``CLOSE_TIMEOUT`` and the
deadlines below all run instantly and deterministically, and a hang is simply a virtual deadline that passes.

What the server does (:class:`Wire`):

* the events are handed out one per ``receive()``, ``gap`` virtual seconds apart;
* then the client leaves (``leave``): ``"after"`` at once, ``"later"`` after a silence (``receive()`` blocks
  until then), or ``"never"`` (``receive()`` blocks for good). Once gone, every ``receive()`` returns
  ``websocket.disconnect`` 1001;
* ``send`` records each message; with ``send_raises`` it raises :class:`ClientGone` (an ``OSError``, as uvicorn's
  ``ClientDisconnected``) once a ``websocket.disconnect`` was handed out, otherwise it does nothing then (granian).

The ASGI rules relied on (asgiref ``specs/main.rst`` "Error Handling" and ``specs/www.rst``):

* an application that receives an invalid event "should raise an exception"; scallion instead ends the
  connection itself (a close or a denial), so that the client sees an orderly end. We hold it to that: no
  exception escapes the app for any generated event sequence, with two exceptions that the spec allows:
  1. the ``OSError`` that *our* ``send`` raised (spec: "Even if an error is raised on send(), it should be an error
     class that the server catches and ignores if it is raised out of the application");
  2. the ``CancelledError`` of *our* cancellation (the server cancelling the application, asyncio's contract).
  A ``CancelledError`` the handler raised itself is not the server's and must not escape.
* ``websocket.receive`` carries exactly one of ``text`` (``str``) / ``bytes`` (``bytes``) non-``None``; anything
  else is malformed and must not reach the handler as a message. Extra keys are allowed and change nothing.
* messages the app sends: at most one ``websocket.accept`` or ``websocket.http.response.start`` and before
  anything else; ``websocket.send`` only while open, with exactly one of text (``str``) / bytes (``bytes``);
  nothing after ``websocket.close`` or the last body of the denial; close codes valid on the wire (RFC 6455:
  1000-1003, 1007-1011, 1012-1014, 3000-4999); the denial only where the ``websocket.http.response`` extension
  is in the scope, and complete (start, then a body without ``more_body``).

When hooks run (what we expect, checked for every example):

* The handler chain runs when the first event is a well-formed ``websocket.connect``; otherwise the app must
  end the connection without running anything: no hooks, and a close (the client sees HTTP 403) unless that
  first event was the client's own disconnect.
* When the chain ran: ``on_connect`` exactly once, before the app sends anything; ``on_close`` exactly once,
  after everything the app sent; ``on_disconnect`` at most once, before ``on_close``, and only if the client's
  ``websocket.disconnect`` (any code but 1012, which uvicorn sends at its own shutdown) was handed out before the
  app sent its close, or our ``send`` raised (an ``OSError`` from ``send`` is how uvicorn says the client is
  gone, whatever the disconnect's code). Conversely, if such a disconnect was handed out and the app never closed
  the connection itself, the client ended it, so ``on_disconnect`` must have run.
* A malformed event or one of another protocol (``{}``, ``http.request``, a duplicate ``websocket.connect``...) is
  the server's fault, never the client leaving: it must not run ``on_disconnect``, whether the handler read it
  or the watchdog read it ahead; the watchdog keeps reading ahead after it, so a later disconnect is still seen.

Nothing hangs: once the client has left, the app returns within ``SETTLE`` virtual seconds. With ``leave="never"``
the app returns by itself if the handler or ``on_connect`` ends the connection; otherwise the test cancels it
at the deadline and checks that it still ends cleanly (``on_close`` ran, nothing invalid sent).

There are fewer events per example than ``max_queue``: past that the watchdog stops reading ahead by design (the
server's flow control takes over), so a departure behind a full queue is not seen until the handler reads.

``SCALLION_FUZZ_EXAMPLES`` (default 300) sets the examples per property, for longer local runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import selectors
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from scallion import App, WebSocketDisconnect, build_server, websocket, ws_accept, ws_close, ws_deny, ws_send
from scallion.asgi import standard_not_found
from scallion.middlewares import apply_middleware, wrap_routes

pytestmark = pytest.mark.timeout(55)

MAX = 32
"""``max_message_size`` of every app under test: small, so that sizes around it are cheap."""
SETTLE = 1.0
"""Virtual seconds an app has to return once the client left (the watchdog notices within about 50 ms)."""
SHUTDOWN_TIMEOUT = 5.0
"""The server's default ``shutdown_timeout``."""
SILENCE = 0.5
"""Virtual seconds between the last event and the client leaving, for ``leave="later"``."""
EXAMPLES = int(os.environ.get("SCALLION_FUZZ_EXAMPLES", "300"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

VALID_CLOSE = {*range(1000, 1004), *range(1007, 1015), *range(3000, 5000)}
SERVER_SHUTDOWN = 1012
CONNECT = {"type": "websocket.connect"}
DENIAL = "websocket.http.response"


# -- a virtual clock ----------------------------------------------------------------------------------------
class VirtualSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """A selector that never waits: when nothing is ready it moves the loop's clock to the next timer."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready: list[tuple[selectors.SelectorKey, int]] = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise RuntimeError("deadlock: nothing is ready and no timer is set")
        self.now += timeout
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time: sleeps, timeouts and the watchdog's timer take no wall-clock time."""

    def __init__(self) -> None:
        self.virtual = VirtualSelector()
        super().__init__(self.virtual)

    def time(self) -> float:
        return self.virtual.now


# -- the server side ----------------------------------------------------------------------------------------
class ClientGone(OSError):
    """What ``send`` raises after the client left, with ``send_raises`` (uvicorn's ``ClientDisconnected``)."""


@dataclass
class Wire:
    """The server end of one connection: hands out events, records sends and hooks in one log."""

    events: list[dict[str, Any]]
    leave: str
    gap: float
    send_raises: bool
    send_yields: bool
    log: list[tuple[str, Any]] = field(default_factory=list)
    index: int = 0
    receiving: int = 0
    most_receiving: int = 0
    raised: list[BaseException] = field(default_factory=list)
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the first event was handed out."""
    disconnect_out: bool = False

    async def receive(self) -> dict[str, Any]:
        self.receiving += 1
        self.most_receiving = max(self.most_receiving, self.receiving)
        try:
            if self.index < len(self.events):
                event = self.events[self.index]
                self.index += 1
                if self.gap:
                    await asyncio.sleep(self.gap)
                event = dict(event)
            else:
                if not self.gone.is_set():
                    await self.gone.wait()
                event = {"type": "websocket.disconnect", "code": 1001}
            if event.get("type") == "websocket.disconnect":
                self.disconnect_out = True
            self.log.append(("recv", dict(event)))
            self.connected.set()
            return event
        finally:
            self.receiving -= 1

    async def send(self, message: dict[str, Any]) -> None:
        self.log.append(("send", dict(message)))
        if self.send_yields:
            await asyncio.sleep(0)
        if self.send_raises and self.disconnect_out:
            error = ClientGone("the client is gone")
            self.raised.append(error)
            self.log.append(("raised", error))
            raise error

    def hook(self, name: str) -> None:
        self.log.append(("hook", name))

    @property
    def sent(self) -> list[dict[str, Any]]:
        return [m for kind, m in self.log if kind == "send"]

    @property
    def received(self) -> list[dict[str, Any]]:
        return [m for kind, m in self.log if kind == "recv"]

    def hooks(self, name: str) -> int:
        return sum(1 for kind, m in self.log if kind == "hook" and m == name)


def scope_for(extension: bool) -> dict[str, Any]:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "ws",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "path": "/ws",
        "raw_path": b"/ws",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000")],
        "subprotocols": [],
        "extensions": {DENIAL: {}} if extension else {},
        "state": {},
    }


# -- handlers under test ------------------------------------------------------------------------------------
FINITE = {"raise", "raise_after_read", "raise_cancelled", "coroutine_once", "deny_in_body"}
"""Shapes that end by themselves (or after one message) even if the client never leaves."""
ECHO = {"echo", "echo_receive"}
NOT_READING = ["send_loop", "sleep"]

GEN_SHAPES = [
    "echo",
    "send_loop",
    "sleep",
    "read_once_close",
    "raise",
    "raise_after_read",
    "raise_cancelled",
    "coroutine_once",
    "yield_in_finally",
]
OBJ_SHAPES = [
    "echo",
    "echo_receive",
    "send_loop",
    "sleep",
    "sleep_unaccepted",
    "read_once_close",
    "raise",
    "raise_after_read",
    "raise_cancelled",
    "json_echo",
    "deny_in_body",
    "swallow_disconnect",
    "send_in_finally",
]


def generator_handler(shape: str) -> Callable[..., Any]:
    """A seed-000 handler ``(scope, receiver)`` of the given shape."""
    if shape == "echo":

        async def echo(scope: dict[str, Any], receiver: Any) -> Any:
            async for message in receiver:
                yield ws_send(message)

        return echo
    if shape == "send_loop":

        async def send_loop(scope: dict[str, Any], receiver: Any) -> Any:
            while True:
                yield ws_send("tick")
                await asyncio.sleep(0.005)

        return send_loop
    if shape == "sleep":

        async def sleep(scope: dict[str, Any], receiver: Any) -> Any:
            yield ws_send("hello")
            await asyncio.sleep(3600)

        return sleep
    if shape == "read_once_close":

        async def read_once_close(scope: dict[str, Any], receiver: Any) -> Any:
            async for _ in receiver:
                yield ws_close(4001, "once")

        return read_once_close
    if shape == "raise":

        async def raises(scope: dict[str, Any], receiver: Any) -> Any:
            raise ValueError("boom")
            yield  # pragma: no cover

        return raises
    if shape == "raise_after_read":

        async def raise_after_read(scope: dict[str, Any], receiver: Any) -> Any:
            async for _ in receiver:
                raise ValueError("boom")
            yield ws_send("the client left")

        return raise_after_read
    if shape == "raise_cancelled":

        async def raise_cancelled(scope: dict[str, Any], receiver: Any) -> Any:
            yield ws_send("hello")
            raise asyncio.CancelledError()

        return raise_cancelled
    if shape == "yield_in_finally":

        async def yield_in_finally(scope: dict[str, Any], receiver: Any) -> Any:
            try:
                async for message in receiver:
                    yield ws_send(message)
            finally:
                yield ws_send("bye")  # a generator that yields while being closed: RuntimeError from aclose()

        return yield_in_finally
    if shape == "coroutine_once":

        async def coroutine_once(scope: dict[str, Any], receiver: Any) -> None:
            async for _ in receiver:
                return

        return coroutine_once
    raise AssertionError(shape)


def object_handler(shape: str) -> Callable[..., Any]:
    """An Emmett-style handler (no arguments, uses ``websocket``) of the given shape."""
    if shape == "echo":

        async def echo() -> None:
            async for message in websocket:
                await websocket.send(message)

        return echo
    if shape == "echo_receive":

        async def echo_receive() -> None:
            while True:
                await websocket.send(await websocket.receive())

        return echo_receive
    if shape == "send_loop":

        async def send_loop() -> None:
            while True:
                await websocket.send("tick")
                await asyncio.sleep(0.005)

        return send_loop
    if shape == "sleep":

        async def sleep() -> None:
            await websocket.accept()
            await asyncio.sleep(3600)

        return sleep
    if shape == "sleep_unaccepted":

        async def sleep_unaccepted() -> None:
            await asyncio.sleep(3600)

        return sleep_unaccepted
    if shape == "read_once_close":

        async def read_once_close() -> None:
            await websocket.receive()
            await websocket.close(4001, "once")

        return read_once_close
    if shape == "raise":

        async def raises() -> None:
            raise ValueError("boom")

        return raises
    if shape == "raise_after_read":

        async def raise_after_read() -> None:
            await websocket.receive()
            raise ValueError("boom")

        return raise_after_read
    if shape == "raise_cancelled":

        async def raise_cancelled() -> None:
            await websocket.accept()
            raise asyncio.CancelledError()

        return raise_cancelled
    if shape == "json_echo":

        async def json_echo() -> None:
            while True:
                await websocket.send_json(await websocket.receive_json())

        return json_echo
    if shape == "deny_in_body":

        async def deny_in_body() -> None:
            await websocket.deny(401, b"not you")

        return deny_in_body
    if shape == "send_in_finally":

        async def send_in_finally() -> None:
            try:
                while True:
                    await websocket.receive()
            finally:
                await websocket.send("bye")  # after the client left, or after a close: raises, must not escape

        return send_in_finally
    if shape == "swallow_disconnect":

        async def swallow_disconnect() -> None:
            with contextlib.suppress(WebSocketDisconnect):
                await websocket.receive()
            await websocket.receive()  # once the connection is over, this raises again rather than hang

        return swallow_disconnect
    raise AssertionError(shape)


DECISIONS: dict[str, Callable[[], dict[str, Any]]] = {
    "accept": ws_accept,
    "close": lambda: ws_close(4003, "no"),
    "deny": lambda: ws_deny(401, b"who are you?", {"x-why": "fuzz"}),
    "garbage": lambda: None,
    "slow_accept": lambda: ws_accept(),  # its own function: make_hook tells it from "accept" by identity
}
REFUSING = {"close", "deny", "garbage"}


def make_hook(case: Case, wire: Wire, name: str, decide: Callable[[], Any] | None = None) -> Callable[..., Any]:
    """A hook that logs ``name`` into ``wire``, then raises (``case.hook_fails``) or returns ``decide()``."""

    def hook(scope: dict[str, Any]) -> Any:
        wire.hook(name)
        if case.hook_fails == name:
            raise ValueError(f"{name} failed")
        return decide() if decide is not None else None

    if case.hooks_sync:
        return hook

    async def async_hook(scope: dict[str, Any]) -> Any:
        if decide is DECISIONS.get("slow_accept"):  # logged as it starts: a shutdown may cancel it while it waits
            wire.hook(name)
            await asyncio.sleep(0.05)
            if case.hook_fails == name:
                raise ValueError(f"{name} failed")
            return decide()
        return hook(scope)

    return async_hook


def build_app(case: Case, wire: Wire) -> Any:
    """The app of ``case``, its hooks logging into ``wire``."""
    hooks: dict[str, Any] = {
        "on_disconnect": make_hook(case, wire, "on_disconnect"),
        "on_close": make_hook(case, wire, "on_close"),
    }
    if case.on_connect is not None:
        hooks["on_connect"] = make_hook(case, wire, "on_connect", DECISIONS[case.on_connect])
    options: dict[str, Any] = {"max_message_size": MAX, "idle_timeout": case.idle_timeout}
    if case.max_message_rate is not None:
        options["max_message_rate"] = case.max_message_rate
    if case.style == "gen":
        handler = websocket(**hooks)(generator_handler(case.shape))
        routes = [("/ws", ["WS"], handler)]
        return build_server(apply_middleware(wrap_routes(routes))(standard_not_found), **options)
    app = App(**options)
    app.websocket("/ws", **hooks)(object_handler(case.shape))
    return app


# -- one run ------------------------------------------------------------------------------------------------
@dataclass
class Case:
    """One generated example: the app, the events, and how the server behaves."""

    style: str
    shape: str
    on_connect: str | None
    extension: bool
    events: list[dict[str, Any]]
    leave: str
    gap: float
    send_raises: bool
    send_yields: bool
    hooks_sync: bool = False
    """Hooks as plain functions rather than coroutine functions."""
    hook_fails: str | None = None
    """The name of a hook that raises (after logging that it ran)."""
    shutdown_at: float | None = None
    """Virtual time of a lifespan shutdown, if any: after the connection started (the spec's server stops
    accepting connections before it sends ``lifespan.shutdown``)."""
    idle_timeout: float | None = None
    max_message_rate: float | None = None
    """None: the server's default."""


@dataclass
class Outcome:
    """What happened: the wire's log, how the app ended, whether we had to cancel it."""

    wire: Wire
    returned: bool = False
    error: BaseException | None = None
    escaped_cancel: bool = False
    hung: bool = False
    we_cancelled: bool = False
    ended_at: float = 0.0
    left_at: float | None = None
    lifespan_done: bool = True
    helpers: list[asyncio.Future[None]] = field(default_factory=list)
    """Tasks of the test's own (cancelled by :func:`run` if still running)."""


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The app logs every handler failure with a traceback; thousands of them only slow the run down."""
    logger = logging.getLogger("scallion")
    was = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = was


async def drive(case: Case) -> Outcome:
    loop = asyncio.get_running_loop()
    wire = Wire(list(case.events), case.leave, case.gap, case.send_raises, case.send_yields)
    outcome = Outcome(wire)
    app = build_app(case, wire)
    events_end = len(case.events) * case.gap
    if case.leave == "after":
        wire.gone.set()
        outcome.left_at = events_end
    elif case.leave == "later":
        outcome.left_at = events_end + SILENCE
        loop.call_later(outcome.left_at, wire.gone.set)
    deadline = (outcome.left_at if outcome.left_at is not None else events_end + SILENCE) + SETTLE
    lifespan: asyncio.Future[None] | None = None
    shutdowns: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    if case.shutdown_at is not None:
        started = asyncio.Event()

        async def lifespan_send(message: dict[str, Any]) -> None:
            wire.log.append(("lifespan", message["type"]))
            started.set()

        shutdowns.put_nowait({"type": "lifespan.startup"})
        lifespan_scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        lifespan = asyncio.ensure_future(app(lifespan_scope, shutdowns.get, lifespan_send))
        async with asyncio.timeout(1.0):
            await started.wait()

        async def shut_down(delay: float) -> None:
            await wire.connected.wait()
            await asyncio.sleep(delay)
            wire.log.append(("shutdown", None))
            shutdowns.put_nowait({"type": "lifespan.shutdown"})

        outcome.helpers.append(asyncio.ensure_future(shut_down(case.shutdown_at)))
        deadline = min(deadline, case.gap + case.shutdown_at + SETTLE)
    task = asyncio.ensure_future(app(scope_for(case.extension), wire.receive, wire.send))
    await asyncio.wait([task], timeout=deadline)
    if not task.done():
        outcome.hung = True
        outcome.we_cancelled = True
        task.cancel()
        await asyncio.wait([task], timeout=SETTLE + 1.0)
        if not task.done():  # not even a cancellation ends it: give up on it (the loop is closed below)
            return outcome
    outcome.ended_at = loop.time()
    if lifespan is not None:
        await asyncio.wait([lifespan], timeout=SHUTDOWN_TIMEOUT + SETTLE)
        outcome.lifespan_done = lifespan.done() and not lifespan.cancelled() and lifespan.exception() is None
    if task.cancelled():
        outcome.escaped_cancel = not outcome.we_cancelled
    elif task.exception() is not None:
        outcome.error = task.exception()
    else:
        outcome.returned = True
    return outcome


def run(case: Case) -> Outcome:
    """Run ``case`` on a fresh virtual-time loop (a fresh watchdog too)."""
    loop = VirtualLoop()
    try:
        with quiet():
            return loop.run_until_complete(drive(case))
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        with contextlib.suppress(BaseException):
            loop.run_until_complete(asyncio.sleep(0))
        loop.close()


# -- event classes ------------------------------------------------------------------------------------------
def payload(event: Any) -> str | bytes | None:
    """The data of a well-formed ``websocket.receive`` (exactly one of str text / bytes bytes), else None."""
    if type(event) is not dict or event.get("type") != "websocket.receive":
        return None
    text, data = event.get("text"), event.get("bytes")
    if text is not None and data is None and type(text) is str:
        return text
    if data is not None and text is None and type(data) is bytes:
        return data
    return None


def is_disconnect(event: dict[str, Any]) -> bool:
    return event.get("type") == "websocket.disconnect"


def client_left(event: dict[str, Any]) -> bool:
    """A disconnect that means the client went (not uvicorn's own shutdown, 1012)."""
    return is_disconnect(event) and event.get("code", 1005) != SERVER_SHUTDOWN


# -- the properties -----------------------------------------------------------------------------------------
def check_sent(sent: list[dict[str, Any]], extension: bool) -> str:
    """Validate the order and shape of everything the app sent; returns the final state."""
    state = "connecting"
    for n, message in enumerate(sent):
        kind = message.get("type")
        where = f"message {n} {message!r} (all sent: {sent!r})"
        assert state not in ("closed", "denied"), f"sent after the connection ended: {where}"
        if kind == "websocket.accept":
            assert state == "connecting", f"accept not first: {where}"
            assert message.get("subprotocol") is None or type(message.get("subprotocol")) is str, where
            for pair in message.get("headers") or []:
                assert len(pair) == 2 and all(type(x) is bytes for x in pair), where
            state = "open"
        elif kind == "websocket.send":
            assert state == "open", f"send before accept: {where}"
            text, data = message.get("text"), message.get("bytes")
            assert (text is None) != (data is None), f"not exactly one of text/bytes: {where}"
            assert text is None or type(text) is str, where
            assert data is None or type(data) is bytes, where
        elif kind == "websocket.close":
            code = message.get("code", 1000)
            assert type(code) is int and code in VALID_CLOSE, f"invalid close code: {where}"
            reason = message.get("reason")
            assert reason is None or (type(reason) is str and len(reason.encode()) <= 123), where
            state = "closed"
        elif kind == "websocket.http.response.start":
            assert state == "connecting", f"denial not first: {where}"
            assert extension, f"denial without the {DENIAL} extension: {where}"
            assert type(message.get("status")) is int, where
            for pair in message.get("headers") or []:
                assert len(pair) == 2 and all(type(x) is bytes for x in pair), where
            state = "responding"
        elif kind == "websocket.http.response.body":
            assert state == "responding", f"body without start: {where}"
            assert type(message.get("body", b"")) is bytes, where
            if not message.get("more_body", False):
                state = "denied"
        else:
            raise AssertionError(f"not a websocket message: {where}")
    return state


def ending_index(log: list[tuple[str, Any]]) -> int | None:
    """Where in the log the app ended the connection itself (close, or the start of a denial)."""
    for n, (kind, message) in enumerate(log):
        if kind == "send" and message.get("type") in ("websocket.close", "websocket.http.response.start"):
            return n
    return None


def tell(log: list[tuple[str, Any]]) -> str:
    """The log for a failure message, runs of the same entry folded (a send loop sends hundreds of ticks)."""
    lines: list[str] = []
    for entry in log:
        text = f"{entry[0]} {entry[1]!r}"
        if lines and lines[-1].split("  (x")[0] == text:
            head, _, count = lines[-1].partition("  (x")
            lines[-1] = f"{head}  (x{int(count.rstrip(')') or 1) + 1})"
        else:
            lines.append(text)
    return "\nlog:\n  " + "\n  ".join(lines)


def check(case: Case, outcome: Outcome) -> None:
    wire = outcome.wire
    log = wire.log
    story = tell(log)
    # Nothing escapes but what the spec allows.
    assert not outcome.escaped_cancel, "a CancelledError the server did not cause escaped the app" + story
    if outcome.error is not None:
        allowed = any(outcome.error is raised for raised in wire.raised)
        assert allowed, f"the app raised {outcome.error!r}" + story
    # Nothing hangs once the client left; with a client that stays, finite handlers and refusals still end.
    if outcome.hung:
        assert outcome.left_at is None, f"still running {SETTLE}s after the client left" + story
        refused = (
            case.on_connect in REFUSING
            or (case.on_connect and case.hook_fails == "on_connect")
            or case.events[:1] != [CONNECT]
        )
        assert not refused and case.shape not in FINITE, "a connection that had ended did not return" + story
        assert case.shutdown_at is None, "still running after the server shut down" + story
        assert case.idle_timeout is None, f"still running past idle_timeout={case.idle_timeout}" + story
    assert wire.most_receiving <= 1, "receive() awaited by two tasks at once" + story
    # Only valid messages in a valid order, and the connection ends with a valid close.
    state = check_sent(wire.sent, case.extension)
    received = wire.received
    left = any(is_disconnect(e) for e in received)
    if not outcome.we_cancelled:
        assert state in ("closed", "denied") or left, f"ended without a close ({state})" + story
    else:
        assert state != "responding", "incomplete denial" + story
    if case.shutdown_at is not None:
        check_shutdown(case, outcome)
    # Hooks.
    chain = bool(received) and received[0] == CONNECT
    if not chain:
        for name in ("on_connect", "on_disconnect", "on_close"):
            assert wire.hooks(name) == 0, f"{name} ran although the handshake never reached the handler" + story
        return
    assert wire.hooks("on_connect") == (1 if case.on_connect else 0), "on_connect count" + story
    assert wire.hooks("on_close") == 1, f"on_close ran {wire.hooks('on_close')} times" + story
    assert wire.hooks("on_disconnect") <= 1, "on_disconnect ran twice" + story
    positions = {m: n for n, (kind, m) in enumerate(log) if kind == "hook"}
    first_send = next((n for n, (kind, _) in enumerate(log) if kind == "send"), len(log))
    if "on_connect" in positions:
        assert positions["on_connect"] < first_send, "on_connect after the app sent" + story
    last_send = max((n for n, (kind, _) in enumerate(log) if kind == "send"), default=-1)
    assert positions["on_close"] > last_send, "the app sent after on_close" + story
    end = ending_index(log)
    left_first = next(
        (
            n
            for n, (kind, e) in enumerate(log)
            if (kind == "raised" or (kind == "recv" and client_left(e))) and (end is None or n < end)
        ),
        None,
    )
    if "on_disconnect" in positions:
        assert positions["on_disconnect"] < positions["on_close"], "on_disconnect after on_close" + story
        assert left_first is not None, "on_disconnect ran but the client never left first" + story
    elif left_first is not None and end is None:
        raise AssertionError("the client ended the connection but on_disconnect did not run" + story)
    if case.shape in ECHO:
        check_echo(case, outcome)


def check_shutdown(case: Case, outcome: Outcome) -> None:
    """A lifespan shutdown completes; an open connection is closed with 1001 and its hooks run before the
    server's ``lifespan.shutdown.complete``."""
    log = outcome.wire.log
    story = tell(log)
    assert outcome.lifespan_done, "the lifespan shutdown did not complete" + story
    at = next((n for n, (kind, _) in enumerate(log) if kind == "shutdown"), None)
    if at is None:
        return
    complete = next((n for n, e in enumerate(log) if e == ("lifespan", "lifespan.shutdown.complete")), len(log))
    started = any(kind == "recv" and m == CONNECT for kind, m in log[:1]) and at > 0
    if started and any(e == ("hook", "on_close") for e in log):
        closed_at = log.index(("hook", "on_close"))
        assert closed_at < complete, "on_close ran after the server's shutdown completed" + story
    sent_before = [m.get("type") for kind, m in log[:at] if kind == "send"]
    left_before = any(kind == "recv" and is_disconnect(m) for kind, m in log[:at])
    still_open = "websocket.accept" in sent_before and "websocket.close" not in sent_before and not left_before
    after = log[at + 1 :]
    close = next(
        (n for n, (kind, m) in enumerate(after) if kind == "send" and m.get("type") == "websocket.close"), None
    )
    quiet_until_close = close is not None and not any(kind == "recv" for kind, _ in after[:close])
    if still_open and case.shape in NOT_READING and quiet_until_close:
        assert after[close][1].get("code") == 1001, "shutdown did not close an open websocket with 1001" + story


def check_echo(case: Case, outcome: Outcome) -> None:
    """An echo handler echoes each well-formed message up to ``max_message_size`` in order, closes 1009 at the
    first bigger one, and never echoes a malformed event as if it were a message."""
    wire = outcome.wire
    sent = wire.sent
    if not any(m.get("type") == "websocket.accept" for m in sent):
        return
    echoed = [
        m.get("text") if m.get("text") is not None else m.get("bytes")
        for m in sent
        if m.get("type") == "websocket.send"
    ]
    story = f"\nechoed: {echoed!r}" + tell(wire.log)
    expected: list[str | bytes] = []
    stop = "end"
    for event in wire.received[1:]:
        data = payload(event)
        if data is not None and len(data) <= MAX:
            expected.append(data)
            continue
        if data is not None:
            stop = "too big"
        elif is_disconnect(event):
            stop = "left"
        elif type(event.get("type")) is str and event["type"] != "websocket.receive":
            stop = "other protocol"
        else:
            stop = "malformed"
        break
    assert echoed[: len(expected)] == expected, "well-formed messages not echoed in order" + story
    every = [d for d in map(payload, wire.received[1:]) if d is not None and len(d) <= MAX]
    assert echoed == every[: len(echoed)], "echoed something that was not a well-formed message" + story
    if stop in ("too big", "malformed", "left"):
        assert len(echoed) == len(expected), f"echoed past the first {stop} event" + story
    if stop == "too big":
        closes = [m for m in sent if m.get("type") == "websocket.close"]
        assert closes and closes[-1].get("code") == 1009, "a message over max_message_size did not close 1009" + story


# -- strategies ---------------------------------------------------------------------------------------------
SIZES = st.sampled_from([0, 1, MAX - 1, MAX, MAX + 1]) | st.integers(0, MAX + 3)
EXTRA = st.sampled_from([{}, {}, {"x-extra": 1}])


@st.composite
def text_message(draw: st.DrawFn) -> dict[str, Any]:
    text = "x" * draw(SIZES) if draw(st.booleans()) else draw(st.text(max_size=6))
    explicit_none = {"bytes": None} if draw(st.booleans()) else {}
    return {"type": "websocket.receive", "text": text, **explicit_none, **draw(EXTRA)}


@st.composite
def bytes_message(draw: st.DrawFn) -> dict[str, Any]:
    data = b"\x00\xff" * (draw(SIZES) // 2) + (b"!" if draw(st.booleans()) else b"")
    explicit_none = {"text": None} if draw(st.booleans()) else {}
    return {"type": "websocket.receive", "bytes": data[: MAX + 3], **explicit_none, **draw(EXTRA)}


MALFORMED_RECEIVE = st.sampled_from(
    [
        {"type": "websocket.receive"},
        {"type": "websocket.receive", "text": None, "bytes": None},
        {"type": "websocket.receive", "text": "both", "bytes": b"both"},
        {"type": "websocket.receive", "text": 5},
        {"type": "websocket.receive", "text": b"bytes as text"},
        {"type": "websocket.receive", "bytes": "text as bytes"},
        {"type": "websocket.receive", "bytes": 3},
        {"type": "websocket.receive", "bytes": [104, 105]},
    ]
)
MALFORMED = st.sampled_from([{}, {"type": None}, {"type": 7}, {"text": "no type"}, {"bytes": b"no type"}])
OTHER_PROTOCOL = st.sampled_from(
    [
        {"type": "websocket.connect"},
        {"type": "http.request", "body": b"", "more_body": False},
        {"type": "http.disconnect"},
        {"type": "http.response.start", "status": 200},
        {"type": "lifespan.startup"},
        {"type": "mychat.message", "text": "hi"},
        {"type": "websocket.send", "text": "echoed back?"},
    ]
)
DISCONNECT = st.sampled_from([1000, 1001, 1005, 1006, 1011, SERVER_SHUTDOWN, 4000]).map(
    lambda code: {"type": "websocket.disconnect", "code": code}
) | st.just({"type": "websocket.disconnect"})
MESSAGE = text_message() | bytes_message()
EVENT = st.one_of(MESSAGE, MESSAGE, MESSAGE, MALFORMED_RECEIVE, MALFORMED, OTHER_PROTOCOL, DISCONNECT)
FIRST = st.one_of(*[st.just(CONNECT)] * 8, DISCONNECT, MALFORMED, OTHER_PROTOCOL, MESSAGE, MALFORMED_RECEIVE)


def cases(style: str, shapes: list[str], first: st.SearchStrategy[dict[str, Any]] = FIRST) -> Any:
    return st.builds(
        Case,
        style=st.just(style),
        shape=st.sampled_from(shapes),
        on_connect=st.sampled_from([None, None, "accept", "close", "deny", "garbage", "slow_accept"]),
        extension=st.booleans(),
        events=st.tuples(first, st.lists(EVENT, max_size=11)).map(lambda t: [t[0], *t[1]]),
        leave=st.sampled_from(["after", "later", "never"]),
        gap=st.sampled_from([0.0, 0.001, 0.04]),
        send_raises=st.booleans(),
        send_yields=st.booleans(),
        hooks_sync=st.booleans(),
        hook_fails=st.sampled_from([None, None, None, "on_connect", "on_disconnect", "on_close"]),
        shutdown_at=st.none() | st.sampled_from([0.001, 0.01, 0.03, 0.2]),
        idle_timeout=st.sampled_from([None, None, 0.1]),
        max_message_rate=st.sampled_from([None, None, 5.0]),
    )


def case(style: str, shape: str, events: list[dict[str, Any]], **kwargs: Any) -> Case:
    """A hand-written example (the known defects, pinned so that they are always tried)."""
    defaults: dict[str, Any] = {
        "on_connect": None,
        "extension": True,
        "leave": "after",
        "gap": 0.0,
        "send_raises": False,
        "send_yields": False,
    }
    return Case(style, shape, events=events, **{**defaults, **kwargs})


MALFORMED_WHILE_SLEEPING = [CONNECT, {}, {"type": "websocket.receive", "text": "after"}]
HTTP_WHILE_SLEEPING = [CONNECT, {"type": "http.request", "body": b""}, {"type": "websocket.receive", "text": "x"}]


# -- the properties, per handler style ----------------------------------------------------------------------
@FUZZ
@given(c=cases("gen", GEN_SHAPES))
@example(c=case("gen", "echo", [{}]))
@example(c=case("gen", "sleep", MALFORMED_WHILE_SLEEPING))
@example(c=case("gen", "sleep", HTTP_WHILE_SLEEPING, leave="later", gap=0.04))
@example(c=case("gen", "raise_cancelled", [CONNECT]))
@example(
    c=case(
        "gen",
        "echo",
        [
            CONNECT,
            {"type": "websocket.receive", "text": "x" * MAX},
            {"type": "websocket.receive", "text": "x" * (MAX + 1)},
        ],
    )
)
@example(c=case("gen", "sleep", [CONNECT], on_connect="slow_accept", leave="never", shutdown_at=0.01))
def test_generator_handlers(c: Case) -> None:
    """Seed-000 ``@websocket`` handlers behind a routing table (``build_server(wrap_routes(...))``)."""
    check(c, run(c))


@FUZZ
@given(c=cases("obj", OBJ_SHAPES))
@example(c=case("obj", "echo", [{}]))
@example(c=case("obj", "sleep", MALFORMED_WHILE_SLEEPING))
@example(c=case("obj", "sleep", HTTP_WHILE_SLEEPING, leave="later", gap=0.04))
@example(c=case("obj", "raise_cancelled", [CONNECT]))
@example(c=case("obj", "sleep", [CONNECT], on_connect="slow_accept", leave="never", shutdown_at=0.01))
def test_object_handlers(c: Case) -> None:
    """Emmett-style ``@app.websocket()`` coroutines on an ``App``."""
    check(c, run(c))


@FUZZ
@given(c=cases("gen", NOT_READING, first=st.just(CONNECT)) | cases("obj", NOT_READING, first=st.just(CONNECT)))
def test_watchdog_read_ahead(c: Case) -> None:
    """Handlers that never read: every event is read ahead by the watchdog, malformed ones included."""
    check(c, run(c))


@FUZZ
@given(
    c=cases("gen", GEN_SHAPES, first=st.one_of(DISCONNECT, MALFORMED, OTHER_PROTOCOL, MESSAGE, MALFORMED_RECEIVE))
    | cases("obj", OBJ_SHAPES, first=st.one_of(DISCONNECT, MALFORMED, OTHER_PROTOCOL, MESSAGE, MALFORMED_RECEIVE))
)
@example(c=case("gen", "echo", [{"type": "websocket.receive", "text": "before connect"}, CONNECT]))
def test_handshake_without_connect(c: Case) -> None:
    """The first event is not ``websocket.connect``: the app ends the connection without running anything."""
    check(c, run(c))


def test_virtual_clock_runs_timers_without_waiting() -> None:
    """The harness itself: an hour of virtual sleep passes at once, in order with other timers."""
    loop = VirtualLoop()
    try:
        order: list[str] = []

        async def main() -> float:
            loop.call_later(2.0, order.append, "2s")
            await asyncio.sleep(3600)
            order.append("1h")
            return loop.time()

        assert loop.run_until_complete(main()) == pytest.approx(3600)
        assert order == ["2s", "1h"]
    finally:
        loop.close()


# -- what the handler chooses: close codes, reasons, subprotocols ------------------------------------------
@dataclass
class Choice:
    """A handler that accepts with ``subprotocol`` (requested by the client or not), then closes with ``code``
    and ``reason``: whatever the handler asks for, what goes on the wire must be valid."""

    style: str
    requested: list[str]
    subprotocol: str | None
    code: int
    reason: str


def choice_app(choice: Choice, wire: Wire) -> Any:
    hooks: dict[str, Any] = {"on_close": lambda scope: wire.hook("on_close")}
    if choice.style == "gen":

        async def closer(scope: dict[str, Any], receiver: Any) -> Any:
            yield ws_send("hi")
            yield ws_close(choice.code, choice.reason)

        hooks["on_connect"] = lambda scope: ws_accept(choice.subprotocol)
        routes = [("/ws", ["WS"], websocket(**hooks)(closer))]
        return build_server(apply_middleware(wrap_routes(routes))(standard_not_found))
    app = App()

    async def obj_closer() -> None:
        await websocket.accept(choice.subprotocol)
        await websocket.send("hi")
        await websocket.close(choice.code, choice.reason)

    app.websocket("/ws", **hooks)(obj_closer)
    return app


def run_choice(choice: Choice) -> tuple[Wire, BaseException | None]:
    loop = VirtualLoop()

    async def main() -> tuple[Wire, BaseException | None]:
        wire = Wire([CONNECT], "never", 0.0, False, False)
        scope = {**scope_for(True), "subprotocols": list(choice.requested)}
        task = asyncio.ensure_future(choice_app(choice, wire)(scope, wire.receive, wire.send))
        await asyncio.wait([task], timeout=SETTLE)
        if not task.done():
            task.cancel()
            return wire, TimeoutError("did not return")
        return wire, None if task.cancelled() else task.exception()

    try:
        with quiet():
            return loop.run_until_complete(main())
    finally:
        loop.close()


@FUZZ
@given(
    choice=st.builds(
        Choice,
        style=st.sampled_from(["gen", "obj"]),
        requested=st.sampled_from([[], ["chat"], ["chat", "json"]]),
        subprotocol=st.sampled_from([None, "chat", "json", "other"]),
        code=st.sampled_from([1000, 1001, 1004, 1005, 1006, 1015, 2999, 3000, 4999, 5000, 0, 999, 65536])
        | st.integers(0, 6000),
        reason=st.sampled_from(["", "bye"]) | st.text(max_size=130),
    )
)
@example(choice=Choice("gen", [], None, 1005, ""))
@example(choice=Choice("obj", [], None, 1000, "é" * 100))
@example(choice=Choice("gen", [], "chat", 1000, ""))
def test_handler_choices_stay_valid_on_the_wire(choice: Choice) -> None:
    """A close code that may not go on the wire (1004-1006, 1015, < 1000, >= 5000), a reason longer than the 123
    bytes a close frame holds, a subprotocol the client did not ask for: the app never sends them as they are
    (RFC 6455 sections 4.2.2, 5.5.1 and 7.4); it fixes or refuses them, and it still ends with a valid close."""
    wire, error = run_choice(choice)
    story = tell(wire.log)
    assert error is None, f"the app raised {error!r}" + story
    state = check_sent(wire.sent, True)
    assert state in ("closed", "denied"), f"ended without a close ({state})" + story
    for message in wire.sent:
        if message.get("type") == "websocket.accept":
            sub = message.get("subprotocol")
            assert sub is None or sub in choice.requested, "accepted a subprotocol the client did not offer" + story
    assert wire.hooks("on_close") == 1, "on_close count" + story
