"""The realtime endpoint: typed event handlers behind one websocket route, and the JavaScript client beside it.

``rt = Realtime(broker)``; ``@rt.on("say") async def say(msg: Say) -> Ack``; then ``rt.mount(app, "/realtime")``
(an :class:`~scallion.App`) or ``wrap_routes([*rt.routes("/realtime"), ...])`` (a routing table). Each client
message (:mod:`scallion.realtime.protocol`) is decoded once as an envelope, its ``data`` validated against the
handler's first parameter's type, the handler awaited and its result sent back as the reply when the message
had an ``id``. Messages of one socket are handled one at a time, in order; channel messages flow beside them.
A bad message, an unknown event or a failing handler gets an error reply and the socket stays open.
"""

from __future__ import annotations

import inspect
import logging
import typing
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from ..connection import Connection, WebSocketDisconnect
from ..handlers import WebSocketHandler
from ..types import Hook, Response
from . import protocol
from .channels import Channels

if TYPE_CHECKING:
    from ..app import App
    from ..pubsub import Broker

logger = logging.getLogger("scallion.realtime")

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

Authorize = Callable[[dict[str, Any], str], "bool | Awaitable[bool]"]
"""``authorize(scope, channel)``: may this connection join ``channel``? (sync or async)"""

Member = Callable[["Client", str], "tuple[str, Any] | Awaitable[tuple[str, Any] | None] | None"]
"""``member(client, channel)``: the ``(member_id, info)`` a client is present as in ``channel``; None: not present."""


class RealtimeError(Exception):
    """Raise it in a handler to reply with an error of your own ``code`` (and ``message``) instead of a result."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code
        self.message = message or code


@dataclass
class EventHandler:
    """One ``@rt.on(event)`` handler: what it takes and returns (for validation and AsyncAPI)."""

    event: str
    func: Callable[..., Awaitable[Any]]
    payload: Any
    """The type the event's data is validated against (``Any`` without an annotation)."""
    result: Any
    """The reply's type (the return annotation; ``Any`` without one)."""
    arity: int
    """0: ``f()``, 1: ``f(payload)``, 2: ``f(payload, client)``."""
    summary: str | None = None
    decode: Callable[[Any], Any] = field(init=False)

    def __post_init__(self) -> None:
        self.decode = msgspec.json.Decoder(self.payload).decode


class Client:
    """One connected socket of a realtime endpoint, as handlers see it (their optional second parameter)."""

    __slots__ = ("channels", "connection", "endpoint", "id", "scope", "state")

    def __init__(self, endpoint: Realtime, connection: Connection, scope: dict[str, Any]) -> None:
        self.endpoint = endpoint
        self.connection = connection
        """The underlying :class:`~scallion.Connection`."""
        self.scope = scope
        """The request dict of the handshake (headers, query_params, cookies...)."""
        self.id = uuid.uuid4().hex
        """A unique id for this socket."""
        self.state: dict[str, Any] = {}
        """Anything the app wants to keep for this socket (a nickname...)."""
        self.channels = Channels(self)
        """The channels this socket has joined."""

    async def emit(self, event: str, data: Any = None) -> None:
        """Send the event ``event`` with ``data`` to this client."""
        await self.connection.send(protocol.encode(protocol.Push(event, data)).decode())


_CLIENT_JS: str | None = None


def client_source() -> str:
    """The JavaScript client (``scallion/realtime/client.js``, one ES module)."""
    global _CLIENT_JS
    if _CLIENT_JS is None:
        _CLIENT_JS = resources.files(__package__).joinpath("client.js").read_text(encoding="utf-8")
    return _CLIENT_JS


class Realtime:
    """Typed events over one websocket, channels over a :mod:`scallion.pubsub` broker, and the JS client.

    ``broker``: where channels live (None: no channels; ``$join`` gets an ``unavailable`` error).
    ``authorize(scope, channel) -> bool`` (sync or async): whether a socket may join a channel (default: any).
    ``member(client, channel) -> (member_id, info) | None``: who a socket is present as in a channel it joins
    (default: nobody; presence events then only show others). ``on_connect``: the websocket hook (refuse the
    handshake, pick a subprotocol). ``title``/``version``: for the AsyncAPI document."""

    def __init__(
        self,
        broker: Broker | None = None,
        *,
        authorize: Authorize | None = None,
        member: Member | None = None,
        on_connect: Hook | None = None,
        title: str = "realtime",
        version: str = "1.0.0",
    ) -> None:
        self.broker = broker
        self.authorize = authorize
        self.member = member
        self.on_connect = on_connect
        self.title = title
        self.version = version
        self.handlers: dict[str, EventHandler] = {}
        """The declared events, by name."""
        self.pushes: dict[str, Any] = {}
        """Events the server sends (declared with :meth:`emits`), by name, with their data's type."""
        self.handler = WebSocketHandler(self.serve, on_connect)
        """The websocket handler, for a routing table's ``"WS"`` row or ``app.websocket(path)``."""
        self._frame: tuple[object, str] = (None, "")

    # -- declaring ------------------------------------------------------------------------------------
    def on(self, event: str) -> Callable[[F], F]:
        """Handle the client event ``event`` with an ``async def`` taking (optionally) the payload, typed with
        any msgspec type (its annotation; ``Any`` without one), and (optionally) the :class:`Client`. Its
        return value (encoded with msgspec) is the reply."""
        if type(event) is not str or not event:
            raise TypeError(f"an event name is a non-empty str, not {event!r}")
        if event.startswith(protocol.PREFIX):
            raise ValueError(f"event names beginning with {protocol.PREFIX!r} are the protocol's own: {event!r}")
        if event in self.handlers:
            raise ValueError(f"event {event!r} already has a handler: {self.handlers[event].func.__qualname__}")

        def decorate(func: F) -> F:
            function: Any = func
            if not inspect.iscoroutinefunction(function):
                raise TypeError(f"@rt.on({event!r}) needs an async def function, not {func!r}")
            parameters = list(inspect.signature(func).parameters.values())
            if len(parameters) > 2 or any(
                p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters
            ):
                raise TypeError(
                    f"@rt.on({event!r}): {func.__qualname__} takes up to two positional parameters, "
                    "the payload and the client"
                )
            hints = typing.get_type_hints(func)
            payload = hints.get(parameters[0].name, Any) if parameters else None
            summary = inspect.getdoc(func)
            self.handlers[event] = EventHandler(
                event,
                func,
                payload,
                hints.get("return", Any),
                len(parameters),
                summary.split("\n\n")[0] if summary else None,
            )
            return func

        return decorate

    def emits(self, event: str, type: Any = Any) -> None:
        """Declare that the server pushes ``event`` (with ``client.emit``) carrying a ``type``: for AsyncAPI."""
        self.pushes[event] = type

    # -- serving --------------------------------------------------------------------------------------
    def routes(self, path: str = "/realtime") -> list[tuple[str, list[str], Any]]:
        """Rows for a routing table: the websocket at ``path``, the JavaScript client at ``path + "/client.js"``."""
        return [(path, ["WS"], self.handler), (path + "/client.js", ["GET"], self.client_js)]

    def mount(self, app: App, path: str = "/realtime") -> None:
        """Serve this endpoint in ``app``: the websocket at ``path``, the JavaScript client at
        ``path + "/client.js"``."""
        app.websocket(path)(self.handler)
        app.route(path + "/client.js")(self.client_js)

    async def client_js(self, *_: Any) -> Response:
        """The JavaScript client (an HTTP handler for routing tables and apps alike)."""
        return {
            "status": 200,
            "body": client_source().encode(),
            "headers": {"content-type": "text/javascript; charset=utf-8", "cache-control": "no-cache"},
        }

    async def publish(self, channel: str, data: Any) -> str | None:
        """Publish ``data`` (encoded as JSON) to ``channel``, from anywhere: its offset."""
        if self.broker is None:
            raise RuntimeError("this Realtime endpoint has no broker: Realtime(broker=...)")
        return await self.broker.publish(channel, protocol.encode(data).decode())

    async def serve(self, scope: dict[str, Any], receiver: Connection) -> None:
        """Serve one socket: dispatch its messages until it leaves, then leave its channels."""
        client = Client(self, receiver, scope)
        try:
            async for data in receiver:
                await self.dispatch(client, data)
        finally:
            await client.channels.close()

    async def dispatch(self, client: Client, data: str | bytes) -> None:
        """Handle one client message, replying (or not) as the protocol says."""
        send = client.connection.send
        try:
            incoming = protocol.decode_incoming(data)
        except (msgspec.DecodeError, RecursionError) as exc:
            await send(protocol.error_frame("invalid_message", f"invalid message: {exc}").decode())
            return
        handler = self.handlers.get(incoming.event)
        if handler is None:
            if incoming.event == protocol.JOIN or incoming.event == protocol.LEAVE:
                await client.channels.handle(incoming)
                return
            await send(protocol.error_frame("unknown_event", f"unknown event {incoming.event!r}", incoming.id).decode())
            return
        arity = handler.arity
        try:
            payload = handler.decode(incoming.data) if arity else None
        except msgspec.ValidationError as exc:
            error = protocol.invalid_payload(exc)
            await send(protocol.encode(protocol.ErrorReply(error, incoming.id)).decode())
            return
        try:
            if arity == 1:
                result = await handler.func(payload)
            elif arity == 2:
                result = await handler.func(payload, client)
            else:
                result = await handler.func()
            if incoming.id is None:
                return
            reply = protocol.encode(protocol.Reply(incoming.id, result))
        except RealtimeError as exc:
            await send(protocol.error_frame(exc.code, exc.message, incoming.id).decode())
            return
        except WebSocketDisconnect:
            raise
        except Exception:
            logger.exception("realtime event %r: handler %s raised", incoming.event, handler.func.__qualname__)
            await send(protocol.error_frame("internal", "internal error", incoming.id).decode())
            return
        await send(reply.decode())

    def message_frame(self, message: Any) -> str:
        """The ``$message`` text for a broker :class:`~scallion.pubsub.Message`, encoded once per message for
        all the sockets of this process (they receive the same object)."""
        last, frame = self._frame
        if last is message:
            return frame
        frame = protocol.encode(
            protocol.Push(
                protocol.MESSAGE, protocol.ChannelMessage(message.channel, msgspec.Raw(message.data), message.offset)
            )
        ).decode()
        self._frame = (message, frame)
        return frame
