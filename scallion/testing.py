"""``TestClient``: drive an ASGI application in-process (no socket), lifespan included.

Async first::

    async with TestClient(app) as client:
        response = await client.get("/hello")
        async with client.websocket("/echo") as ws:
            await ws.send("hi")
            assert await ws.receive() == "hi"

and the same API synchronously with ``with TestClient(app) as client:`` (an event loop runs in a thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import IO, Any, TypeVar
from urllib.parse import quote, unquote, urlencode

import msgspec

from .connection import WebSocketDisconnect
from .datastructures import parse_cookies
from .types import ASGIApp, Message

T = TypeVar("T")
_json_encode = msgspec.json.Encoder().encode


class WebSocketProtocolError(Exception):
    """The application answered the handshake in a way real clients refuse (a subprotocol nobody offered)."""


class WebSocketDenied(Exception):
    """The application refused the websocket handshake with an HTTP response."""

    def __init__(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        super().__init__(f"websocket handshake refused with HTTP {status}: {body[:200]!r}")
        self.status = status
        self.body = body
        self.headers = headers or {}


class Response:
    """An HTTP response as the client saw it."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.status_code = status
        self.headers_list = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in headers]
        self.headers: dict[str, str] = {}
        for name, value in self.headers_list:
            self.headers[name] = f"{self.headers[name]}, {value}" if name in self.headers else value
        self.body = body
        self.content = body

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode()

    def json(self) -> Any:
        """The body decoded as JSON."""
        return msgspec.json.decode(self.body)

    @property
    def set_cookies(self) -> list[str]:
        """Every ``Set-Cookie`` header value."""
        return [v for k, v in self.headers_list if k == "set-cookie"]

    @property
    def cookies(self) -> dict[str, str]:
        """Cookies set by this response, by name."""
        found: dict[str, str] = {}
        for header in self.set_cookies:
            found.update(parse_cookies(header.split(";", 1)[0]))
        return found

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.body[:60]!r}>"


def _split(path: str, query: dict[str, Any] | None) -> tuple[str, bytes]:
    path, _, query_string = path.partition("?")
    if query:
        extra = urlencode(query, doseq=True)
        query_string = f"{query_string}&{extra}" if query_string else extra
    return path, query_string.encode()


FileContent = bytes | str | IO[bytes]
"""A file's content for :func:`encode_multipart`: bytes, text (sent as UTF-8) or a binary file object."""
FileSpec = (
    FileContent | tuple[str, FileContent] | tuple[str, FileContent, str] | tuple[str, FileContent, str, dict[str, str]]
)
"""One file: its content, or ``(filename, content)``, ``(filename, content, content_type)``,
``(filename, content, content_type, extra_headers)``."""
FilesArgument = Mapping[str, FileSpec | list[FileSpec]] | Sequence[tuple[str, FileSpec]]
"""``files=``: ``{field: spec}`` (a list of specs repeats the field) or ``[(field, spec), ...]``."""


def _quote_param(value: str) -> str:
    # As browsers do (WHATWG HTML, multipart/form-data encoding): escape quote, CR and LF in names.
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def encode_multipart(data: Mapping[str, Any], files: FilesArgument, boundary: str | None = None) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body of the fields ``data`` (a list value repeats the field) and ``files``,
    as a browser sends it: ``(body, content_type)``. A file without a filename is sent as ``upload``, without a
    content type as ``application/octet-stream``."""
    boundary = boundary or f"scallion-{secrets.token_hex(16)}"
    out = bytearray()

    def part(disposition: str, headers: dict[str, str], content: bytes) -> None:
        out.extend(f"--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\n".encode())
        for name, value in headers.items():
            out.extend(f"{name}: {value}\r\n".encode())
        out.extend(b"\r\n")
        out.extend(content)
        out.extend(b"\r\n")

    for name, value in data.items():
        for item in value if isinstance(value, list) else [value]:
            part(f'name="{_quote_param(name)}"', {}, str(item).encode())
    pairs = list(files.items()) if isinstance(files, Mapping) else list(files)
    for name, specs in pairs:
        for spec in specs if isinstance(specs, list) else [specs]:
            filename, content_type, headers = "upload", "application/octet-stream", {}
            content: Any = spec
            if isinstance(spec, tuple):
                filename, content = spec[0], spec[1]
                if len(spec) > 2:
                    content_type = spec[2]
                if len(spec) > 3:
                    headers = spec[3]
            if isinstance(content, str):
                raw = content.encode()
            elif isinstance(content, bytes | bytearray):
                raw = bytes(content)
            else:
                raw = content.read()
            part(
                f'name="{_quote_param(name)}"; filename="{_quote_param(filename)}"',
                {"Content-Type": content_type, **headers},
                raw,
            )
    out.extend(f"--{boundary}--\r\n".encode())
    return bytes(out), f"multipart/form-data; boundary={boundary}"


class TestClient:
    """An in-process client for an ASGI application; see the module docstring."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "testserver",
        client: tuple[str, int] = ("127.0.0.1", 50000),
        lifespan: bool = True,
        timeout: float = 10.0,
    ) -> None:
        self.app = app
        self.host = host
        self.client = client
        self.lifespan = lifespan
        self.timeout = timeout
        self.cookies: dict[str, str] = {}
        """Cookies the application set, sent back with later requests."""
        self._lifespan_task: asyncio.Task[None] | None = None
        self._lifespan_in: asyncio.Queue[Message] | None = None
        self._lifespan_out: asyncio.Queue[Message] | None = None
        self._sync: SyncTestClient | None = None

    # -- lifespan -------------------------------------------------------------------------------------
    async def __aenter__(self) -> TestClient:
        if self.lifespan:
            self._lifespan_in, self._lifespan_out = asyncio.Queue(), asyncio.Queue()
            scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
            self._lifespan_task = asyncio.create_task(
                self.app(scope, self._lifespan_in.get, self._lifespan_out.put)  # type: ignore[arg-type]
            )
            await self._lifespan("lifespan.startup")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._lifespan_task is not None:
            await self._lifespan("lifespan.shutdown")
            await asyncio.wait_for(self._lifespan_task, self.timeout)
            self._lifespan_task = None

    async def _lifespan(self, event: str) -> None:
        assert self._lifespan_in is not None and self._lifespan_out is not None and self._lifespan_task
        await self._lifespan_in.put({"type": event})
        getter = asyncio.ensure_future(self._lifespan_out.get())
        done, _ = await asyncio.wait(
            {getter, self._lifespan_task}, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if getter not in done:
            getter.cancel()
            if self._lifespan_task in done:
                self._lifespan_task.result()
                raise RuntimeError(f"the application ended the lifespan without answering {event}")
            raise TimeoutError(f"no answer to {event} within {self.timeout}s")
        reply = getter.result()
        if reply["type"].endswith(".failed"):
            raise RuntimeError(f"{event} failed: {reply.get('message', '')}")

    # -- HTTP -----------------------------------------------------------------------------------------
    def _headers(self, headers: dict[str, str] | None, extra: dict[str, str]) -> list[tuple[bytes, bytes]]:
        merged = {"host": self.host, **extra}
        if self.cookies:
            merged["cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        merged.update({k.lower(): v for k, v in (headers or {}).items()})
        return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in merged.items()]

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | str = b"",
        json: Any = None,
        data: dict[str, Any] | None = None,
        files: FilesArgument | None = None,
        query: dict[str, Any] | None = None,
        chunks: list[bytes] | None = None,
    ) -> Response:
        """Send one request; ``json=`` / ``data=`` (urlencoded form) / ``body=`` / ``chunks=`` set the body.
        ``files=`` sends a ``multipart/form-data`` body of those files plus the fields of ``data=`` (see
        :func:`encode_multipart`)."""
        extra: dict[str, str] = {}
        if json is not None:
            body = _json_encode(json)
            extra["content-type"] = "application/json"
        elif files is not None:
            body, extra["content-type"] = encode_multipart(data or {}, files)
        elif data is not None:
            body = urlencode(data, doseq=True).encode()
            extra["content-type"] = "application/x-www-form-urlencoded"
        payload = body.encode() if isinstance(body, str) else body
        if chunks is not None:
            extra["transfer-encoding"] = "chunked"
        elif payload or method.upper() in ("POST", "PUT", "PATCH"):
            extra["content-length"] = str(len(payload))
        raw_path, query_string = _split(path, query)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": method.upper(),
            "scheme": "http",
            "path": unquote(raw_path),
            "raw_path": quote(raw_path, safe="/%").encode(),
            "query_string": query_string,
            "root_path": "",
            "headers": self._headers(headers, extra),
            "client": self.client,
            "server": (self.host, 80),
            "extensions": {},
            "state": {},
        }
        pieces = list(chunks) if chunks is not None else [payload]
        sent: list[Message] = []
        done = asyncio.Event()

        async def receive() -> Message:
            if pieces:
                piece = pieces.pop(0)
                return {"type": "http.request", "body": piece, "more_body": bool(pieces)}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                done.set()

        await asyncio.wait_for(asyncio.ensure_future(self.app(scope, receive, send)), self.timeout)
        start = next((m for m in sent if m["type"] == "http.response.start"), None)
        if start is None:
            raise RuntimeError(f"the application sent no response to {method} {path}")
        body_out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        response = Response(start["status"], list(start.get("headers", [])), body_out)
        self._remember(response)
        return response

    def _remember(self, response: Response) -> None:
        for header in response.set_cookies:
            pair, *attributes = header.split(";")
            name, _, value = pair.partition("=")
            expired = False
            for attribute in attributes:
                key, _, setting = attribute.strip().partition("=")
                if key.lower() == "max-age":
                    expired = setting.strip().lstrip("-").isdigit() and int(setting) <= 0
                elif key.lower() == "expires" and not any(a.strip().lower().startswith("max-age") for a in attributes):
                    with contextlib.suppress(TypeError, ValueError):
                        expired = parsedate_to_datetime(setting) <= datetime.now(UTC)
            if expired:
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = value.strip()

    async def get(self, path: str, **kwargs: Any) -> Response:
        """``GET path``."""
        return await self.request("GET", path, **kwargs)

    async def head(self, path: str, **kwargs: Any) -> Response:
        """``HEAD path``."""
        return await self.request("HEAD", path, **kwargs)

    async def options(self, path: str, **kwargs: Any) -> Response:
        """``OPTIONS path``."""
        return await self.request("OPTIONS", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Response:
        """``POST path``."""
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> Response:
        """``PUT path``."""
        return await self.request("PUT", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> Response:
        """``PATCH path``."""
        return await self.request("PATCH", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Response:
        """``DELETE path``."""
        return await self.request("DELETE", path, **kwargs)

    # -- websockets -----------------------------------------------------------------------------------
    def websocket(
        self,
        path: str,
        *,
        subprotocols: list[str] | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, Any] | None = None,
        scheme: str = "ws",
    ) -> TestWebSocket:
        """A websocket session: ``async with client.websocket("/path") as ws:``."""
        raw_path, query_string = _split(path, query)
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": scheme,
            "path": unquote(raw_path),
            "raw_path": quote(raw_path, safe="/%").encode(),
            "query_string": query_string,
            "root_path": "",
            "headers": self._headers(
                headers, {"connection": "upgrade", "upgrade": "websocket", "sec-websocket-version": "13"}
            ),
            "client": self.client,
            "server": (self.host, 80),
            "subprotocols": list(subprotocols or []),
            "extensions": {"websocket.http.response": {}},
            "state": {},
        }
        return TestWebSocket(self.app, scope, self.timeout)

    # -- sync use -------------------------------------------------------------------------------------
    def __enter__(self) -> SyncTestClient:
        self._sync = SyncTestClient(self)
        self._sync.portal.call(self.__aenter__())
        return self._sync

    def __exit__(self, *exc: object) -> None:
        assert self._sync is not None
        try:
            self._sync.portal.call(self.__aexit__())
        finally:
            self._sync.portal.stop()
            self._sync = None


class TestWebSocket:
    """The client end of an in-process websocket."""

    __test__ = False

    def __init__(self, app: ASGIApp, scope: dict[str, Any], timeout: float) -> None:
        self.app = app
        self.scope = scope
        self.timeout = timeout
        self.subprotocol: str | None = None
        """The subprotocol the application accepted with."""
        self.accept_headers: dict[str, str] = {}
        self.close_code: int | None = None
        """The code the application closed with (None while open)."""
        self.close_reason = ""
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._client_closed = False

    async def _app_receive(self) -> Message:
        return await self._to_app.get()

    async def _app_send(self, message: Message) -> None:
        if self._client_closed:
            raise OSError("the client has disconnected")
        if message["type"] == "websocket.close" and self.close_code is None:
            await self._to_app.put({"type": "websocket.disconnect", "code": message.get("code", 1000)})
        await self._from_app.put(message)

    async def _next(self, timeout: float | None) -> Message:
        assert self._task is not None
        getter = asyncio.ensure_future(self._from_app.get())
        done, _ = await asyncio.wait(
            {getter, self._task}, timeout=timeout or self.timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if getter in done:
            return getter.result()
        getter.cancel()
        if self._task in done:
            if not self._from_app.empty():
                return self._from_app.get_nowait()
            self._task.result()
            raise RuntimeError("the application ended without closing the websocket")
        raise TimeoutError(f"no websocket message within {timeout or self.timeout}s")

    async def __aenter__(self) -> TestWebSocket:
        await self._to_app.put({"type": "websocket.connect"})
        self._task = asyncio.ensure_future(self.app(self.scope, self._app_receive, self._app_send))
        message = await self._next(None)
        if message["type"] == "websocket.accept":
            self.subprotocol = message.get("subprotocol")
            offered = list(self.scope.get("subprotocols") or ())
            if self.subprotocol is not None and self.subprotocol not in offered:
                await self._finish_after_refusing()
                raise WebSocketProtocolError(
                    f"the application accepted with subprotocol {self.subprotocol!r}, which the client did not offer "
                    f"({offered or 'none'}): browsers and websocket clients fail such a handshake"
                )
            self.accept_headers = {k.decode().lower(): v.decode() for k, v in message.get("headers") or []}
            return self
        await self._finish()
        if message["type"] == "websocket.close":
            raise WebSocketDenied(403)
        if message["type"] == "websocket.http.response.start":
            body = b""
            while True:
                part = await self._next(None)
                body += part.get("body", b"")
                if not part.get("more_body", False):
                    break
            headers = {k.decode().lower(): v.decode() for k, v in message.get("headers") or []}
            raise WebSocketDenied(message["status"], body, headers)
        raise RuntimeError(f"unexpected first websocket message {message!r}")

    async def _finish_after_refusing(self) -> None:
        self._client_closed = True
        await self._to_app.put({"type": "websocket.disconnect", "code": 1006})
        await self._finish()

    async def __aexit__(self, *exc: object) -> None:
        if self.close_code is None and not self._client_closed:
            await self.close(1000)
        await self._finish()

    async def _finish(self) -> None:
        if self._task is not None:
            await asyncio.wait_for(asyncio.shield(self._task), self.timeout)

    async def send(self, data: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message."""
        key = "text" if isinstance(data, str) else "bytes"
        await self._to_app.put({"type": "websocket.receive", key: data})

    async def send_json(self, data: Any) -> None:
        """Send ``data`` as JSON text."""
        await self.send(_json_encode(data).decode())

    async def receive(self, timeout: float | None = None) -> str | bytes:
        """The next message from the application; raises ``WebSocketDisconnect`` once it closed."""
        if self.close_code is not None:
            raise WebSocketDisconnect(self.close_code, self.close_reason)
        message = await self._next(timeout)
        if message["type"] == "websocket.send":
            text = message.get("text")
            return text if text is not None else bytes(message["bytes"])
        if message["type"] == "websocket.close":
            self.close_code = message.get("code", 1000)
            self.close_reason = message.get("reason") or ""
            raise WebSocketDisconnect(self.close_code or 1000, self.close_reason)
        raise RuntimeError(f"unexpected websocket message {message!r}")

    async def receive_json(self, timeout: float | None = None) -> Any:
        """The next message decoded as JSON."""
        return msgspec.json.decode(await self.receive(timeout))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close from the client side and wait for the application to finish."""
        if self._client_closed:
            return
        self._client_closed = True
        await self._to_app.put({"type": "websocket.disconnect", "code": code, "reason": reason})
        await self._finish()

    async def wait_closed(self, timeout: float | None = None) -> int:
        """Wait until the application closes the websocket; returns the close code (messages are skipped)."""
        while self.close_code is None:
            try:
                await self.receive(timeout)
            except WebSocketDisconnect:
                break
        return self.close_code or 1000


class _Portal:
    """An event loop in a thread, to run coroutines from synchronous code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="scallion-testclient", daemon=True)
        self.thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class SyncTestClient:
    """The synchronous face of :class:`TestClient` (what ``with TestClient(app)`` gives)."""

    __test__ = False

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.portal = _Portal()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.client, name)
        if name in {"request", "get", "head", "options", "post", "put", "patch", "delete"}:
            return lambda *args, **kwargs: self.portal.call(attribute(*args, **kwargs))
        return attribute

    def websocket(self, path: str, **kwargs: Any) -> SyncTestWebSocket:
        """A synchronous websocket session: ``with client.websocket("/path") as ws:``."""
        return SyncTestWebSocket(self.portal, self.client.websocket(path, **kwargs))


class SyncTestWebSocket:
    """The synchronous face of :class:`TestWebSocket`."""

    __test__ = False

    def __init__(self, portal: _Portal, websocket: TestWebSocket) -> None:
        self.portal = portal
        self.websocket = websocket

    def __enter__(self) -> SyncTestWebSocket:
        self.portal.call(self.websocket.__aenter__())
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.portal.call(self.websocket.__aexit__(kind, exc, tb))

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.websocket, name)
        if callable(attribute) and name in {
            "send",
            "send_json",
            "receive",
            "receive_json",
            "close",
            "wait_closed",
        }:
            method: Callable[..., Awaitable[Any]] = attribute
            return lambda *args, **kwargs: self.portal.call(method(*args, **kwargs))  # type: ignore[arg-type]
        return attribute
