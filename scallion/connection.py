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

==========  ==============================  ==========  ======================================
from        event                           to          who closed
==========  ==============================  ==========  ======================================
CONNECTING  accept()                        OPEN
CONNECTING  close() / deny() / exception    CLOSED      server (the client sees HTTP 403 or the deny response)
OPEN        close(code) / handler returns   CLOSED      server (close ``code``; 1000 on return)
OPEN        exception in the handler        CLOSED      server (1011)
OPEN        message too big / bad JSON      CLOSED      server (1009 / 1007)
OPEN        server shutdown                 CLOSED      server (1001)
any         ``websocket.disconnect`` / send fails  CLOSED  client
==========  ==============================  ==========  ======================================

Disconnect watching. A handler that is waiting in :meth:`Connection.receive` learns of a departed client from
the server. One that only sends or sleeps would not, so a per-event-loop :class:`Watchdog` looks at every open
connection each ``WATCH_PERIOD`` seconds. A connection whose handler has not read since the previous look
gets a one-shot reader task; if that reader gets ``websocket.disconnect`` the handler is cancelled (its
``finally`` runs), and if it gets a message the message is buffered for the next ``receive()``, up to
``max_queue`` messages, after which scallion stops reading and the server's own flow control pushes back.
The busy path (a handler that keeps reading) costs two attribute stores per message and no task hop.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import weakref
from collections.abc import Awaitable
from types import AsyncGeneratorType
from typing import Any, NoReturn, Protocol

import msgspec

from .context import current_websocket
from .datastructures import ScopeView
from .types import Hook, Message, Receive, Request, Send

logger = logging.getLogger("scallion")

WATCH_PERIOD = 0.025
"""Seconds between two looks of the watchdog: a departed client is noticed within about twice this."""

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
_SHUTDOWN = "shutdown"
_CLIENT_LEFT = "client left"


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
        self.timer: asyncio.TimerHandle | None = None

    def add(self, connection: Connection) -> None:
        """Watch ``connection`` until :meth:`discard`."""
        self.connections.add(connection)
        if self.timer is None:
            self.timer = self.loop.call_later(WATCH_PERIOD, self.tick)

    def discard(self, connection: Connection) -> None:
        """Stop watching ``connection``."""
        self.connections.discard(connection)

    def tick(self) -> None:
        """One look at every connection; the timer stops when there is nothing to watch."""
        if not self.connections:
            self.timer = None
            return
        for connection in self.connections:
            connection.look()
        self.timer = self.loop.call_later(WATCH_PERIOD, self.tick)


_watchdogs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Watchdog] = weakref.WeakKeyDictionary()


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
        max_queue: int = 16,
    ) -> None:
        self.scope = scope
        self.state = CONNECTING
        self.max_message_size = max_message_size
        self.max_queue = max_queue
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
        self._direct = False
        """True while receive() may await the server directly: open, nothing read ahead, no reader task, and
        no receive in progress."""
        self._looked = False
        """Set by the watchdog, cleared by every receive: still True at the next look means an idle handler."""
        self._waiting = False
        """True while receive() may await the server directly: open, nothing read ahead, no reader task."""
        self._reader: asyncio.Future[Message] | None = None
        self._task: asyncio.Task[Any] | None = None
        self._in_body = False
        self._cancelled_for: str | None = None
        self._watchdog: Watchdog | None = None

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client asked for, in its order of preference."""
        return list(self.scope.get("subprotocols") or ())

    # -- handshake ------------------------------------------------------------------------------------
    async def start(self) -> bool:
        """Receive ``websocket.connect``; False if the client is already gone."""
        message = await self._receive()
        if message["type"] == "websocket.connect":
            return True
        self._client_gone(message)
        return False

    async def accept(self, subprotocol: str | None = None, headers: dict[str, str] | None = None) -> None:
        """Complete the handshake; a second call on an open connection does nothing."""
        if self.state is not CONNECTING:
            if self.state is OPEN:
                return
            raise WebSocketClosedError(f"cannot accept: the websocket is closed ({self.close_code})")
        message: dict[str, Any] = {"type": "websocket.accept", "subprotocol": subprotocol}
        if headers:
            message["headers"] = encode_headers(headers)
        await self._send(message)
        self.state = OPEN
        self._direct = True
        self.subprotocol = subprotocol
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
        if "websocket.http.response" in (self.scope.get("extensions") or {}):
            raw = encode_headers(headers)
            if payload and not any(k == b"content-type" for k, _ in raw):
                raw.append((b"content-type", b"text/plain; charset=utf-8"))
            raw.append((b"content-length", str(len(payload)).encode()))
            await self._send({"type": "websocket.http.response.start", "status": status, "headers": raw})
            await self._send({"type": "websocket.http.response.body", "body": payload})
        else:
            await self._send({"type": "websocket.close", "code": 1000})

    # -- receiving ------------------------------------------------------------------------------------
    # receive() and __anext__() share everything but the exception that ends them; each keeps the hot path
    # (await the server directly) inline, because one more coroutine frame per message costs more than
    # scallion's whole per-message budget. ``_direct`` is False while that hot path awaits the server, so
    # the watchdog leaves a reading connection alone; ``_looked`` tells it whether a message came since.
    async def receive(self) -> str | bytes:
        """The next client message (``str`` or ``bytes``); raises :class:`WebSocketDisconnect` when the
        connection is over (the client left, or scallion closed it)."""
        if self._direct:
            self._direct = self._looked = False
            try:
                message = await self._receive()
            except BaseException:
                self._direct = self.state is OPEN
                raise
            self._direct = True
        else:
            message = await self._next_message()
        if message["type"] == "websocket.receive":
            data = message.get("text")
            if data is None:
                data = self._binary(message)
            if len(data) <= self.max_message_size:
                return data
            await self._too_big(data)
        raise self._ended(message, WebSocketDisconnect)

    def __aiter__(self) -> Connection:
        return self

    async def __anext__(self) -> str | bytes:
        """``async for message in connection`` ends when the connection is over."""
        if self._direct:
            self._direct = self._looked = False
            try:
                message = await self._receive()
            except BaseException:
                self._direct = self.state is OPEN
                raise
            self._direct = True
        else:
            message = await self._next_message()
        if message["type"] == "websocket.receive":
            data = message.get("text")
            if data is None:
                data = self._binary(message)
            if len(data) <= self.max_message_size:
                return data
            await self._too_big(data)
        raise self._ended(message, StopAsyncIteration)

    async def _next_message(self) -> Message:
        """The slow path of receiving: read-ahead messages, a watchdog reader, implicit accept, closed."""
        if self._waiting or (self.state is OPEN and not self._buffer and self._reader is None):
            raise RuntimeError("receive() is already being awaited on this websocket")
        self._looked = False
        if self._buffer:
            message = self._buffer.pop(0)
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
                message = await (reader if reader is not None else self._receive())
            finally:
                self._waiting = False
        self._direct = self.state is OPEN and not self._buffer and self._reader is None
        return message

    @staticmethod
    def _binary(message: Message) -> bytes:
        data = message.get("bytes")
        if data is None:
            raise RuntimeError("the server sent websocket.receive with neither text nor bytes")
        return bytes(data)

    async def _too_big(self, data: str | bytes) -> NoReturn:
        await self.fail(1009, f"message of {len(data)} exceeds max_message_size {self.max_message_size}")

    def _ended(self, message: Message, kind: type[Exception]) -> Exception:
        self._direct = False
        if message["type"] == "websocket.disconnect":
            self._client_gone(message)
        elif message["type"] != "websocket.receive":
            return RuntimeError(f"unexpected ASGI message {message['type']!r} on a websocket")
        if kind is StopAsyncIteration:
            return StopAsyncIteration()
        return WebSocketDisconnect(self.close_code or 1005, self.close_reason)

    async def receive_json(self, type: Any = Any) -> Any:
        """The next message decoded as JSON (validated against ``type`` if given); bad JSON closes with 1007."""
        data = await self.receive()
        try:
            return msgspec.json.decode(data, type=type)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            await self.fail(1007, f"invalid JSON: {exc}")

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
        except OSError as exc:  # the server saw the client go (uvicorn: ClientDisconnected)
            self._client_gone({"code": 1006})
            raise WebSocketDisconnect(1006, "connection lost") from exc

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
        """Close with ``code``; before accept the client gets HTTP 403. A second call does nothing."""
        if self.state is CLOSED:
            return
        was = self.state
        self.state = CLOSED
        self._direct = False
        self.close_code = code if was is OPEN else 403
        self.close_reason = reason
        message: dict[str, Any] = {"type": "websocket.close", "code": code}
        if reason:
            message["reason"] = reason
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):  # granian never completes a send to a vanished peer
                await self._send(message)
        except (OSError, TimeoutError):
            pass  # the client is already gone

    async def fail(self, code: int, reason: str) -> NoReturn:
        """Close with ``code`` because of bad client input, then raise :class:`WebSocketDisconnect`."""
        logger.warning("closing websocket %s with %d: %s", self.scope.get("path"), code, reason)
        await self.close(code, reason[:120])
        raise WebSocketDisconnect(code, reason)

    def _client_gone(self, message: Message) -> None:
        if self.state is not CLOSED:
            self.state = CLOSED
            self._direct = False
            self.close_code = message.get("code", 1005)
            # 1012 (service restart) is what a server sends when it shuts down (uvicorn): not the client's doing
            self.client_closed = self.close_code != SERVICE_RESTART
            self.close_reason = message.get("reason") or ""
        if self._in_body and self._task is not asyncio.current_task():
            self._cancel(_CLIENT_LEFT)

    def _cancel(self, why: str) -> None:
        if self._in_body and self._cancelled_for is None and self._task is not None:
            self._cancelled_for = why
            self._task.cancel()

    def shutdown(self) -> None:
        """Ask the handler to stop because the server is shutting down; the client then gets 1001."""
        self._cancel(_SHUTDOWN)

    # -- disconnect watching --------------------------------------------------------------------------
    def look(self) -> None:
        """Called by the watchdog: start a one-shot reader if the handler has not read since the last look."""
        if not self._direct:
            return  # a receive is in progress, a reader is out or messages wait, or the socket is not open
        if not self._looked:
            self._looked = True
            return
        self._start_reader()

    def _start_reader(self) -> None:
        self._direct = False
        reader = self._reader = asyncio.ensure_future(self._receive())
        reader.add_done_callback(self._on_read)

    def _on_read(self, reader: asyncio.Future[Message]) -> None:
        if reader is not self._reader or reader.cancelled():
            return  # receive() took this reader and its result
        self._reader = None
        if reader.exception() is not None:
            self._buffer.append({"type": "websocket.disconnect", "code": 1006})
            self._client_gone({"code": 1006})
            return
        message = reader.result()
        self._buffer.append(message)
        if message["type"] != "websocket.receive":
            self._client_gone(message)
        elif len(self._buffer) < self.max_queue and self.state is OPEN:
            self._start_reader()

    # -- lifecycle ------------------------------------------------------------------------------------
    async def serve(self, session: Session) -> None:
        """Run the whole lifecycle of ``session`` on this connection; the one place it is written.

        ``session.run(connection)`` gives the body: a coroutine (Emmett style, plain seed-000 coroutines) that is
        awaited, or an async generator (seed 000) whose yields are sent: ``ws_send`` messages go out as they
        are, ``ws_close`` closes and ends the generator, anything else is a ``TypeError`` naming the handler.
        The generator is always closed, so its ``finally`` runs."""
        self._task = asyncio.current_task()
        send = self._send
        current_websocket.set(self)  # the `websocket` object, in hooks and handler alike
        scope = self.scope
        foreign_cancel: asyncio.CancelledError | None = None
        try:
            if session.on_connect is not None:
                await self._decide(await call_hook(session.on_connect, scope), session)
            if self.state is CONNECTING and session.accepts:
                await self.accept()
            if self.state is not CLOSED:
                self._in_body = True
                try:
                    body = session.run(self)
                    if type(body) is not AsyncGeneratorType:
                        await body
                    else:  # the seed-000 driver, inline: a helper coroutine would cost on every message
                        try:
                            async for message in body:
                                if type(message) is dict and message.get("type") == "websocket.send":
                                    if type(message.get("text")) is str or type(message.get("bytes")) is bytes:
                                        if self.state is not OPEN:
                                            self._not_open()
                                        try:
                                            await send(message)
                                        except OSError as exc:  # the server saw the client go (uvicorn)
                                            self._client_gone({"code": 1006})
                                            raise WebSocketDisconnect(1006, "connection lost") from exc
                                        continue
                                elif type(message) is dict and message.get("type") == "websocket.close":
                                    await self.close(message.get("code", 1000), message.get("reason", ""))
                                    break  # nothing is sent after ws_close: the generator is closed below
                                raise _not_a_message(session.name, message)
                        finally:
                            await body.aclose()
                finally:
                    self._in_body = False
                await self.close(1000)
        except WebSocketDisconnect:
            await self.close(1000)
        except asyncio.CancelledError as exc:
            if self._cancelled_for is None:
                foreign_cancel = exc
                await self.close(1001)
            else:
                if self._task is not None:
                    self._task.uncancel()
                await self.close(1001 if self._cancelled_for is _SHUTDOWN else 1000)
        except Exception:
            logger.exception("websocket handler %s failed", session.name)
            await self.close(1011, "internal error")
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
