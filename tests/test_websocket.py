"""The websocket lifecycle in-process (TestClient), both handler styles: every row of the close-code table."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from scallion import App, WebSocketDisconnect, build_server, websocket, ws_accept, ws_close, ws_deny, ws_send
from scallion.connection import WATCH_PERIOD, WebSocketClosedError
from scallion.middlewares import apply_middleware, wrap_routes
from scallion.testing import TestClient, WebSocketDenied

pytestmark = pytest.mark.timeout(30)


class Recorder:
    """Hooks that record what ran, in order, and an event per name."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.seen: dict[str, asyncio.Event] = {}

    def mark(self, name: str) -> None:
        self.events.append(name)
        self.seen.setdefault(name, asyncio.Event()).set()

    async def wait(self, name: str, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self.seen.setdefault(name, asyncio.Event()).wait(), timeout)

    async def on_disconnect(self, scope: dict[str, Any]) -> None:
        self.mark("on_disconnect")

    async def on_close(self, scope: dict[str, Any]) -> None:
        self.mark("on_close")


def generator_app(rec: Recorder, **options: Any) -> Any:
    """Seed-000 handlers behind a routing table."""
    hooks = {"on_disconnect": rec.on_disconnect, "on_close": rec.on_close}

    @websocket(**hooks)
    async def echo(scope: dict[str, Any], receiver: Any) -> Any:
        try:
            async for message in receiver:
                if message == "close":
                    yield ws_close(4001, "bye")
                    yield ws_send("never sent")
                elif message == "return":
                    return
                elif message == "boom":
                    raise ValueError("boom")
                elif message == "wrong":
                    yield 42
                else:
                    yield ws_send(message)
        finally:
            rec.mark("finally")

    @websocket(**hooks)
    async def ticker(scope: dict[str, Any], receiver: Any) -> Any:
        try:
            n = 0
            while True:
                n += 1
                yield ws_send(str(n))
                await asyncio.sleep(0.001)
        finally:
            rec.mark("finally")

    @websocket(**hooks)
    async def sleeper(scope: dict[str, Any], receiver: Any) -> Any:
        try:
            yield ws_send("sleeping")
            await asyncio.Event().wait()
        finally:
            rec.mark("finally")

    async def refuse(scope: dict[str, Any]) -> dict[str, Any]:
        return ws_close()

    async def deny(scope: dict[str, Any]) -> dict[str, Any]:
        return ws_deny(401, b"who are you?", {"www-authenticate": "Token"})

    async def broken(scope: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("on_connect broke")

    async def choose(scope: dict[str, Any]) -> dict[str, Any]:
        return ws_accept(subprotocol="sub-123")

    def guarded(on_connect: Any) -> Any:
        @websocket(on_connect=on_connect, **hooks)
        async def handler(scope: dict[str, Any], receiver: Any) -> Any:
            async for message in receiver:
                yield ws_send(message)

        return handler

    @websocket(**hooks)
    async def coroutine(scope: dict[str, Any], receiver: Any) -> None:
        rec.mark(await receiver.receive())

    routes = [
        ("/echo", ["WS"], echo),
        ("/ticker", ["WS"], ticker),
        ("/sleeper", ["WS"], sleeper),
        ("/refuse", ["WS"], guarded(refuse)),
        ("/deny", ["WS"], guarded(deny)),
        ("/broken", ["WS"], guarded(broken)),
        ("/choose", ["WS"], guarded(choose)),
        ("/coroutine", ["WS"], coroutine),
    ]
    return build_server(apply_middleware(wrap_routes(routes))(lambda request: None), **options)


def object_app(rec: Recorder, **options: Any) -> App:
    """Emmett-style handlers on an App."""
    app = App(**options)
    hooks = {"on_disconnect": rec.on_disconnect, "on_close": rec.on_close}

    @app.websocket("/echo", **hooks)
    async def echo() -> None:
        try:
            async for message in websocket:
                if message == "close":
                    await websocket.close(4001, "bye")
                    with pytest.raises(WebSocketClosedError):
                        await websocket.send("never sent")
                    await websocket.close()  # a second close is harmless
                    return
                if message == "return":
                    return
                if message == "boom":
                    raise ValueError("boom")
                if message == "json":
                    await websocket.send_json(await websocket.receive_json())
                    continue
                await websocket.send(message)
        finally:
            rec.mark("finally")

    @app.websocket("/ticker", **hooks)
    async def ticker() -> None:
        try:
            n = 0
            while True:
                n += 1
                await websocket.send(str(n))
                await asyncio.sleep(0.001)
        finally:
            rec.mark("finally")

    @app.websocket("/sleeper", **hooks)
    async def sleeper() -> None:
        try:
            await websocket.send("sleeping")
            await asyncio.Event().wait()
        finally:
            rec.mark("finally")

    @app.websocket("/early", **hooks)
    async def early() -> None:
        raise RuntimeError("before accept")

    @app.websocket("/denied", **hooks)
    async def denied() -> None:
        await websocket.deny(402, b"pay first")

    return app


STYLES = {"generator": generator_app, "object": object_app}


@pytest.fixture(params=list(STYLES))
def style(request: pytest.FixtureRequest) -> Any:
    return STYLES[request.param]


async def test_echo_then_client_close_runs_disconnect_then_close(style: Any) -> None:
    rec = Recorder()
    async with TestClient(style(rec)) as client, client.websocket("/echo") as ws:
        await ws.send("hi")
        assert await ws.receive() == "hi"
        await ws.send(b"\x00bin")
        assert await ws.receive() == b"\x00bin"
    assert rec.events == ["finally", "on_disconnect", "on_close"]


async def test_handler_return_closes_1000(style: Any) -> None:
    rec = Recorder()
    async with TestClient(style(rec)) as client, client.websocket("/echo") as ws:
        await ws.send("return")
        assert await ws.wait_closed() == 1000
    assert rec.events == ["finally", "on_close"]


async def test_close_with_code_and_nothing_after(style: Any) -> None:
    rec = Recorder()
    async with TestClient(style(rec)) as client, client.websocket("/echo") as ws:
        await ws.send("close")
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive()
        assert (closed.value.code, ws.close_code, ws.close_reason) == (4001, 4001, "bye")
    assert rec.events == ["finally", "on_close"]


async def test_exception_after_accept_is_1011_and_logged(style: Any, caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()
    with caplog.at_level(logging.ERROR, logger="scallion"):
        async with TestClient(style(rec)) as client, client.websocket("/echo") as ws:
            await ws.send("boom")
            assert await ws.wait_closed() == 1011
    assert "ValueError: boom" in caplog.text and "echo" in caplog.text
    assert rec.events == ["finally", "on_close"]


@pytest.mark.parametrize("path", ["/ticker", "/sleeper"])
async def test_client_vanishing_is_noticed_while_handler_only_sends_or_sleeps(style: Any, path: str) -> None:
    rec = Recorder()
    async with TestClient(style(rec)) as client:
        ws = client.websocket(path)
        await ws.__aenter__()
        await ws.receive()
        left = time.monotonic()
        await ws.close(1001)  # returns once the application has finished
        noticed = time.monotonic() - left
        assert rec.events == ["finally", "on_disconnect", "on_close"]
        print(f"noticed after {noticed * 1000:.1f} ms")
        assert noticed < 4 * WATCH_PERIOD + 0.1, f"the departure took {noticed:.3f}s to notice"


async def test_server_shutdown_closes_open_websockets_with_1001(style: Any) -> None:
    rec = Recorder()
    client = TestClient(style(rec))
    await client.__aenter__()
    ws = client.websocket("/sleeper")
    await ws.__aenter__()
    assert await ws.receive() == "sleeping"
    await client.__aexit__(None, None, None)
    assert await ws.wait_closed() == 1001
    assert rec.events == ["finally", "on_close"]


async def test_message_over_max_size_is_1009(style: Any) -> None:
    rec = Recorder()
    async with TestClient(style(rec, max_message_size=10)) as client, client.websocket("/echo") as ws:
        await ws.send("short")
        assert await ws.receive() == "short"
        await ws.send("x" * 11)
        assert await ws.wait_closed() == 1009
    assert rec.events == ["finally", "on_close"]


async def test_invalid_json_is_1007() -> None:
    rec = Recorder()
    async with TestClient(object_app(rec)) as client, client.websocket("/echo") as ws:
        await ws.send("json")
        await ws.send_json({"a": [1]})
        assert await ws.receive_json() == {"a": [1]}
        await ws.send("json")
        await ws.send("{not json")
        assert await ws.wait_closed() == 1007
    assert rec.events == ["finally", "on_close"]


async def test_generator_yielding_a_wrong_type_is_1011_naming_the_handler(caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()
    with caplog.at_level(logging.ERROR, logger="scallion"):
        async with TestClient(generator_app(rec)) as client, client.websocket("/echo") as ws:
            await ws.send("wrong")
            assert await ws.wait_closed() == 1011
    assert "TypeError" in caplog.text and "generator_app.<locals>.echo yielded 42" in caplog.text


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [("/refuse", 403, b""), ("/broken", 500, b"Internal Server Error"), ("/deny", 401, b"who are you?")],
)
async def test_refusals_before_accept(path: str, status: int, body: bytes) -> None:
    rec = Recorder()
    async with TestClient(generator_app(rec)) as client:
        with pytest.raises(WebSocketDenied) as denied:
            async with client.websocket(path):
                pass
    assert (denied.value.status, denied.value.body) == (status, body)
    assert rec.events == ["on_close"]


@pytest.mark.parametrize(("path", "status"), [("/early", 500), ("/denied", 402)])
async def test_object_style_refusals(path: str, status: int) -> None:
    rec = Recorder()
    async with TestClient(object_app(rec)) as client:
        with pytest.raises(WebSocketDenied) as denied:
            async with client.websocket(path):
                pass
    assert denied.value.status == status
    assert rec.events == ["on_close"]


async def test_on_connect_chooses_a_subprotocol() -> None:
    async with (
        TestClient(generator_app(Recorder())) as client,
        client.websocket("/choose", subprotocols=["sub-123"]) as ws,
    ):
        assert ws.subprotocol == "sub-123"


async def test_plain_coroutine_handler_runs_then_closes() -> None:
    rec = Recorder()
    async with TestClient(generator_app(rec)) as client, client.websocket("/coroutine") as ws:
        await ws.send("one message")
        assert await ws.wait_closed() == 1000
    assert rec.events == ["one message", "on_close"]


async def test_read_ahead_within_max_queue_loses_nothing() -> None:
    release = asyncio.Event()
    received: list[str] = []

    @websocket
    async def slow(scope: dict[str, Any], receiver: Any) -> Any:
        yield ws_send("ready")
        await release.wait()
        async for message in receiver:
            received.append(message)
            if len(received) == 8:
                yield ws_send("got all")

    app = build_server(apply_middleware(wrap_routes([("/", ["WS"], slow)]))(lambda r: None), max_queue=8)
    async with TestClient(app) as client, client.websocket("/") as ws:
        assert await ws.receive() == "ready"
        for i in range(8):
            await ws.send(str(i))
        deadline = time.monotonic() + 5
        while ws._to_app.qsize() > 0 and time.monotonic() < deadline:
            await asyncio.sleep(WATCH_PERIOD)
        assert ws._to_app.qsize() == 0  # all 8 read ahead while the handler did not read
        release.set()
        assert await ws.receive() == "got all"
    assert received == [str(i) for i in range(8)]


@pytest.mark.parametrize(("limit", "messages"), [("max_queue", 9), ("max_read_ahead", 3)])
async def test_read_ahead_beyond_its_bounds_closes_1008_and_cancels_the_handler(limit: str, messages: int) -> None:
    events: list[str] = []

    async def on_close(scope: dict[str, Any]) -> None:
        events.append("on_close")

    @websocket(on_close=on_close)
    async def sleeper(scope: dict[str, Any], receiver: Any) -> Any:
        yield ws_send("ready")
        try:
            await asyncio.Event().wait()  # never reads
        finally:
            events.append("finally")

    options = {"max_queue": 8} if limit == "max_queue" else {"max_read_ahead": 2000, "max_message_size": 1500}
    app = build_server(apply_middleware(wrap_routes([("/", ["WS"], sleeper)]))(lambda r: None), **options)
    async with TestClient(app) as client, client.websocket("/") as ws:
        assert await ws.receive() == "ready"
        for i in range(messages):
            await ws.send(f"{i:04d}" + "x" * 996)
        assert await ws.wait_closed() == 1008
        assert "read-ahead full" in ws.close_reason
    assert events == ["finally", "on_close"]


async def test_websocket_object_attributes() -> None:
    app = App()

    @app.websocket("/attrs/{room}")
    async def attrs(room: str) -> None:
        await websocket.accept(subprotocol="b")
        await websocket.send_json(
            {
                "room": room,
                "scheme": websocket.scheme,
                "path": websocket.path,
                "host": websocket.host,
                "header": websocket.headers["x-h"],
                "cookies": websocket.cookies,
                "q": websocket.query_params.q,
                "qi": websocket.query_params["q"],
                "many": websocket.query_params.many,
                "missing": [websocket.query_params.nope, websocket.query_params["nope"]],
                "path_params": websocket.path_params,
                "subprotocols": websocket.subprotocols,
                "client": list(websocket.client),
                "scope_type": websocket.scope["type"],
            }
        )

    async with TestClient(app) as client:
        ws = client.websocket(
            "/attrs/lobby?q=1&many=a&many=b", subprotocols=["a", "b"], headers={"x-h": "v", "cookie": "s=1; t=2"}
        )
        async with ws:
            data = await ws.receive_json()
            assert ws.subprotocol == "b"
    assert data == {
        "room": "lobby",
        "scheme": "ws",
        "path": "/attrs/lobby",
        "host": "testserver",
        "header": "v",
        "cookies": {"s": "1", "t": "2"},
        "q": "1",
        "qi": "1",
        "many": ["a", "b"],
        "missing": [None, None],
        "path_params": {"room": "lobby"},
        "subprotocols": ["a", "b"],
        "client": ["127.0.0.1", 50000],
        "scope_type": "websocket",
    }


async def test_default_path_and_generator_on_app() -> None:
    app = App()

    @app.websocket()
    async def live(scope: dict[str, Any], receiver: Any, **params: Any) -> Any:
        async for message in receiver:
            yield ws_send(message.upper())

    @app.websocket("/rooms/{room}")
    @websocket
    async def room(scope: dict[str, Any], receiver: Any, room: str) -> Any:
        yield ws_send(room)

    async with TestClient(app) as client:
        async with client.websocket("/live") as ws:
            await ws.send("abc")
            assert await ws.receive() == "ABC"
        async with client.websocket("/rooms/7") as ws:
            assert await ws.receive() == "7"
            assert await ws.wait_closed() == 1000


async def test_concurrent_receive_is_refused() -> None:
    app = App()

    @app.websocket("/")
    async def twice() -> None:
        first = asyncio.ensure_future(websocket.receive())
        await asyncio.sleep(0)
        try:
            await websocket.receive()
        except RuntimeError as exc:
            await websocket.send(str(exc))
        first.cancel()

    async with TestClient(app) as client, client.websocket("/") as ws:
        assert "already being awaited" in await ws.receive()


def test_websocket_outside_a_handler_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="only available inside a websocket handler"):
        _ = websocket.path


def test_sync_websocket_client() -> None:
    with TestClient(object_app(Recorder())) as client, client.websocket("/echo") as ws:
        ws.send("sync")
        assert ws.receive() == "sync"


def test_proxies_are_inspectable_outside_a_handler() -> None:
    from scallion import request
    from scallion.handlers import WebSocketHandler

    assert not isinstance(websocket, WebSocketHandler)
    assert not isinstance(request, dict)
    assert "websocket" in repr(websocket) and "request" in repr(request)
