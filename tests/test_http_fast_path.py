"""Static routes served by a dict lookup in ``Server.__call__`` (``Server.direct``, issue 9 second pass): when the
handler chain only routes, the server looks a static path up itself and calls the route's handler (an App route's
function directly, with ``request`` set), skipping the chain's glue. What the client gets, what is logged and what
a handler sees must be exactly what the chain gives; anything the fast path cannot prove equal goes through the
chain (other methods, 404, 405, redirects, dynamic routes, any middleware)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from scallion import App, build_server, request, standard_not_found
from scallion.context import OutsideHandler
from scallion.datastructures import header_values, headers_dict
from scallion.errors import BadRequest
from scallion.log import client_log
from scallion.middlewares import apply_middleware, wrap_cors, wrap_routes
from scallion.response import html, json, text

pytestmark = pytest.mark.timeout(30)

Message = dict[str, Any]


async def exchange(
    app: Any,
    method: str = "GET",
    path: str = "/",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
    query: bytes = b"",
    client: tuple[str, int] = ("127.0.0.1", 50000),
) -> list[Message]:
    """Call ``app`` as a server does, in this task, and return every message it sent."""
    raw = [(b"host", b"testserver"), (b"user-agent", b"fast-path-test"), *(headers or [])]
    if body:
        raw.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": raw,
        "client": client,
        "server": ("testserver", 80),
        "state": {},
        "extensions": {},
    }
    sent: list[Message] = []
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client stays until the response is sent
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    async with asyncio.timeout(10):  # not wait_for, which runs the app in a task of its own on 3.11
        await app(scope, receive, send)
    return sent


class Unencodable:
    pass


def make_app(**options: Any) -> App:
    app = App(**options)

    @app.route("/")
    async def hello() -> str:
        return "Hello, world!"

    @app.route("/unicode")
    async def unicode() -> str:
        return "héllo ✓"

    @app.route("/long")
    async def long() -> str:
        return "x" * 5000

    @app.route("/bytes")
    async def raw_bytes() -> bytes:
        return b"\x00\x01"

    @app.route("/none")
    async def nothing() -> None:
        return None

    @app.route("/json")
    async def data() -> dict[str, Any]:
        return {"a": [1, 2], "path": request.path}

    @app.route("/dict")
    async def response_dict() -> dict[str, Any]:
        return text("made by hand", 201, {"x-made": "yes"})

    @app.route("/echo", methods=["POST"])
    async def echo() -> dict[str, Any]:
        return {"got": await request.json(), "method": request.method, "agent": request.headers["user-agent"]}

    @app.route("/query")
    async def query() -> dict[str, Any]:
        return {"q": request.query_params.q}

    @app.route("/boom")
    async def boom() -> str:
        raise ValueError("boom")

    @app.route("/bad")
    async def bad() -> str:
        raise BadRequest("no good")

    @app.route("/unencodable")
    async def unencodable() -> Any:
        return Unencodable()

    @app.route("/surrogate")
    async def surrogate() -> str:
        return "\ud800"

    @app.route("/both", methods=["GET", "HEAD"])
    async def both() -> str:
        return "head or get: " + request.method

    @app.route("/item/{name}")
    async def item(name: str) -> str:
        return "item " + name

    @app.route("/slash/")
    async def slash() -> str:
        return "slash"

    @app.route("/post-only", methods=["POST"])
    async def post_only() -> str:
        return "posted"

    return app


REQUESTS: list[tuple[str, str, bytes, bytes]] = [
    ("GET", "/", b"", b""),
    ("HEAD", "/", b"", b""),
    ("GET", "/unicode", b"", b""),
    ("GET", "/long", b"", b""),
    ("GET", "/bytes", b"", b""),
    ("GET", "/none", b"", b""),
    ("GET", "/json", b"", b""),
    ("GET", "/dict", b"", b""),
    ("POST", "/echo", b'{"x": 1}', b""),
    ("POST", "/echo", b"{not json", b""),
    ("GET", "/query", b"", b"q=1&q=2"),
    ("GET", "/boom", b"", b""),
    ("GET", "/bad", b"", b""),
    ("GET", "/unencodable", b"", b""),
    ("GET", "/surrogate", b"", b""),
    ("GET", "/both", b"", b""),
    ("HEAD", "/both", b"", b""),
    ("GET", "/item/7", b"", b""),
    ("GET", "/slash", b"", b""),
    ("GET", "/post-only", b"", b""),
    ("PUT", "/", b"", b""),
    ("GET", "/missing", b"", b""),
    ("WS", "/", b"", b""),
]


async def answers(app: Any, caplog: pytest.LogCaptureFixture) -> list[tuple[list[Message], list[str]]]:
    """Every request of ``REQUESTS``, each from a client address of its own and with the process's client-log
    windows empty: what other requests (and earlier tests) logged must not suppress a line compared here."""
    got = []
    for n, (method, path, body, query) in enumerate(REQUESTS):
        caplog.clear()
        client_log.suppressed, client_log._all = 0, type(client_log._all)(time.monotonic())
        with caplog.at_level(logging.INFO, logger="scallion"):
            messages = await exchange(app, method, path, body=body, query=query, client=(f"10.0.0.{n + 1}", 50000))
        lines = [f"{r.levelname} {r.getMessage()} {r.exc_info[1] if r.exc_info else ''}" for r in caplog.records]
        got.append((messages, lines))
    return got


async def test_an_app_without_middleware_serves_its_static_routes_directly() -> None:
    app = make_app().build()
    assert set(app.direct) >= {"/", "/json", "/echo", "/both", "/slash/"}
    assert set(app.direct["/"]) == {"GET", "HEAD"}  # HEAD is GET's where there is no HEAD route
    assert set(app.direct["/echo"]) == {"POST"}
    assert "/item/{name}" not in app.direct  # dynamic routes go through the chain


async def test_direct_routes_answer_and_log_exactly_as_the_chain(caplog: pytest.LogCaptureFixture) -> None:
    direct = make_app().build()
    chained = make_app().build()
    chained.direct = {}  # the same bare App, every request through its handler chain
    assert direct.bare and chained.bare
    got, expected = await answers(direct, caplog), await answers(chained, caplog)
    for (method, path, _, _), mine, theirs in zip(REQUESTS, got, expected, strict=True):
        assert mine == theirs, f"{method} {path}"
    by_path = {f"{m} {p} {b.decode()}".strip(): answer for (m, p, b, _), answer in zip(REQUESTS, got, strict=True)}
    hello = by_path["GET /"][0]
    assert hello == [
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"13")],
        },
        {"type": "http.response.body", "body": b"Hello, world!"},
    ]
    assert by_path["GET /long"][0][0]["headers"][1] == (b"content-length", b"5000")
    assert by_path["GET /unicode"][0][1]["body"] == "héllo ✓".encode()
    assert by_path["HEAD /both"][0][1]["body"] == b"head or get: HEAD"
    assert by_path['POST /echo {"x": 1}'][0][1]["body"] == b'{"got":{"x":1},"method":"POST","agent":"fast-path-test"}'
    assert by_path["GET /query"][0][1]["body"] == b'{"q":["1","2"]}'
    status = {key: answer[0][0]["status"] for key, answer in by_path.items()}
    assert status["GET /boom"] == status["GET /unencodable"] == status["GET /surrogate"] == 500
    assert status['POST /echo {"x": 1}'] == 200 and status["POST /echo {not json"] == status["GET /bad"] == 400
    assert status["GET /slash"] == 308 and status["GET /post-only"] == status["PUT /"] == 405
    assert status["GET /missing"] == 404 and status["GET /none"] == 204
    boom = " ".join(by_path["GET /boom"][1])
    assert "handler test_http_fast_path.make_app.<locals>.boom failed on GET /boom" in boom and "boom" in boom
    unencodable = " ".join(by_path["GET /unencodable"][1])
    assert "route handler test_http_fast_path.make_app.<locals>.unencodable returned Unencodable" in unencodable
    assert [line.split(":")[0] for line in by_path["POST /echo {not json"][1]] == ["INFO 400 for POST /echo"]


async def test_malformed_json_on_a_direct_route_is_400_without_traceback(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app()
    with caplog.at_level(logging.INFO):
        sent = await exchange(app, "POST", "/echo", body=b"{not json")
        sent = await exchange(app, "POST", "/echo", body=b"{not json")  # the second one is direct
    assert sent[0]["status"] == 400 and sent[1]["body"].startswith(b"Bad Request:")
    assert not any(record.exc_info for record in caplog.records)


async def test_request_is_current_only_while_the_direct_handler_runs() -> None:
    app = App()
    seen: list[str] = []

    @app.route("/here")
    async def here() -> str:
        seen.append(request.path)
        return "ok"

    for _ in range(2):  # the first request compiles the app through the chain, the second is direct
        sent = await exchange(app, "GET", "/here")
        assert sent[1]["body"] == b"ok"
        with pytest.raises(OutsideHandler):  # this task called the app: the request was reset after it
            _ = request.path
    assert seen == ["/here", "/here"] and "/here" in app.direct


async def test_a_middleware_or_a_host_check_turns_the_direct_path_off() -> None:
    seen: list[str] = []

    def wrap_seen(next_middleware: Any) -> Any:
        async def look(handler: Any, request: dict[str, Any]) -> Any:
            seen.append(request["path"])
            return await next_middleware(handler, request)

        return look

    with_middleware = make_app()
    with_middleware.use(wrap_seen)
    with_hosts = make_app(allowed_hosts=["example.com"])
    assert with_middleware.build().direct == {} and with_hosts.build().direct == {}
    for _ in range(2):
        assert (await exchange(with_middleware, "GET", "/"))[1]["body"] == b"Hello, world!"
        assert (await exchange(with_hosts, "GET", "/"))[0]["status"] == 400  # host testserver is not allowed
    assert seen == ["/", "/"]
    with_cors = make_app()
    with_cors.use(wrap_cors(allow_origins=["https://a.example"]))
    sent = await exchange(with_cors, "GET", "/", headers=[(b"origin", b"https://a.example")])
    assert (b"access-control-allow-origin", b"https://a.example") in sent[0]["headers"]
    assert with_cors.direct == {}


async def handler_hello(request: dict[str, Any]) -> dict[str, Any]:
    return text("Hello, " + request["endpoint"].__name__)


async def handler_variants(request: dict[str, Any]) -> Any:
    kind = request["query_string"].decode()
    if kind == "html":
        return html("<p>hi</p>")
    if kind == "json":
        return json({"a": 1})
    if kind == "extra":
        return text("extra", headers={"X-Extra": "1"})
    if kind == "cookie":
        return {**text("cookie"), "cookies": {"session": "abc"}}
    if kind == "str-body":
        return {"status": 200, "body": "as str", "headers": {"content-type": "text/plain"}}
    if kind == "no-content":
        return {"status": 204, "body": b"", "headers": {"content-type": "text/plain"}}
    if kind == "length":
        return {"status": 200, "body": b"12", "headers": {"Content-Length": "2"}}
    if kind == "odd-type":
        return {"status": 200, "body": b"odd", "headers": {"content-type": 7}}
    if kind == "stream":

        async def chunks() -> AsyncIterator[bytes]:
            yield b"a"
            yield b"b"

        return {"status": 200, "headers": {"content-type": "text/plain"}, "stream": chunks()}
    if kind == "not-a-response":
        return "just a str"
    return {"status": 200, "body": b"plain", "headers": {"content-type": "text/plain"}, "x-extra-key": 1}


def core_server() -> Any:
    table = [("/", ["GET"], handler_hello), ("/v", ["GET", "POST"], handler_variants)]
    return build_server(apply_middleware(wrap_routes(table))(standard_not_found))


VARIANTS = [
    "html",
    "json",
    "extra",
    "cookie",
    "str-body",
    "no-content",
    "length",
    "odd-type",
    "stream",
    "not-a-response",
    "other",
]


async def test_build_server_routes_directly_and_answers_as_its_chain(caplog: pytest.LogCaptureFixture) -> None:
    direct = core_server()
    chained = core_server()
    chained.direct = {}
    assert set(direct.direct) == {"/", "/v"} and set(direct.direct["/v"]) == {"GET", "HEAD", "POST"}
    assert (await exchange(direct))[1]["body"] == b"Hello, handler_hello"  # request["endpoint"] is set
    for kind in VARIANTS:
        for _ in range(2):  # the first one remembers the content-type header, the second takes the inline case
            caplog.clear()
            with caplog.at_level(logging.ERROR):
                mine = await exchange(direct, "GET", "/v", query=kind.encode())
            mine_logged = [r.getMessage() for r in caplog.records]
            caplog.clear()
            with caplog.at_level(logging.ERROR):
                theirs = await exchange(chained, "GET", "/v", query=kind.encode())
            assert (mine, mine_logged) == (theirs, [r.getMessage() for r in caplog.records]), kind
    html_start = (await exchange(direct, "GET", "/v", query=b"html"))[0]
    assert html_start["headers"] == [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", b"9")]
    assert (await exchange(direct, "GET", "/v", query=b"no-content"))[0]["headers"] == [
        (b"content-type", b"text/plain")
    ]
    odd = await exchange(direct, "GET", "/v", query=b"odd-type")
    assert odd[0]["headers"][0] == (b"content-type", b"7")


async def test_a_chain_with_more_than_routing_or_a_new_handler_is_not_served_directly() -> None:
    seen: list[str] = []

    def wrap_seen(next_middleware: Any) -> Any:
        async def look(handler: Any, request: dict[str, Any]) -> Any:
            seen.append(request["path"])
            return await next_middleware(handler, request)

        return look

    table = [("/", ["GET"], handler_hello)]
    assert build_server(apply_middleware(wrap_seen, wrap_routes(table))(standard_not_found)).direct == {}
    assert build_server(apply_middleware(wrap_routes(table), wrap_seen)(standard_not_found)).direct == {}
    server = build_server(apply_middleware(wrap_routes(table))(standard_not_found))
    assert "/" in server.direct
    server.handler = apply_middleware(wrap_seen, wrap_routes(table))(standard_not_found)  # replaced: direct follows
    assert server.direct == {}
    assert (await exchange(server))[1]["body"] == b"Hello, handler_hello" and seen == ["/"]


def test_headers_dict_remembers_only_shared_values() -> None:
    raw = [
        (b"host", b"example.com"),
        (b"accept", b"text/html"),
        (b"accept", b"application/json"),
        (b"cookie", b"a=1"),
        (b"cookie", b"b=2"),
        (b"authorization", b"Bearer secret-token"),
        (b"user-agent", b"caf\xe9"),
        (b"X-Custom", b"x" * 300),
    ]
    expected = {
        "host": "example.com",
        "accept": "text/html,application/json",
        "cookie": "a=1; b=2",
        "authorization": "Bearer secret-token",
        "user-agent": "café",
        "x-custom": "x" * 300,
    }
    assert headers_dict(raw) == expected
    assert headers_dict(raw) == expected  # the second time from the caches
    assert not {b"Bearer secret-token", b"a=1", b"x" * 300} & header_values.keys()
    assert header_values[b"caf\xe9"] == "café" and header_values[b"example.com"] == "example.com"
    assert headers_dict([(b"user-agent", b"")]) == {"user-agent": ""}
    assert headers_dict([(b"user-agent", b"")]) == {"user-agent": ""}


async def test_the_server_reads_request_headers_as_headers_dict() -> None:
    async def echo_headers(request: dict[str, Any]) -> dict[str, Any]:
        return json(request["headers"])

    server = build_server(apply_middleware(wrap_routes([("/h", ["GET"], echo_headers)]))(standard_not_found))
    raw = [(b"Accept", b"a"), (b"accept", b"b"), (b"cookie", b"a=1"), (b"cookie", b"b=2"), (b"x-latin", b"\xe9t\xe9")]
    for _ in range(2):
        sent = await exchange(server, "GET", "/h", headers=raw)
        expected = headers_dict([(b"host", b"testserver"), (b"user-agent", b"fast-path-test"), *raw])
        assert sent[1]["body"] == json(expected)["body"]
        assert expected["accept"] == "a,b" and expected["cookie"] == "a=1; b=2" and expected["x-latin"] == "été"


async def test_handlers_with_attributes_of_their_own_are_called_as_handlers() -> None:
    class Handler:
        direct = "not a function"
        routes = "not a router"
        direct_router = "not a router either"
        scallion_route_function = None

        async def __call__(self, request: dict[str, Any], *args: Any) -> dict[str, Any]:
            return text("called as a handler")

    assert build_server(Handler()).direct == {}  # an attribute named like the router is not taken for one
    assert (await exchange(build_server(Handler())))[1]["body"] == b"called as a handler"

    class Routed:
        direct = "not a function"

        async def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
            return text("routed")

    server = build_server(apply_middleware(wrap_routes([("/", ["GET"], Routed())]))(standard_not_found))
    assert "/" in server.direct
    assert (await exchange(server))[1]["body"] == b"routed"
