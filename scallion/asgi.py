"""The ASGI 3 core: ``build_server`` turns one handler into an application (HTTP, websockets, lifespan).

An HTTP request is the ASGI scope itself, enriched in place with ``headers`` (a dict), ``headers_list``,
``body``, ``method`` (``"WS"`` for websockets) and ``config`` (what ``on_start`` returned). The handler
(usually a middleware chain) returns a response dict, or for websockets a :class:`~scallion.connection.Session`
(made by ``@websocket``); a response dict returned for a websocket request refuses the handshake with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from .connection import Connection, Session, call_hook, encode_headers
from .context import current_request
from .datastructures import header_name, header_names, header_text, header_values, headers_dict
from .errors import BadRequest
from .log import client_log
from .types import Handler, Message, Receive, Request, Response, Scope, Send

logger = logging.getLogger("scallion")

WITHOUT_LENGTH = frozenset([*range(100, 200), 204, 304])
"""Statuses whose responses carry no ``Content-Length`` (informational, No Content, Not Modified)."""

StartHook = Callable[[Scope], Any]
StopHook = Callable[[Scope], Any]


def _plain(status: int, text: str, close: bool = False) -> Response:
    headers = {"content-type": "text/plain; charset=utf-8"}
    if close:
        headers["connection"] = "close"
    return {"status": status, "body": text.encode(), "headers": headers}


def handler_name(handler: Any) -> str:
    """A readable name for a handler in log lines and errors."""
    func = getattr(handler, "func", handler)
    module = getattr(func, "__module__", None)
    name = getattr(func, "__qualname__", None) or repr(func)
    return f"{module}.{name}" if module else name


def culprit(request: Request, exc: BaseException) -> str:
    """What raised ``exc`` while ``request`` went through the handler chain, for the log line: the route's
    handler if its code is among the traceback's frames, otherwise the outermost function outside scallion
    (a middleware, as a rule)."""
    endpoint = request.get("endpoint")
    codes = {getattr(f, "__code__", None) for f in (endpoint, getattr(endpoint, "func", None)) if f is not None}
    outside: str | None = None
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code in codes:
            return f"handler {handler_name(endpoint)}"
        module = frame.f_globals.get("__name__", "")
        if outside is None and module != "scallion" and not module.startswith("scallion."):
            outside = f"{module}.{frame.f_code.co_qualname}"
        tb = tb.tb_next
    if outside is not None:
        return (
            f"middleware {outside}" if endpoint is None else f"{outside}, called for handler {handler_name(endpoint)}"
        )
    return f"handler {handler_name(endpoint)}" if endpoint is not None else "the handler chain"


_LENGTHS = [b"%d" % length for length in range(4096)]
"""``Content-Length`` values of short bodies, formatted once."""

_encoded: dict[tuple[str, Any], tuple[bytes, bytes]] = {}
"""Response headers already encoded, by ``(name, value)``: most responses repeat the same few."""


def _encode(item: tuple[str, Any], cache: bool = True) -> tuple[bytes, bytes]:
    name, value = item
    pair = (name.lower().encode("latin-1"), (value if type(value) is str else str(value)).encode("latin-1"))
    if cache and len(_encoded) < 1024 and pair[0] != b"content-length":
        _encoded[item] = pair
    return pair


def response_headers(response: Response) -> tuple[list[tuple[bytes, bytes]], bool]:
    """The ASGI header list of a response dict (``headers`` plus one ``set-cookie`` per cookie), and whether it
    has a ``content-length``."""
    raw: list[tuple[bytes, bytes]] = []
    has_length = False
    headers = response.get("headers")
    if headers:
        encoded = _encoded
        for item in headers.items():
            try:
                pair = encoded.get(item)
            except TypeError:  # an unhashable value: encoded, not remembered
                pair = _encode(item, cache=False)
            if pair is None:
                pair = _encode(item)
            if pair[0] == b"content-length":
                has_length = True
            raw.append(pair)
    cookies = response.get("cookies")
    if cookies:
        from .cookies import set_cookie_header

        for name, cookie in cookies.items():
            raw.append((b"set-cookie", set_cookie_header(name, cookie).encode("latin-1")))
    return raw, has_length


class Ready(tuple[Message, Message]):
    """A response already encoded: its ``http.response.start`` and ``http.response.body`` messages, which the server
    sends as they are. An :class:`~scallion.App` route with no middleware around it returns one for a ``str``,
    ``bytes``, ``None`` or JSON result, since nothing can look at the response dict it would otherwise build;
    a middleware always gets response dicts."""


def ready(status: int, content_type: tuple[bytes, bytes] | None, body: bytes) -> Ready:
    """The :class:`Ready` response of ``status`` with one (already encoded) ``content_type`` header and ``body``."""
    if content_type is None:  # 204
        return Ready(({"type": "http.response.start", "status": status, "headers": []}, _EMPTY_BODY))
    length = len(body)
    headers = [content_type, (b"content-length", _LENGTHS[length] if length < 4096 else b"%d" % length)]
    return Ready(
        (
            {"type": "http.response.start", "status": status, "headers": headers},
            {"type": "http.response.body", "body": body},
        )
    )


_EMPTY_BODY: Message = {"type": "http.response.body", "body": b""}


_content_types: dict[str, tuple[bytes, bytes]] = {}
"""Encoded ``content-type`` headers by their value: the one header of most responses."""


def body_messages(response: Response) -> tuple[Message, Message]:
    """The ``http.response.start`` and ``http.response.body`` messages of a response dict with a ``body``;
    ``content-length`` is added unless present or the status has no body."""
    status = response["status"]
    body = response.get("body", b"")
    if type(body) is not bytes:
        body = body.encode() if isinstance(body, str) else bytes(body)
    headers = response.get("headers")
    if headers and len(headers) == 1 and "cookies" not in response:  # as text(), json() and html() make them
        content_type = headers.get("content-type")
        if type(content_type) is str:
            pair = _content_types.get(content_type)
            if pair is None:
                pair = _encode(("content-type", content_type), cache=False)
                if len(_content_types) < 256:
                    _content_types[content_type] = pair
            if status in WITHOUT_LENGTH:
                raw = [pair]
            else:
                length = len(body)
                raw = [pair, (b"content-length", _LENGTHS[length] if length < 4096 else b"%d" % length)]
            return {"type": "http.response.start", "status": status, "headers": raw}, {
                "type": "http.response.body",
                "body": body,
            }
    raw, has_length = response_headers(response)
    if not has_length and status not in WITHOUT_LENGTH:
        length = len(body)
        raw.append((b"content-length", _LENGTHS[length] if length < 4096 else b"%d" % length))
    return {"type": "http.response.start", "status": status, "headers": raw}, {
        "type": "http.response.body",
        "body": body,
    }


async def send_response(send: Send, response: Response) -> None:
    """Send a response dict over ASGI: a ``body`` with its length, or a ``stream`` of byte chunks."""
    stream = response.get("stream")
    if stream is None:
        start, body = body_messages(response)
        await send(start)
        await send(body)
        return
    raw, _ = response_headers(response)
    await send({"type": "http.response.start", "status": response["status"], "headers": raw})
    async for chunk in stream:
        if chunk:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def is_response(value: Any) -> bool:
    """True for a response dict: a ``dict`` with an ``int`` ``status``."""
    return type(value) is dict and type(value.get("status")) is int


TEXT_TYPE = (b"content-type", b"text/plain; charset=utf-8")
BINARY_TYPE = (b"content-type", b"application/octet-stream")
JSON_TYPE = (b"content-type", b"application/json")
"""The encoded ``content-type`` headers of an App route's ``str``, ``bytes`` and JSON results."""

_json_encode = msgspec.json.Encoder().encode


def json_body(result: Any, func: Callable[..., Any]) -> bytes:
    """``result`` encoded as JSON (msgspec); a clear ``TypeError`` naming the route handler if it cannot be."""
    try:
        return _json_encode(result)
    except (TypeError, msgspec.EncodeError) as exc:
        raise TypeError(
            f"route handler {handler_name(func)} returned {type(result).__name__}, which is not a response dict, "
            f"str, bytes, None or JSON-encodable: {exc}"
        ) from exc


def route_result(result: Any, func: Callable[..., Any]) -> Ready | Response:
    """An App route function's return value, where no middleware can see the response: a response dict as is,
    else the :class:`Ready` response (``str`` -> text/plain, ``bytes`` -> application/octet-stream, ``None`` ->
    204, anything else -> JSON, or the ``TypeError`` of :func:`json_body`)."""
    kind = type(result)
    if kind is str:  # the common case first
        return ready(200, TEXT_TYPE, result.encode())
    if kind is dict and type(result.get("status")) is int:
        return result  # type: ignore[no-any-return]  # a response dict
    if kind is bytes:
        return ready(200, BINARY_TYPE, result)
    if result is None:
        return ready(204, None, b"")
    return ready(200, JSON_TYPE, json_body(result, func))


Direct = dict[str, dict[str, tuple[Handler, Callable[[], Awaitable[Any]] | None]]]
"""``{path: {method: (handler, function)}}``: the static routes a :class:`Server` serves without the handler
chain (see :func:`direct_routes`)."""


def direct_routes(handler: Handler) -> Direct:
    """The static routes of ``handler`` that a server may call itself, skipping the chain's glue, when routing is
    all the chain does: ``handler`` is ``apply_middleware(wrap_routes(table))(not_found)`` and nothing else (its
    ``direct_router`` attribute is the table's :class:`~scallion.routing.Router`). A static path's HTTP methods
    map to ``(route handler, None)``, or, for an App route, ``(endpoint, route function)`` (the endpoint's
    ``scallion_route_function``): the function takes no argument and runs with the request as
    ``current_request``, and its result is :func:`route_result`'s, exactly what the endpoint does. ``HEAD`` is
    its ``GET`` where the path has no ``HEAD`` route, as the router does. Everything else (other paths and
    methods, 404, 405, redirects) goes through the chain."""
    from .routing import Router  # not at the top: routing imports this module

    direct: Direct = {}
    router = getattr(handler, "direct_router", None)
    if not isinstance(router, Router):
        return direct
    for path, matches in router.static.items():
        methods = {
            method: (match.handler, getattr(match.handler, "scallion_route_function", None))
            for method, match in matches.items()
            if method != "WS"
        }
        if "GET" in methods and "HEAD" not in methods:
            methods["HEAD"] = methods["GET"]
        if methods:
            direct[path] = methods
    return direct


class Server:
    """The ASGI 3 application of ``handler`` (``async def handler(request) -> response``); ``build_server``.

    ``on_start(scope)`` runs at lifespan startup; what it returns is ``request["config"]`` for every request.
    ``on_stop(scope)`` runs at shutdown, after open websockets were closed with 1001.
    ``max_body_size``: bigger request bodies get 413 unread. ``body_timeout``: a body slower than this gets 408.

    Websocket limits (docs/security.md), per connection unless said otherwise:

    - ``max_message_size`` (1 MiB): a bigger client message closes the socket with 1009.
    - ``max_queue`` (64 messages) and ``max_read_ahead`` (1 MiB): what scallion reads ahead while a handler does not
      read (to notice a departed client whatever the handler does); a message arriving while either is reached
      closes with 1008 and cancels the handler.
    - ``max_message_rate`` (1000 messages/s, a token bucket holding one second's worth; None: no limit): a
      faster client is closed with 1008.
    - ``idle_timeout`` (None: off): seconds without a client message before closing with 1001.
    - ``max_websockets`` (10,000, per process): handshakes beyond it get HTTP 503 (close 1013 where the server
      lacks the denial response extension).
    - ``shutdown_timeout`` (5 s): how long shutdown waits for websocket handlers and hooks to finish.
    """

    def __init__(
        self,
        handler: Handler,
        on_start: StartHook | None = None,
        on_stop: StopHook | None = None,
        *,
        max_body_size: int = 1024 * 1024,
        body_timeout: float = 15.0,
        max_message_size: int = 1024 * 1024,
        max_queue: int = 64,
        max_read_ahead: int = 1024 * 1024,
        max_message_rate: float | None = 1000.0,
        idle_timeout: float | None = None,
        max_websockets: int = 10_000,
        shutdown_timeout: float = 5.0,
    ) -> None:
        for name, value in [
            ("max_body_size", max_body_size),
            ("body_timeout", body_timeout),
            ("max_message_size", max_message_size),
            ("max_queue", max_queue),
            ("max_read_ahead", max_read_ahead),
            ("max_message_rate", max_message_rate),
            ("idle_timeout", idle_timeout),
            ("max_websockets", max_websockets),
            ("shutdown_timeout", shutdown_timeout),
        ]:
            optional = name in ("max_message_rate", "idle_timeout")
            if (value is None and not optional) or (
                value is not None and (type(value) not in (int, float) or value <= 0)
            ):
                allowed = "a positive number" + (" or None (no limit)" if optional else "")
                raise ValueError(f"build_server option {name} must be {allowed}, not {value!r}")
        self.handler = handler
        self._on_start = on_start
        self._on_stop = on_stop
        self.max_body_size = max_body_size
        self.body_timeout = body_timeout
        self.max_message_size = max_message_size
        self.max_queue = max_queue
        self.max_read_ahead = max_read_ahead
        self.max_message_rate = max_message_rate
        self.idle_timeout = idle_timeout
        self.max_websockets = max_websockets
        self.shutdown_timeout = shutdown_timeout
        self.config: Any = {}
        """What ``on_start`` returned; every request sees it as ``request["config"]``."""
        self.connections: set[Connection] = set()
        """The websocket connections being served right now."""
        self._drained: asyncio.Event | None = None

    @property
    def handler(self) -> Handler:
        """The handler (usually a middleware chain) every request goes to. Setting it also sets :attr:`direct`."""
        return self._handler

    @handler.setter
    def handler(self, handler: Handler) -> None:
        self._handler = handler
        self.direct: Direct = direct_routes(handler)
        """The static routes served without the chain's glue (:func:`direct_routes`), kept with the handler."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The request path is written inline, not in helper coroutines: each coroutine on the way costs about
        # a thousand CPU instructions per request, and each one between the server and a websocket handler is
        # passed through on every message the handler waits for.
        kind = scope["type"]
        if kind == "websocket":
            connection, session = await self.open_websocket(scope, receive, send)
            if session is None:
                return
            self.connections.add(connection)
            try:
                await connection.serve(session)
            finally:
                self.connections.discard(connection)
                if self._drained is not None and not self.connections:
                    self._drained.set()
            return
        if kind != "http":
            if kind == "lifespan":
                return await self.lifespan(scope, receive, send)
            raise ValueError(f"scallion cannot serve ASGI scope type {kind!r}")

        request: Request = scope  # type: ignore[assignment]  # the request is the scope, enriched in place
        raw = scope["headers"]
        headers: dict[str, str] = {}  # datastructures.headers_dict(raw), inline: a call less per request
        names = header_names
        values = header_values
        for key, value in raw:
            try:
                name = names[key]
            except KeyError:
                name = header_name(key)
            text = values.get(value)
            if text is None:
                text = header_text(name, value)
            if name in headers:
                headers[name] += ("; " if name == "cookie" else ",") + text
            else:
                headers[name] = text
        request["headers"] = headers
        request["headers_list"] = raw
        request["config"] = self.config
        if "content-length" in headers or "transfer-encoding" in headers:
            body = await self.read_body(receive, headers)
            if body is None:
                return
            if type(body) is dict:
                return await send_response(send, body)
            request["body"] = body
        else:
            request["body"] = b""
        response: Any = None
        start: Message | None = None  # set when a str result was encoded inline
        end: Message
        try:
            routes = self.direct.get(scope["path"])
            route = None if routes is None else routes.get(scope["method"])
            if route is None:
                response = await self._handler(request)
            else:  # a static route (direct_routes): what the chain would do, without its glue
                endpoint, func = route
                request["endpoint"] = endpoint
                if func is None:
                    response = await endpoint(request)
                    if type(response) is dict and len(response) == 3:
                        # perhaps the shape text(), json() and html() make: then encoded here (body_messages()'s
                        # first case); subscripts, not get(), and no check of what the try proves
                        try:
                            status = response["status"]
                            body = response["body"]
                            fields = response["headers"]
                            content_type = fields["content-type"]
                            pair = _content_types[content_type]
                        except (KeyError, TypeError):
                            pass  # another shape, or a content type not seen yet: body_messages() below
                        else:
                            if (
                                type(status) is int
                                and type(body) is bytes
                                and type(fields) is dict
                                and len(fields) == 1
                                and type(content_type) is str
                                and status not in WITHOUT_LENGTH
                            ):
                                length = len(body)
                                end = {"type": "http.response.body", "body": body}
                                start = {
                                    "type": "http.response.start",
                                    "status": status,
                                    "headers": [
                                        pair,
                                        (b"content-length", _LENGTHS[length] if length < 4096 else b"%d" % length),
                                    ],
                                }
                else:  # an App route function: called here rather than by its endpoint, a coroutine less
                    token = current_request.set(request)
                    try:
                        result = await func()
                    finally:
                        current_request.reset(token)
                    if type(result) is str:  # the common case: route_result's Ready, inline
                        content = result.encode()
                        length = len(content)
                        end = {"type": "http.response.body", "body": content}
                        start = {
                            "type": "http.response.start",
                            "status": 200,
                            "headers": [
                                TEXT_TYPE,
                                (b"content-length", _LENGTHS[length] if length < 4096 else b"%d" % length),
                            ],
                        }
                    else:
                        response = route_result(result, func)
            if (
                start is None
                and type(response) is not Ready
                and (type(response) is not dict or type(response.get("status")) is not int)
            ):
                response = self._not_a_response(request, response)
        except BadRequest as exc:  # bad client input, such as a malformed JSON body: no traceback
            client_log.info(scope, None, "400 for %s %s: %s", scope.get("method"), scope.get("path"), exc)
            response = _plain(exc.status, f"Bad Request: {exc}")
        except Exception as exc:
            logger.exception("%s failed on %s %s", culprit(request, exc), scope.get("method"), scope.get("path"))
            response = _plain(500, "Internal Server Error")
        try:
            if start is None:
                if type(response) is Ready:  # an App route's result, already encoded
                    start = response[0]  # indexing, not unpacking: a tuple subclass unpacks through an iterator
                    end = response[1]
                elif "stream" in response:
                    return await send_response(send, response)
                else:
                    start, end = body_messages(response)  # inline, not send_response(): a coroutine less per request
            await send(start)
            await send(end)
        except OSError:
            pass  # the client left mid-response
        except Exception:
            logger.exception("sending the response to %s %s failed", scope.get("method"), scope.get("path"))

    def _not_a_response(self, request: Request, value: Any) -> Response:
        logger.error(
            "handler %s returned %r for %s %s, which is not a response dict with a status",
            handler_name(request.get("endpoint", self.handler)),
            type(value).__name__,
            request.get("method"),
            request.get("path"),
        )
        return _plain(500, "Internal Server Error")

    async def read_body(self, receive: Receive, headers: dict[str, str]) -> bytes | Response | None:
        """The request body; a 413/408/400 response when it is too big, too slow or malformed; None if the
        client left."""
        cap = self.max_body_size
        length = headers.get("content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                return _plain(400, "Bad Request: invalid Content-Length", close=True)
            if declared > cap:
                return _plain(413, f"Payload Too Large: the limit is {cap} bytes", close=True)
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > cap:
                        return _plain(413, f"Payload Too Large: the limit is {cap} bytes", close=True)
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            return _plain(408, "Request Timeout: the body arrived too slowly", close=True)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    # -- websockets -----------------------------------------------------------------------------------
    async def open_websocket(self, scope: Scope, receive: Receive, send: Send) -> tuple[Connection, Session | None]:
        """Receive the handshake and run the handler chain: the session to serve, or None when the handshake
        was refused (a response dict from the chain, an error) or the client is already gone."""
        request: Request = scope  # type: ignore[assignment]  # enriched in place, as for HTTP
        raw = scope["headers"]
        request["headers"] = headers_dict(raw)
        request["headers_list"] = raw
        request["method"] = "WS"
        request["body"] = b""
        request["config"] = self.config
        connection = Connection(
            request,
            receive,
            send,
            max_message_size=self.max_message_size,
            max_queue=self.max_queue,
            max_read_ahead=self.max_read_ahead,
            max_message_rate=self.max_message_rate,
            idle_timeout=self.idle_timeout,
        )
        if not await connection.start():
            return connection, None
        refusal = self.screen(request)
        if refusal is not None:
            await connection.deny(refusal["status"], refusal.get("body", b""), refusal.get("headers"))
            return connection, None
        handler = self.handler
        try:
            result = await handler(request)
        except Exception as exc:
            logger.exception("%s failed on websocket %s", culprit(request, exc), scope.get("path"))
            await connection.crash()  # a server-side error: HTTP 500, not the 403 of a refusal
            return connection, None
        if is_response(result):
            await connection.deny(result["status"], result.get("body", b""), result.get("headers"))
            return connection, None
        if not callable(getattr(result, "run", None)):
            logger.error(
                "handler %s returned %r for websocket %s; decorate websocket handlers with @websocket",
                handler_name(request.get("endpoint", handler)),
                type(result).__name__,
                scope.get("path"),
            )
            await connection.crash()
            return connection, None
        return connection, result

    def screen(self, request: Request) -> Response | None:
        """Look at a websocket handshake before any handler runs: a response dict refuses it (sent through the
        denial extension, or as a close that the client sees as HTTP 403), None lets it through.

        A process serving ``max_websockets`` already answers 503 (close 1013 without the denial extension)."""
        if len(self.connections) >= self.max_websockets:
            return _plain(503, f"Service Unavailable: this server holds {self.max_websockets} websockets already")
        return None

    async def close_websockets(self) -> None:
        """Close every open websocket with 1001 (going away), waiting up to ``shutdown_timeout`` for their
        handlers and hooks to finish."""
        if not self.connections:
            return
        self._drained = asyncio.Event()
        for connection in list(self.connections):
            connection.shutdown()
        try:
            async with asyncio.timeout(self.shutdown_timeout):
                await self._drained.wait()
        except TimeoutError:
            logger.warning(
                "%d websocket(s) still open after %ss of shutdown",
                len(self.connections),
                self.shutdown_timeout,
            )

    # -- lifespan -------------------------------------------------------------------------------------
    async def lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run ``on_start`` at startup and ``on_stop`` at shutdown (after closing websockets with 1001)."""
        while True:
            message: Message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self._on_start is not None:
                        config = await call_hook(self._on_start, dict(scope))
                        self.config = {} if config is None else config
                except Exception as exc:
                    logger.exception("on_start failed")
                    await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                    return
                import sys

                if "granian" in sys.modules:  # granian stops before its lifespan shutdown: close websockets first
                    from .granian_signals import take_over_granian_signals

                    take_over_granian_signals(self.close_websockets)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close_websockets()
                try:
                    if self._on_stop is not None:
                        await call_hook(self._on_stop, {**scope, "config": self.config})
                except Exception as exc:
                    logger.exception("on_stop failed")
                    await send({"type": "lifespan.shutdown.failed", "message": f"{type(exc).__name__}: {exc}"})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return


build_server = Server
"""``build_server(handler, on_start=None, on_stop=None, **options)``: the ASGI application of ``handler``; see
:class:`Server`."""


async def standard_not_found(request: Request, *args: Any) -> Response:
    """The default innermost handler: ``404 Not Found``."""
    return _plain(404, "Not Found")


__all__ = ["Server", "Session", "build_server", "encode_headers", "send_response", "standard_not_found"]
