"""The websocket connection: one state machine over ASGI ``receive``/``send``.

Theory of operation
-------------------
A connection moves CONNECTING -> OPEN -> CLOSED and never back. Only this module speaks ASGI websocket
messages; both handler styles (seed-000 async generators and the Emmett-style ``websocket`` object) are thin
adapters that hand a :class:`Session` to :meth:`Connection.serve`, which runs the whole lifecycle once:

1. ``on_connect(scope)`` decides (``ws_accept`` / ``ws_close`` / ``ws_deny``); without it a seed-000 handler
   is accepted before its body runs, an Emmett-style one by its first receive/send (``Session.accepts``).
2. The session body runs in the server's own task. When it returns, an open socket closes with 1000.
3. Whoever ends the connection, ``on_disconnect(scope)`` runs if the client closed it, then ``on_close(scope)``
   exactly once.

Transitions (nothing else may change ``state``):

==========  ====================================  ==========  ======================================
from        event                                 to          who closed
==========  ====================================  ==========  ======================================
CONNECTING  accept()                              OPEN
CONNECTING  close() / deny()                      CLOSED      server (HTTP 403 or the deny response)
CONNECTING  exception (crash())                   CLOSED      server (HTTP 500)
OPEN        close(code) / handler returns         CLOSED      server (close ``code``; 1000 on return)
OPEN        exception in the handler              CLOSED      server (1011)
OPEN        message too big / bad JSON            CLOSED      server (1009 / 1007)
OPEN        rate or read-ahead limit / idle       CLOSED      server (1008 / 1001; the handler is cancelled)
OPEN        server shutdown                       CLOSED      server (1001)
any         an event ASGI does not allow here     CLOSED      server (1011, logged)
any         ``websocket.disconnect`` / send fails CLOSED      client
==========  ====================================  ==========  ======================================

Disconnect watching. A handler that is waiting in :meth:`Connection.receive` learns of a departed client from
the server. One that only sends or sleeps would not, so a per-event-loop :class:`Watchdog` looks at every watched
connection each ``WATCH_PERIOD`` seconds: open ones, and Emmett-style ones whose body runs before the implicit
accept. A connection whose handler has not read since the previous look gets a reader task; if that reader gets
``websocket.disconnect`` the handler is cancelled (its ``finally`` runs), and if it gets a message the message is
read ahead for the next ``receive()`` and the reader goes on reading, so a departure is always seen. The read-ahead
is bounded: a message arriving while ``max_queue`` messages or ``max_read_ahead`` bytes wait unread closes the
connection with 1008 (the handler is cancelled), rather than buffering without bound or no longer looking.

Limits. The same looks keep the books of each connection: a token bucket of ``max_message_rate`` messages per
second (holding one second's worth; exceeded: close 1008) and, when ``idle_timeout`` is set, the time since the
last client message (exceeded: close 1001). The busy path pays one counter increment per message for both.
A limit that trips cancels the handler, whose task then closes with the limit's code (:meth:`Connection.serve`).

Sending never starves the event loop. A server whose ``send`` completes without suspending (granian, once the
client is gone; uvicorn, while its write buffer has room) would let a handler that sends in a loop keep the loop
from the watchdog, every other connection and shutdown. So every ``SENDS_PER_CHECK`` sends of the process, a send
looks whether the watchdog's tick is due and has not run (the loop had no turn for ``WATCH_PERIOD``); while so,
a task that keeps sending gives the loop a turn every ``STARVED_BURST`` sends (a short burst per wake-up, as a
broadcast's subscribers make, is let through). The busy path pays one ``next()`` of a C iterator per send
(``_turns``: True once every ``SENDS_PER_CHECK`` sends, and on every send while the loop is starved); a loop that
keeps its ticks never yields.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import weakref
from collections.abc import Awaitable, Iterator, Mapping
from types import AsyncGeneratorType
from typing import Any, NoReturn, Protocol

import msgspec

from .context import current_methods, current_websocket
from .datastructures import ScopeView
from .log import client_log
from .response import built as ws_send_built
from .response import check_close_code
from .types import Hook, Message, Receive, Request, Send

logger = logging.getLogger("scallion")

WATCH_PERIOD = 0.025
"""Seconds between two looks of the watchdog: a departed client is noticed within about twice this."""

SENDS_PER_CHECK = 256
"""Sends (by all connections of the process) between two checks that the event loop still gets its turns."""

STARVED_BURST = 8
"""While the loop is starved, the sends in a row a task may make before it yields: a subscriber sending the few
messages that queued up for it goes on; a loop that never suspends yields every few sends."""

POLICY_VIOLATION = 1008
"""The close code of a client over a limit: message rate, read-ahead."""
GOING_AWAY = 1001
"""The close code of server shutdown and of the idle timeout."""
INTERNAL_ERROR = 1011
"""The close code of a handler's exception after accept, and of a server that breaks the ASGI protocol."""

TRY_AGAIN_LATER = 1013
"""The close code of a handshake refused with 503 on a server without the denial response extension."""
SERVICE_RESTART = 1012
"""The close code uvicorn closes websockets with when it shuts down; never a client's."""
CLOSE_TIMEOUT = 1.0
"""Seconds to wait for the server to take a close frame; past that the peer is taken as gone."""


class State(enum.Enum):
    """Where a connection is in its life."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSED = "closed"


CONNECTING, OPEN, CLOSED = State.CONNECTING, State.OPEN, State.CLOSED


class WebSocketDisconnect(Exception):
    """The connection is over: the client left (``code`` as it sent it) or scallion closed it (1007, 1009)."""

    def __init__(self, code: int = 1005, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class InvalidMessage(ValueError):
    """A client message that is not valid JSON, or does not match the type asked for, received with
    ``on_error="raise"`` (or ``"yield"``): the connection stays open, so the handler can answer and go on.
    ``reason`` says what is wrong (msgspec's words, naming the field), ``data`` is the message as received."""

    def __init__(self, reason: str, data: str | bytes) -> None:
        super().__init__(reason)
        self.reason = reason
        self.data = data


ON_ERROR = ("close", "raise", "yield")
"""What a typed receive does with an invalid message: close 1007 (the default), raise :class:`InvalidMessage`, or
(only for the :meth:`Connection.json` iterator) yield the :class:`InvalidMessage` as an item."""


class WebSocketClosedError(RuntimeError):
    """Raised when sending on, or accepting, a connection that is already closed."""


class Session(Protocol):
    """What a handler style hands to :meth:`Connection.serve`: the hooks and the body."""

    name: str
    accepts: bool
    on_connect: Hook | None
    on_disconnect: Hook | None
    on_close: Hook | None

    def run(self, connection: Connection) -> Awaitable[None] | AsyncGeneratorType[Any, None]:
        """The handler body for an open (or, Emmett style, not yet accepted) connection: a coroutine to await
        or an async generator of messages to send."""
        ...


_json_encode = msgspec.json.Encoder().encode
_NORMAL = (1000, "")
_CLIENT_LEFT = _NORMAL  # the socket is already closed: close() after the cancellation does nothing


_refused_close_codes: set[int] = set()


def _warn_refused_close_code(code: int, exc: Exception) -> None:
    """Log once per code and process that the server refused to send close ``code`` (daphne)."""
    if code not in _refused_close_codes:
        _refused_close_codes.add(code)
        logger.warning(
            "the server refused to send close code %d (%s): closed with 1000 instead; daphne sends only 1000 and "
            "3000-4999 (docs/cli.md, Servers)",
            code,
            exc,
        )


def _fit_reason(reason: str) -> str:
    """``reason`` cut to the 123 bytes of UTF-8 a close frame has room for."""
    encoded = reason.encode("utf-8", "replace")
    return reason if len(encoded) <= 123 else encoded[:123].decode("utf-8", "ignore")


def _size(message: Message) -> int:
    """The length of a client event's data (0 for events without any)."""
    data = message.get("text")
    if data is None:
        data = message.get("bytes")
    try:
        return len(data) if data is not None else 0
    except TypeError:
        return 0


def _is_send(message: Any) -> bool:
    """True for a valid ``websocket.send`` dict (one ``str`` text or ``bytes`` bytes)."""
    return (
        type(message) is dict
        and message.get("type") == "websocket.send"
        and (type(message.get("text")) is str or type(message.get("bytes")) is bytes)
    )


def departed(exc: BaseException) -> bool:
    """Whether a server's ``send`` failed because the client is gone: an ``OSError``, as ASGI asks (uvicorn's
    ``ClientDisconnected``), or daphne's ``autobahn.exception.Disconnected``, a ``RuntimeError`` it raises for a
    message sent after the client's close frame came in and before it tells the app ``websocket.disconnect``."""
    if isinstance(exc, OSError):
        return True
    kind = type(exc)
    return kind.__name__ == "Disconnected" and kind.__module__.startswith("autobahn.")


def _not_a_message(name: str, value: Any) -> TypeError:
    return TypeError(
        f"websocket handler {name} yielded {value!r}; yield ws_send(str | bytes) or ws_close(code) "
        '(a dict {"type": "websocket.send", "text": str} or {"type": "websocket.send", "bytes": bytes})'
    )


async def call_hook(hook: Hook, scope: Request) -> Any:
    """Call a hook that may be a plain function or a coroutine function."""
    result = hook(scope)
    if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
        return await result
    return result


def encode_headers(headers: dict[str, str] | None) -> list[tuple[bytes, bytes]]:
    """``{"Name": "value"}`` -> ASGI ``[(b"name", b"value")]``."""
    if not headers:
        return []
    return [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in headers.items()]


class Watchdog:
    """Looks at the open connections of one event loop every ``WATCH_PERIOD`` seconds."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.connections: set[Connection] = set()
        """The connections looked at on each tick."""
        self.parked: set[Connection] = set()
        """Watched connections with nothing to look at until their reader gets an event (see :meth:`park`)."""
        self.timer: asyncio.TimerHandle | None = None
        self.last = loop.time()
        """When the previous look was (loop time)."""

    def add(self, connection: Connection) -> None:
        """Watch ``connection`` until :meth:`discard`."""
        self.connections.add(connection)
        if self.timer is None:
            self.last = self.loop.time()
            self.timer = self.loop.call_later(WATCH_PERIOD, self.tick)

    def discard(self, connection: Connection) -> None:
        """Stop watching ``connection``."""
        self.connections.discard(connection)
        self.parked.discard(connection)

    def park(self, connection: Connection) -> None:
        """Skip ``connection`` on the next ticks: its watchdog reader is out (so a departure or a message wakes
        it: :meth:`unpark`) and its limits' books need no time (no message came, its rate bucket is full, no
        idle timeout). An idle socket then costs a tick nothing, however many there are."""
        self.connections.discard(connection)
        self.parked.add(connection)

    def unpark(self, connection: Connection) -> None:
        """Look at ``connection`` again from the next tick (its reader got an event)."""
        if connection in self.parked:
            self.parked.discard(connection)
            self.connections.add(connection)

    def tick(self) -> None:
        """One look at every connection; the timer stops when there is nothing to watch (the ticks go on while
        connections are parked: sends rely on them to know the loop gets its turns)."""
        if not self.connections and not self.parked:
            self.timer = None
            return
        _loop_had_a_turn()
        now = self.loop.time()
        elapsed, self.last = now - self.last, now
        for connection in list(self.connections):  # a look may end a connection
            connection.look(elapsed)
        self.timer = self.loop.call_later(WATCH_PERIOD, self.tick)


_watchdogs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Watchdog] = weakref.WeakKeyDictionary()


_CHECKS: Iterator[bool] = itertools.cycle((False,) * (SENDS_PER_CHECK - 1) + (True,))
"""True once every ``SENDS_PER_CHECK`` values: the sends that look whether the loop still gets its turns."""
_STARVED: Iterator[bool] = itertools.repeat(True)
"""True on every value: while the loop is starved, every send looks."""
_turns = _CHECKS
"""``next(_turns)`` after every send of the process: True when the send must look (:func:`_starved`). The shared
counter of sends, stepped by one C call: cheaper than incrementing and comparing a Python attribute."""
_last_sender: asyncio.Task[Any] | None = None
"""Once the loop is starved, the task that sent last."""
_burst = 0
"""Once the loop is starved, how many sends in a row ``_last_sender`` has made."""


def _loop_had_a_turn() -> None:
    """The watchdog's tick ran (or is not due): sends look again only every ``SENDS_PER_CHECK``."""
    global _turns, _last_sender, _burst
    _turns, _last_sender, _burst = _CHECKS, None, 0


def _starved(dog: Watchdog | None) -> bool:
    """Called every ``SENDS_PER_CHECK`` sends: whether the sending task should yield to the event loop because
    the watchdog's tick is overdue.

    While it is overdue (every send asks until the tick runs), the loop is still running the same iteration, in
    which each task is stepped once: a task that sends again and again has been sending without suspending, and
    yields every ``STARVED_BURST`` sends. A broadcast's subscribers, each woken for the few sends queued for it,
    go on: yielding them would only put them back in the queue (measured: 0.69 -> 0.87 of raw on uvicorn when
    each yielded from its second send on)."""
    global _turns, _last_sender
    if dog is None:
        return True
    if dog.timer is not None and dog.loop.time() < dog.last + WATCH_PERIOD:
        _loop_had_a_turn()  # the loop keeps its ticks: sends may go on
        return False
    _turns = _STARVED  # every send asks until the tick runs
    global _burst
    task = asyncio.current_task(dog.loop)
    if _last_sender is not task:
        _last_sender, _burst = task, 1
        return False
    _burst += 1
    if _burst < STARVED_BURST:
        return False  # a short burst: e.g. a subscriber sending the few messages that queued up for it
    _burst = 0
    return True  # starved by this very task, sending in a loop: it yields until the tick has run


def _watchdog() -> Watchdog:
    loop = asyncio.get_running_loop()
    dog = _watchdogs.get(loop)
    if dog is None:
        dog = _watchdogs[loop] = Watchdog(loop)
    return dog


class Connection(ScopeView):
    """One websocket connection: the state machine, its I/O, and its lifecycle.

    ``scope`` is the request dict (the ASGI scope enriched by middlewares). All public methods keep the
    state machine consistent: sending after close raises :class:`WebSocketClosedError`, closing twice is
    harmless, receiving after the client left raises :class:`WebSocketDisconnect`.
    """

    def __init__(
        self,
        scope: Request,
        receive: Receive,
        send: Send,
        *,
        max_message_size: int = 1024 * 1024,
        max_queue: int = 64,
        max_read_ahead: int = 1024 * 1024,
        max_message_rate: float | None = 1000.0,
        idle_timeout: float | None = None,
    ) -> None:
        self.scope = scope
        self.state = CONNECTING
        self.max_message_size = max_message_size
        self.max_queue = max_queue
        self.max_read_ahead = max_read_ahead
        self.max_message_rate = max_message_rate
        self.idle_timeout = idle_timeout
        self.close_code: int | None = None
        """The close code, once closed (by either side)."""
        self.close_reason = ""
        self.client_closed = False
        """True when the client ended the connection (``on_disconnect`` runs)."""
        self.subprotocol: str | None = None
        """The subprotocol chosen at accept."""
        self._receive = receive
        self._send = send
        self._buffer: list[Message] = []  # read ahead by the watchdog; at most max_queue, so a list will do
        self._buffered = 0
        """Bytes of the client messages in ``_buffer``."""
        self._received = 0
        """Client events received since the watchdog's previous look (rate and idle limits, idle handler)."""
        self._tokens = max_message_rate or 0.0
        self._quiet = 0.0
        """Seconds since the last client message, as of the last look."""
        self._direct = False
        """True while receive() may await the server directly: open, nothing read ahead, no reader task, and
        no receive in progress."""
        self._waiting = False
        """True while receive() may await the server directly: open, nothing read ahead, no reader task."""
        self._reader: asyncio.Future[Message] | None = None
        self._task: asyncio.Task[Any] | None = None
        self._in_body = False
        self._cancelled_for: tuple[int, str] | None = None
        """The close (code, reason) the handler was cancelled for: a departure, shutdown, a limit."""
        self._watchdog: Watchdog | None = None

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client asked for, in its order of preference."""
        return list(self.scope.get("subprotocols") or ())

    # -- handshake ------------------------------------------------------------------------------------
    async def start(self) -> bool:
        """Receive ``websocket.connect``; False if the client is already gone."""
        message = await self._receive()
        kind = message.get("type")
        if kind == "websocket.connect":
            return True
        if kind == "websocket.disconnect":
            self._client_gone(message)
        else:
            await self._broken_server(message)
        return False

    async def accept(self, subprotocol: str | None = None, headers: dict[str, str] | None = None) -> None:
        """Complete the handshake; a second call on an open connection does nothing. ``subprotocol`` must be one the
        client offered (``subprotocols``): a ``ValueError`` otherwise, as browsers refuse any other."""
        if self.state is not CONNECTING:
            if self.state is OPEN:
                return
            raise WebSocketClosedError(f"cannot accept: the websocket is closed ({self.close_code})")
        if subprotocol is not None and subprotocol not in (offered := self.subprotocols):
            raise ValueError(
                f"cannot accept with subprotocol {subprotocol!r}: the client offered "
                f"{', '.join(map(repr, offered)) if offered else 'none'}; choose one of them or None"
            )
        message: dict[str, Any] = {"type": "websocket.accept", "subprotocol": subprotocol}
        if headers:
            message["headers"] = encode_headers(headers)
        try:
            await self._send(message)
        except OSError as exc:  # the client left during the handshake (uvicorn: ClientDisconnected)
            self._client_gone({"code": 1006})
            raise WebSocketDisconnect(1006, "connection lost") from exc
        if self.state is not CONNECTING:  # a watchdog reader saw the client leave meanwhile
            raise WebSocketDisconnect(self.close_code or 1006, self.close_reason)
        self.state = OPEN
        self._direct = self._reader is None and not self._buffer and not self._waiting
        self.subprotocol = subprotocol
        self._watch()

    def _watch(self) -> None:
        if self._watchdog is None:
            self._watchdog = _watchdog()
            self._watchdog.add(self)

    async def deny(self, status: int = 403, body: bytes | str = b"", headers: dict[str, str] | None = None) -> None:
        """Refuse the handshake with an HTTP response (or a plain 403 where the server lacks the extension)."""
        if self.state is not CONNECTING:
            raise WebSocketClosedError("deny() is only possible before the websocket is accepted")
        self.state = CLOSED
        self._direct = False
        self.close_code = status
        payload = body.encode() if isinstance(body, str) else body
        try:
            if "websocket.http.response" in (self.scope.get("extensions") or {}):
                raw = encode_headers(headers)
                if payload and not any(k == b"content-type" for k, _ in raw):
                    raw.append((b"content-type", b"text/plain; charset=utf-8"))
                raw.append((b"content-length", str(len(payload)).encode()))
                await self._send({"type": "websocket.http.response.start", "status": status, "headers": raw})
                await self._send({"type": "websocket.http.response.body", "body": payload})
            elif status == 503:  # "come back later" survives without the extension as close 1013 (try again later)
                await self._send({"type": "websocket.accept"})
                reason = _fit_reason(payload.decode("utf-8", "replace"))
                await self._send({"type": "websocket.close", "code": TRY_AGAIN_LATER, "reason": reason})
            else:
                await self._send({"type": "websocket.close", "code": 1000})
        except OSError:
            self.client_closed = True  # the client left during the handshake; nobody is there to refuse

    # -- receiving ------------------------------------------------------------------------------------
    # receive() and __anext__() share everything but the exception that ends them; each keeps the hot path
    # (await the server directly) inline, because one more coroutine frame per message costs more than
    # scallion's whole per-message budget. ``_direct`` is False while that hot path awaits the server, so
    # the watchdog leaves a reading connection alone; ``_received`` tells it whether a message came since.
    async def receive(self) -> str | bytes:
        """The next client message (``str`` or ``bytes``); raises :class:`WebSocketDisconnect` when the
        connection is over (the client left, or scallion closed it)."""
        if self._direct:
            self._direct = False
            try:
                message = await self._receive()
            except BaseException:
                self._direct = self.state is OPEN
                raise
            self._direct = True
            self._received += 1
        else:
            message = await self._next_message()
        if message["type"] == "websocket.receive":
            data = message.get("text")
            if data is None:
                data = message.get("bytes")
                if type(data) is not bytes:
                    data = await self._odd_data(message)
            if len(data) <= self.max_message_size:
                return data
            await self._too_big(data)
        raise await self._ended(message, WebSocketDisconnect)

    def __aiter__(self) -> Connection:
        return self

    async def __anext__(self) -> str | bytes:
        """``async for message in connection`` ends when the connection is over."""
        if self._direct:
            self._direct = False
            try:
                message = await self._receive()
            except BaseException:
                self._direct = self.state is OPEN
                raise
            self._direct = True
            self._received += 1
        else:
            message = await self._next_message()
        if message["type"] == "websocket.receive":
            data = message.get("text")
            if data is None:
                data = message.get("bytes")
                if type(data) is not bytes:
                    data = await self._odd_data(message)
            if len(data) <= self.max_message_size:
                return data
            await self._too_big(data)
        raise await self._ended(message, StopAsyncIteration)

    async def _next_message(self) -> Message:
        """The slow path of receiving: read-ahead messages, a watchdog reader, implicit accept, closed."""
        if self._waiting or (self.state is OPEN and not self._buffer and self._reader is None):
            raise RuntimeError("receive() is already being awaited on this websocket")
        if self._buffer:
            message = self._buffer.pop(0)
            self._buffered -= _size(message)
        elif self.state is CLOSED:
            return {"type": "websocket.disconnect", "code": self.close_code or 1005}
        else:
            if self.state is CONNECTING:
                await self.accept()
            reader = self._reader
            self._reader = None  # a pending watchdog reader is now ours: its callback leaves it alone
            self._direct = False
            self._waiting = True
            try:
                message = await (asyncio.shield(reader) if reader is not None else self._receive())
            except asyncio.CancelledError:  # e.g. wait_for(receive(), timeout): nothing is lost, nothing unwatched
                if reader is not None:
                    self._reader = reader  # the watchdog's reader again: it reads on, for the next receive()
                    if reader.done():
                        self._on_read(reader)  # its callback found it taken: read its event ahead now
                self._direct = self.state is OPEN and not self._buffer and self._reader is None
                raise
            finally:
                self._waiting = False
            self._received += 1
        self._direct = self.state is OPEN and not self._buffer and self._reader is None
        return message

    async def _odd_data(self, message: Message) -> str | bytes:
        """The data of a ``websocket.receive`` with neither a ``str`` text nor a ``bytes`` bytes: a subclass or
        a bytes-like value is taken as such; anything else breaks the ASGI protocol (close 1011)."""
        data = message.get("bytes")
        text = message.get("text")
        if isinstance(text, str):
            return str(text)
        if isinstance(data, (bytearray, memoryview)) and text is None:
            return bytes(data)
        await self._broken_server(message)
        raise WebSocketDisconnect(INTERNAL_ERROR, "server protocol error")

    async def _too_big(self, data: str | bytes) -> NoReturn:
        await self.fail(1009, f"message of {len(data)} exceeds max_message_size {self.max_message_size}")

    async def _ended(self, message: Message, kind: type[Exception]) -> Exception:
        """The exception that ends a receive that got ``message`` rather than client data."""
        self._direct = False
        if message.get("type") == "websocket.disconnect":
            self._client_gone(message)
        elif self.state is not CLOSED:
            await self._broken_server(message)
        if kind is StopAsyncIteration:
            return StopAsyncIteration()
        return WebSocketDisconnect(self.close_code or 1005, self.close_reason)

    async def _broken_server(self, message: Message) -> None:
        """The server sent an event the ASGI websocket protocol does not allow here: log it, close with 1011."""
        logger.error(
            "websocket %s: the server sent %.200r, which is not a valid ASGI websocket event here; closing with 1011",
            self.scope.get("path"),
            message,
        )
        await self.close(INTERNAL_ERROR, "server protocol error")

    async def receive_json(self, type: Any = Any, on_error: str = "close") -> Any:
        """The next message decoded as JSON, validated against ``type`` (any msgspec type: a ``Struct``, a
        ``TypedDict``, ``list[int]``...). A message that is not valid JSON or not a ``type`` closes with 1007
        (``on_error="close"``, the default) or raises :class:`InvalidMessage` (``on_error="raise"``), keeping the
        connection open."""
        if on_error != "close" and on_error != "raise":
            raise ValueError(f'receive_json(on_error=...) takes "close" or "raise", not {on_error!r}')
        data = await self.receive()
        try:
            return msgspec.json.decode(data, type=type)
        except msgspec.ValidationError as exc:  # valid JSON, not a `type`
            reason = f"invalid message: {exc}"
        except msgspec.DecodeError as exc:
            reason = f"invalid JSON: {exc}"
        except RecursionError:
            reason = "invalid JSON: nested too deeply"
        if on_error == "raise":
            raise InvalidMessage(reason, data)
        await self.fail(1007, reason)

    def json(self, type: Any = Any, on_error: str = "close") -> JSONMessages:
        """The client's messages decoded as JSON (validated against ``type``), as an async iterator that ends when
        the connection does: ``async for say in receiver.json(Say)``, or ``merge(receiver.json(Say), subscription)``.
        An invalid message closes with 1007 (``"close"``), raises :class:`InvalidMessage` (``"raise"``, which ends
        an ``async for``) or is yielded as an :class:`InvalidMessage` item (``"yield"``), the loop going on."""
        if on_error not in ON_ERROR:
            raise ValueError(f"json(on_error=...) takes one of {', '.join(map(repr, ON_ERROR))}, not {on_error!r}")
        return JSONMessages(self, type, on_error)

    # -- sending --------------------------------------------------------------------------------------
    async def send(self, data: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message, accepting first if needed."""
        if data.__class__ is str:
            message: dict[str, Any] = {"type": "websocket.send", "text": data}
        elif isinstance(data, (bytes, bytearray, memoryview)):
            message = {"type": "websocket.send", "bytes": bytes(data)}
        elif isinstance(data, str):
            message = {"type": "websocket.send", "text": str(data)}
        else:
            raise TypeError(f"websocket send takes str or bytes, not {type(data).__name__}")
        if self.state is not OPEN:
            if self.state is CONNECTING:
                await self.accept()
            else:
                self._not_open()
        try:
            await self._send(message)
        except Exception as exc:  # the server saw the client go (uvicorn: ClientDisconnected; daphne)
            if not departed(exc):
                raise
            self._client_gone({"code": 1006})
            raise WebSocketDisconnect(1006, "connection lost") from exc
        if next(_turns) and _starved(self._watchdog):
            await asyncio.sleep(0)  # the loop gets its turns (module docstring)

    async def send_json(self, data: Any) -> None:
        """Send ``data`` encoded as JSON (msgspec) in a text message."""
        await self.send(_json_encode(data).decode())

    def _not_open(self) -> None:
        if self.state is CONNECTING:
            raise WebSocketClosedError("cannot send before the websocket is accepted")
        if self.client_closed:
            raise WebSocketDisconnect(self.close_code or 1005, self.close_reason)
        raise WebSocketClosedError(f"cannot send: the websocket was closed with {self.close_code}")

    # -- closing --------------------------------------------------------------------------------------
    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code``; before accept the client gets HTTP 403. A second call does nothing. A code that may
        not be sent (1004-1006, 1015, outside 1000-4999...) is a ``ValueError``."""
        check_close_code(code)
        if self.state is CLOSED:
            return
        was = self.state
        self.state = CLOSED
        self._direct = False
        self.close_code = code if was is OPEN else 403
        self.close_reason = reason
        message: dict[str, Any] = {"type": "websocket.close", "code": code}
        if reason:
            message["reason"] = self.close_reason = _fit_reason(reason)
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):  # granian never completes a send to a vanished peer
                await self._send(message)
        except (OSError, TimeoutError):
            pass  # the client is already gone
        except Exception as exc:  # daphne sends only 1000 and 3000-4999 ("invalid close code 1001 ...")
            if departed(exc):
                return  # the client is already gone (daphne)
            if was is not OPEN or code == 1000 or 3000 <= code <= 4999:
                raise
            _warn_refused_close_code(code, exc)
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await self._send({"type": "websocket.close", "code": 1000})
            except (OSError, TimeoutError):
                pass

    async def crash(self) -> None:
        """End the connection because of a server-side error: close 1011 after accept; before accept, answer the
        handshake with HTTP 500 (a close, which the client sees as 403, where the server lacks the extension)."""
        if self.state is CONNECTING:
            await self.deny(500, "Internal Server Error")
        else:
            await self.close(INTERNAL_ERROR, "internal error")

    async def fail(self, code: int, reason: str) -> NoReturn:
        """Close with ``code`` because of bad client input, then raise :class:`WebSocketDisconnect`."""
        client_log.info(self.scope, self, "closing websocket %s with %d: %s", self.scope.get("path"), code, reason)
        await self.close(code, reason)
        raise WebSocketDisconnect(code, reason)

    def _client_gone(self, message: Message) -> None:
        if self.state is CLOSED:
            return  # scallion closed first: this ends the closing handshake, and the handler goes on to its end
        self.state = CLOSED
        self._direct = False
        code = message.get("code", 1005)
        self.close_code = code if type(code) is int else 1005
        # 1012 (service restart) is what a server sends when it shuts down (uvicorn): not the client's doing
        self.client_closed = self.close_code != SERVICE_RESTART
        reason = message.get("reason")
        self.close_reason = reason if isinstance(reason, str) else ""
        if self._in_body and self._task is not asyncio.current_task():
            self._cancel(_CLIENT_LEFT)

    def _cancel(self, why: tuple[int, str]) -> None:
        """Cancel the handler's task; :meth:`serve` then closes with ``why`` (code, reason)."""
        if self._in_body and self._cancelled_for is None and self._task is not None:
            self._cancelled_for = why
            self._task.cancel()

    def shutdown(self) -> None:
        """Ask the handler to stop because the server is shutting down; the client then gets 1001 (HTTP 403 if the
        handshake was not accepted yet). A connection whose handler has not started yet is stopped as it starts."""
        if self._task is None:
            self._cancelled_for = (GOING_AWAY, "server shutting down")
        self._cancel((GOING_AWAY, "server shutting down"))

    def _limit(self, code: int, reason: str) -> None:
        """A limit tripped (rate, read-ahead, size, idle) or the server broke the protocol: the handler is
        cancelled and the connection closes with ``code``."""
        if self._cancelled_for is None and self.state is not CLOSED and self._in_body:
            if code == INTERNAL_ERROR:  # the server broke the protocol: a bug on the server side
                logger.error("closing websocket %s with %d: %s", self.scope.get("path"), code, reason)
            else:  # the client's doing: INFO, rate-limited
                client_log.info(
                    self.scope, self, "closing websocket %s with %d: %s", self.scope.get("path"), code, reason
                )
            self._cancel((code, reason))

    # -- disconnect watching --------------------------------------------------------------------------
    def look(self, elapsed: float) -> None:
        """Called by the watchdog every ``WATCH_PERIOD`` (``elapsed`` seconds since its previous look): keep the
        books of the rate and idle limits, and start a reader if the handler has not read since the last look."""
        arrived = self._received
        if arrived:
            self._received = 0  # small ints are not allocated: keep the counter low
            self._quiet = 0.0
        else:
            self._quiet += elapsed
        rate = self.max_message_rate
        if rate is not None:
            self._tokens = min(rate, self._tokens + elapsed * rate) - arrived
            if self._tokens < 0:
                return self._limit(POLICY_VIOLATION, f"more than {rate:g} messages per second")
        if self.idle_timeout is not None and self._quiet >= self.idle_timeout:
            return self._limit(GOING_AWAY, f"no message for {self.idle_timeout:g} s")
        if self.state is OPEN:
            if not self._direct:  # a receive is in progress, a reader is out or messages wait
                if (
                    self._reader is not None
                    and not arrived
                    and self.idle_timeout is None
                    and (rate is None or self._tokens >= rate)
                    and self._watchdog is not None
                ):
                    self._watchdog.park(self)  # nothing to look at until the reader gets an event
                return
        elif not (self.state is CONNECTING and self._in_body and self._reader is None and not self._waiting):
            return  # closed, or not yet running a body that could miss a departure
        if arrived:
            return  # the handler read since the previous look
        self._start_reader()

    def _start_reader(self) -> None:
        self._direct = False
        reader = self._reader = asyncio.ensure_future(self._receive())
        reader.add_done_callback(self._on_read)

    def _on_read(self, reader: asyncio.Future[Message]) -> None:
        """A watchdog reader's event: read it ahead (and read on), or learn that the client left."""
        if self._watchdog is not None:
            self._watchdog.unpark(self)  # whoever took the reader, the books change: look again
        if reader is not self._reader or reader.cancelled():
            return  # receive() took this reader and its result
        self._reader = None
        if reader.exception() is not None:
            self._buffer.append({"type": "websocket.disconnect", "code": 1006})
            self._client_gone({"code": 1006})
            return
        message = reader.result()
        self._received += 1
        kind = message.get("type") if isinstance(message, Mapping) else None
        if kind == "websocket.disconnect":
            self._buffer.append(message)
            self._client_gone(message)
        elif kind != "websocket.receive" or self.state is CONNECTING:
            logger.error(
                "websocket %s: the server sent %.200r, which is not a valid ASGI websocket event here",
                self.scope.get("path"),
                message,
            )
            self._limit(INTERNAL_ERROR, "server protocol error")
        elif (size := _size(message)) > self.max_message_size:
            self._limit(1009, f"message of {size} exceeds max_message_size {self.max_message_size}")
        elif len(self._buffer) >= self.max_queue or self._buffered >= self.max_read_ahead:
            self._limit(
                POLICY_VIOLATION,
                f"read-ahead full ({len(self._buffer)} messages, {self._buffered} bytes): the handler is not reading",
            )
        else:
            self._buffer.append(message)
            self._buffered += size
            if self._cancelled_for is None and self.state is not CLOSED:
                self._start_reader()

    # -- lifecycle ------------------------------------------------------------------------------------
    async def serve(self, session: Session) -> None:
        """Run the whole lifecycle of ``session`` on this connection; the one place it is written.

        ``session.run(connection)`` gives the body: a coroutine (Emmett style, plain seed-000 coroutines) that is
        awaited, or an async generator (seed 000) whose yields are sent: ``ws_send`` messages go out as they
        are, ``ws_close`` closes and ends the generator, anything else is a ``TypeError`` naming the handler.
        The generator is always closed, so its ``finally`` runs."""
        built = ws_send_built
        self._task = asyncio.current_task()
        if self._cancelled_for is not None:  # shut down before it started
            await self.close(*self._cancelled_for)
            return await self._end(session)
        send = self._send
        current_websocket.set(self)  # the `websocket` object, in hooks and handler alike
        methods = (self.send, self.receive, self.send_json, self.receive_json)
        for var, method in zip(current_methods, methods, strict=True):
            var.set(method)
        scope = self.scope
        foreign_cancel: asyncio.CancelledError | None = None
        try:
            self._in_body = True  # from here on, a departure, shutdown or limit cancels this task
            if session.on_connect is not None:
                await self._decide(await call_hook(session.on_connect, scope), session)
            if self.state is CONNECTING and session.accepts:
                await self.accept()
            if self.state is not CLOSED:
                if self.state is CONNECTING:
                    self._watch()  # a body that runs before its implicit accept must not miss a departure
                try:
                    body = session.run(self)
                    if type(body) is not AsyncGeneratorType:
                        await body
                    else:  # the seed-000 driver, inline: a helper coroutine would cost on every message
                        try:
                            async for message in body:
                                # ws_send's own dict was checked when it was built: only others are checked here
                                if message is not built.message and not _is_send(message):
                                    if type(message) is dict and message.get("type") == "websocket.close":
                                        await self.close(message.get("code", 1000), message.get("reason", ""))
                                        break  # nothing is sent after ws_close: the generator is closed below
                                    raise _not_a_message(session.name, message)
                                if self.state is not OPEN:
                                    self._not_open()
                                try:
                                    await send(message)
                                except Exception as exc:  # the server saw the client go (uvicorn, daphne)
                                    if not departed(exc):
                                        raise
                                    self._client_gone({"code": 1006})
                                    raise WebSocketDisconnect(1006, "connection lost") from exc
                                if next(_turns) and _starved(self._watchdog):
                                    await asyncio.sleep(0)  # the loop gets its turns (module docstring)
                        finally:
                            await body.aclose()
                finally:
                    self._in_body = False
                await self.close(*(self._cancelled_for or _NORMAL))  # a handler may swallow its cancellation
        except WebSocketDisconnect:
            await self.close(*(self._cancelled_for or _NORMAL))
        except asyncio.CancelledError as exc:
            task = self._task
            if self._cancelled_for is not None:
                if task is not None:
                    task.uncancel()
                await self.close(*self._cancelled_for)
            elif task is not None and task.cancelling():
                foreign_cancel = exc  # the server cancels this task: close, then let it end
                await self.close(GOING_AWAY)
            else:  # the handler raised CancelledError itself (say, awaiting a task that was cancelled)
                logger.exception("websocket handler %s failed: it raised CancelledError", session.name)
                await self.crash()
        except Exception:
            logger.exception("websocket handler %s failed", session.name)
            await self.crash()
        finally:
            await self._end(session)
        if foreign_cancel is not None:
            raise foreign_cancel

    async def _decide(self, decision: Any, session: Session) -> None:
        kind = decision.get("type") if isinstance(decision, dict) else None
        if kind == "websocket.accept":
            await self.accept(decision.get("subprotocol"), decision.get("headers"))
        elif kind == "websocket.close":
            await self.close(decision.get("code", 1000), decision.get("reason", ""))
        elif kind == "websocket.http.response":
            await self.deny(decision.get("status", 403), decision.get("body", b""), decision.get("headers"))
        else:
            raise TypeError(
                f"on_connect of {session.name} returned {decision!r}; return ws_accept(), ws_close() or ws_deny()"
            )

    async def _end(self, session: Session) -> None:
        if self._watchdog is not None:
            self._watchdog.discard(self)
        if self._reader is not None:
            self._reader.cancel()
        if self.client_closed and session.on_disconnect is not None:
            await self._run_hook(session.on_disconnect, session)
        if session.on_close is not None:
            await self._run_hook(session.on_close, session)

    async def _run_hook(self, hook: Hook, session: Session) -> None:
        try:
            await call_hook(hook, self.scope)
        except Exception:
            logger.exception("websocket hook %s of %s failed", getattr(hook, "__qualname__", hook), session.name)


class JSONMessages:
    """``connection.json(type, on_error)``: the client's messages decoded and validated, until the connection ends."""

    def __init__(self, connection: Connection, type: Any, on_error: str) -> None:
        self.connection = connection
        self.type = type
        self.on_error = on_error

    def __aiter__(self) -> JSONMessages:
        return self

    async def __anext__(self) -> Any:
        on_error = self.on_error
        try:
            return await self.connection.receive_json(self.type, "close" if on_error == "close" else "raise")
        except WebSocketDisconnect:
            raise StopAsyncIteration from None
        except InvalidMessage as invalid:
            if on_error == "yield":
                return invalid
            raise
