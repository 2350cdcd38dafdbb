"""Secure by default: ``App`` refuses cross-origin websocket handshakes (cross-site websocket hijacking) and,
with ``allowed_hosts``, requests addressed to other host names (DNS rebinding).

The rule matrix runs in-process (TestClient); the refusal itself runs over every real server with
python-websockets, as a browser on another site would connect."""

from __future__ import annotations

import http.client
from collections.abc import Callable
from typing import Any

import pytest
from servers import RunningServer, handshake_refused
from websockets.asyncio.client import connect

from scallion import App, websocket
from scallion.asgi import Server
from scallion.middlewares import wrap_origin
from scallion.testing import TestClient, WebSocketDenied

pytestmark = pytest.mark.timeout(30)


def make_app(**options: Any) -> App:
    app = App(**options)

    @app.websocket("/ws")
    async def greet() -> None:
        await websocket.send("welcome")

    @app.route("/hello")
    async def hello() -> str:
        return "hello"

    return app


async def handshake(app: Any, origin: str | None = None, host: str = "testserver") -> int:
    """101 when the websocket handshake is accepted, else the refusal's HTTP status."""
    headers = {} if origin is None else {"origin": origin}
    async with TestClient(app, host=host) as client:
        try:
            async with client.websocket("/ws", headers=headers) as sock:
                assert await sock.receive() == "welcome"
                return 101
        except WebSocketDenied as denied:
            return denied.status


# -- the Origin rule (App defaults) -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("testserver", None),  # no Origin: not a browser
        ("testserver", "http://testserver"),
        ("testserver", "https://testserver"),  # scheme not compared; no port = the origin scheme's default
        ("TestServer", "HTTP://testSERVER"),  # case does not matter
        ("example.com:8000", "http://example.com:8000"),
        ("example.com:8000", "https://example.com:8000"),
        ("example.com:443", "https://example.com"),
        ("example.com", "https://example.com:443"),
        ("example.com:80", "http://example.com"),
        ("[::1]:8000", "http://[::1]:8000"),
        ("127.0.0.1:8000", "http://127.0.0.1:8000"),
    ],
)
async def test_same_origin_or_no_origin_is_accepted(host: str, origin: str | None) -> None:
    assert await handshake(make_app(), origin, host) == 101


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("testserver", "https://evil.example"),
        ("testserver", "https://testserver.evil.example"),
        ("testserver", "https://eviltestserver"),
        ("example.com:8000", "http://example.com:9000"),  # another port is another origin
        ("example.com:8000", "http://example.com"),
        ("example.com:80", "https://example.com"),  # 443 is not 80
        ("example.com:443", "http://example.com"),
        ("example.com", "https://example.com:8443"),
    ],
)
async def test_cross_origin_is_refused_with_403(host: str, origin: str) -> None:
    assert await handshake(make_app(), origin, host) == 403


@pytest.mark.parametrize(
    "origin",
    [
        "null",  # sandboxed iframes, file:// pages, some redirects
        "",
        "garbage",
        "testserver",
        "https://",
        "https://testserver/",
        "https://testserver/path",
        "https://user@testserver",
        "https://testserver:99999",
        "https://testserver:abc",
        "https://test server",
        "http://testserver, http://testserver",
    ],
)
async def test_null_and_malformed_origins_are_refused(origin: str) -> None:
    assert await handshake(make_app(), origin) == 403


async def test_refusal_says_why_and_no_handler_runs() -> None:
    ran: list[str] = []
    app = App()

    @app.websocket("/ws", on_connect=lambda scope: ran.append("on_connect"))
    async def greet() -> None:
        ran.append("handler")

    async with TestClient(app) as client:
        with pytest.raises(WebSocketDenied) as denied:
            async with client.websocket("/ws", headers={"origin": "https://evil.example"}):
                pass
    assert denied.value.status == 403
    assert denied.value.body == b"Forbidden: origin not allowed"
    assert ran == []


class Refusing(Server):
    """A server whose own screen refuses every handshake (as the core does beyond ``max_websockets``)."""

    def screen(self, request: dict[str, Any]) -> dict[str, Any] | None:
        return {"status": 503, "body": b"busy"}


class RefusingApp(App, Refusing):
    """App.screen's super() is Refusing.screen here."""


@pytest.mark.parametrize("origin", [None, "http://testserver", "https://evil.example"])
async def test_the_core_screen_is_asked_first(origin: str | None) -> None:
    app = RefusingApp()

    @app.websocket("/ws")
    async def greet() -> None:
        await websocket.send("welcome")

    assert await handshake(app, origin) == 503


async def test_http_is_not_checked_for_origin() -> None:
    async with TestClient(make_app()) as client:
        assert (await client.get("/hello", headers={"origin": "https://evil.example"})).status == 200


# -- allowed_origins ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("origin", "status"),
    [
        ("https://app.example.com", 101),
        ("https://APP.example.com:443", 101),
        ("http://app.example.com", 403),  # the scheme is part of a listed origin
        ("https://app.example.com:8443", 403),
        ("https://other.example.com", 403),
        ("http://localhost:3000", 101),
        ("http://localhost:3001", 403),
        ("http://testserver", 101),  # same origin still allowed
    ],
)
async def test_allowed_origins(origin: str, status: int) -> None:
    app = make_app(allowed_origins=["https://app.example.com", "http://localhost:3000/"])
    assert await handshake(app, origin) == status


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        ("https://a.example.com", 101),
        ("https://a.b.example.com", 101),
        ("https://example.com", 403),
        ("https://evilexample.com", 403),
        ("https://a.example.com.evil.example", 403),
        ("http://a.example.com", 403),
        ("https://a.example.com:8443", 403),
        ("https://a.dev.example.org:8443", 101),
        ("https://a.dev.example.org", 403),
    ],
)
async def test_wildcard_origins(origin: str, status: int) -> None:
    app = make_app(allowed_origins=["https://*.example.com", "https://*.dev.example.org:8443"])
    assert await handshake(app, origin) == status


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "garbage"])
async def test_star_allows_any_origin(origin: str) -> None:
    assert await handshake(make_app(allowed_origins=["*"]), origin) == 101


async def test_null_can_be_listed() -> None:
    app = make_app(allowed_origins=["null"])
    assert await handshake(app, "null") == 101
    assert await handshake(app, "https://evil.example") == 403


@pytest.mark.parametrize(
    "entry",
    [
        "example.com",  # no scheme
        "*.example.com",
        "https://app.*.example.com",  # wildcard not at the start
        "https://a*.example.com",
        "https://*",
        "https://example.com/path",
        "https://user@example.com",
        "https://example.com:99999",
        "",
        42,
        None,
    ],
)
def test_bad_allowed_origins_raise(entry: Any) -> None:
    with pytest.raises(ValueError, match="https://"):
        App(allowed_origins=[entry])
    with pytest.raises(ValueError, match="https://"):
        wrap_origin([entry])


def test_one_string_is_one_origin() -> None:
    App(allowed_origins="https://app.example.com")


# -- allowed_hosts ------------------------------------------------------------------------------------
HOSTS = ["example.com", "*.example.com", "127.0.0.1", "[::1]", "api.example.org:8443"]


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("example.com", True),
        ("example.com:8000", True),  # no port listed: any port
        ("EXAMPLE.com.", True),
        ("a.example.com", True),
        ("a.b.example.com:443", True),
        ("127.0.0.1:8000", True),
        ("[::1]:8000", True),
        ("api.example.org:8443", True),
        ("api.example.org", False),  # a port listed: only that port
        ("api.example.org:443", False),
        ("evil.example", False),
        ("example.com.evil.example", False),
        ("evilexample.com", False),
        ("127.0.0.2", False),
        ("", False),
        ("example.com:abc", False),
        ("exa mple.com", False),
    ],
)
async def test_allowed_hosts(host: str, allowed: bool) -> None:
    app = make_app(allowed_hosts=HOSTS)
    async with TestClient(app, host=host) as client:
        response = await client.get("/hello")
    if allowed:
        assert (response.status, response.text) == (200, "hello")
        assert await handshake(app, host=host) == 101
    else:
        assert (response.status, response.text) == (400, "Bad Request: host not allowed")
        assert await handshake(app, host=host) == 403


async def test_default_allows_any_host() -> None:
    async with TestClient(make_app(), host="rebound.evil.example") as client:
        assert (await client.get("/hello")).status == 200
    assert await handshake(make_app(), host="rebound.evil.example") == 101


async def test_host_checked_before_origin() -> None:
    app = make_app(allowed_hosts=["example.com"])
    async with TestClient(app, host="evil.example") as client:
        with pytest.raises(WebSocketDenied) as denied:
            async with client.websocket("/ws", headers={"origin": "http://evil.example"}):
                pass
    assert (denied.value.status, denied.value.body) == (403, b"Forbidden: host not allowed")


async def call_without_host(app: Any, http_version: str = "1.1") -> int:
    """Call ``app`` as a server would with a GET /hello that has no Host header; the status."""
    async with TestClient(app):  # runs the lifespan
        sent: list[dict[str, Any]] = []
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": http_version, "method": "GET",
            "scheme": "http", "path": "/hello", "raw_path": b"/hello", "query_string": b"", "root_path": "",
            "headers": [(b"accept", b"*/*")], "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
    return int(sent[0]["status"])


async def test_missing_host_is_400_when_hosts_are_listed() -> None:
    assert await call_without_host(make_app(allowed_hosts=["example.com"])) == 400
    assert await call_without_host(make_app(allowed_hosts=["example.com"]), "1.0") == 400
    assert await call_without_host(make_app()) == 200


@pytest.mark.parametrize(
    "entry", ["https://example.com", "example.com/path", "a.*.example.com", "ex*ample.com", "", "example.com:x", 42]
)
def test_bad_allowed_hosts_raise(entry: Any) -> None:
    with pytest.raises(ValueError, match=r"example\.com"):
        App(allowed_hosts=[entry])


def test_empty_allowed_hosts_raise() -> None:
    with pytest.raises(ValueError, match="None"):
        App(allowed_hosts=[])


# -- over real servers --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(serve_app: Callable[..., RunningServer]) -> RunningServer:
    return serve_app("security_app:app")


@pytest.fixture(scope="module")
def hosts_server(serve_app: Callable[..., RunningServer]) -> RunningServer:
    return serve_app("security_app:hosts_app")


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://127.0.0.1:1"])
async def test_real_server_refuses_a_foreign_origin(server: RunningServer, origin: str) -> None:
    response = await handshake_refused(server.ws("/ws"), origin=origin, open_timeout=5)
    assert response.status_code == 403
    async with connect(server.ws("/ws"), open_timeout=5) as ws:  # and keeps serving
        assert await ws.recv(decode=True) == "welcome"


async def test_real_server_accepts_its_own_origin(server: RunningServer) -> None:
    async with connect(server.ws("/ws"), origin=f"http://127.0.0.1:{server.port}", open_timeout=5) as ws:
        assert await ws.recv(decode=True) == "welcome"
        await ws.send("hi")
        assert await ws.recv(decode=True) == "hi"


def get(port: int, host: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/hello", headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


async def test_real_server_allowed_hosts(hosts_server: RunningServer) -> None:
    port = hosts_server.port
    assert get(port, f"localhost:{port}") == (200, b"hello")
    assert get(port, f"127.0.0.1:{port}") == (400, b"Bad Request: host not allowed")
    response = await handshake_refused(hosts_server.ws("/ws"), open_timeout=5)
    assert response.status_code == 403
