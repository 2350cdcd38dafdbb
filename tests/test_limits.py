"""Per-connection and per-process websocket limits, in-process (issue 8): message rate, idle timeout, maximum
open websockets, option validation; sends that give the event loop a turn; a departure before the implicit
accept; a handler's own CancelledError; deep and malformed JSON on every JSON path. The read-ahead bounds are in
tests/test_websocket.py, their real-server counterparts in tests/test_servers_backpressure.py and
tests/test_faults.py."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from scallion import App, WebSocketDisconnect, build_server, request, websocket, ws_send
from scallion.connection import SENDS_PER_CHECK
from scallion.middlewares import apply_middleware, wrap_json, wrap_routes
from scallion.testing import TestClient, WebSocketDenied
from scallion.types import Message

pytestmark = pytest.mark.timeout(30)

DEEP_JSON = "[" * 50_000 + "]" * 50_000
"""A 100 KB JSON document nested 50,000 deep: msgspec raises RecursionError on it, whatever the recursion limit
(the issue's case is 1,000 deep with CPython's default limit; mypy, imported by another test, raises the limit to
2**14, under which 1,000 deep decodes fine)."""


class RawClient:
    """The test as the ASGI server of one websocket: the events the app will receive, the messages it sent."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.inbox.put_nowait({"type": "websocket.connect"})
        self.sent: list[Message] = []

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    def serve(self, app: Any, path: str) -> asyncio.Task[None]:
        """Run ``app`` on a websocket scope for ``path`` (no denial extension) in a task."""
        scope = {"type": "websocket", "path": path, "query_string": b"", "headers": [], "extensions": {}}
        return asyncio.create_task(app(scope, self.inbox.get, self.send))


def routed(*routes: tuple[str, list[str], Any], **options: Any) -> Any:
    return build_server(apply_middleware(wrap_routes(list(routes)))(lambda r: None), **options)


@websocket
async def echo(scope: dict[str, Any], receiver: Any) -> Any:
    async for message in receiver:
        yield ws_send(message)


# -- message rate ---------------------------------------------------------------------------------------
async def test_a_client_over_the_message_rate_is_closed_1008() -> None:
    app = routed(("/", ["WS"], echo), max_message_rate=50)
    async with TestClient(app) as client, client.websocket("/") as ws:
        for i in range(200):  # four times the bucket, faster than any refill
            await ws.send(str(i))
        assert await ws.wait_closed() == 1008
        assert "messages per second" in ws.close_reason


async def test_a_client_within_the_message_rate_is_served() -> None:
    app = routed(("/", ["WS"], echo), max_message_rate=50)
    async with TestClient(app) as client, client.websocket("/") as ws:
        for i in range(40):  # within the bucket's one second's worth
            await ws.send(str(i))
            assert await ws.receive() == str(i)


async def test_the_default_message_rate_is_1000_per_second() -> None:
    app = routed(("/", ["WS"], echo))
    assert app.max_message_rate == 1000
    async with TestClient(app) as client, client.websocket("/") as ws:
        for i in range(3000):
            await ws.send(str(i))
        assert await ws.wait_closed() == 1008


# -- idle timeout ---------------------------------------------------------------------------------------
async def test_idle_timeout_closes_1001_and_is_off_by_default() -> None:
    app = routed(("/", ["WS"], echo), idle_timeout=0.1)
    assert routed(("/", ["WS"], echo)).idle_timeout is None
    async with TestClient(app) as client, client.websocket("/") as ws:
        await ws.send("hi")
        assert await ws.receive() == "hi"
        assert await ws.wait_closed(timeout=5) == 1001
        assert "no message for 0.1 s" in ws.close_reason


async def test_messages_keep_an_idle_timeout_away() -> None:
    app = routed(("/", ["WS"], echo), idle_timeout=0.2)
    async with TestClient(app) as client, client.websocket("/") as ws:
        loop = asyncio.get_running_loop()
        end = loop.time() + 0.6  # three timeouts long
        while loop.time() < end:
            await ws.send("ping")
            assert await ws.receive() == "ping"
            await asyncio.sleep(0.05)  # the client's pace, not synchronisation
        assert ws.close_code is None


# -- how many websockets a process holds ----------------------------------------------------------------
async def test_handshakes_beyond_max_websockets_get_503() -> None:
    app = routed(("/", ["WS"], echo), max_websockets=2)
    async with TestClient(app) as client, client.websocket("/") as first, client.websocket("/") as second:
        with pytest.raises(WebSocketDenied) as denied:
            async with client.websocket("/"):
                pass
        assert denied.value.status == 503
        for ws in (first, second):
            await ws.send("still here")
            assert await ws.receive() == "still here"
    async with TestClient(app) as client, client.websocket("/") as again:  # the count went down
        await again.send("x")
        assert await again.receive() == "x"


async def test_without_the_denial_extension_503_is_close_1013() -> None:
    app = routed(("/", ["WS"], echo), max_websockets=1)
    async with TestClient(app) as client, client.websocket("/"):
        sent: list[Message] = []
        events = [{"type": "websocket.connect"}]

        async def receive() -> Message:
            return events.pop(0) if events else {"type": "websocket.disconnect", "code": 1006}

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {"type": "websocket", "path": "/", "query_string": b"", "headers": [], "extensions": {}}
        await asyncio.wait_for(app(scope, receive, send), 5)
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.close"]
    assert sent[1]["code"] == 1013


@pytest.mark.parametrize(
    "option",
    ["max_queue", "max_read_ahead", "max_message_rate", "idle_timeout", "max_websockets", "max_message_size"],
)
@pytest.mark.parametrize("value", [0, -1, "10", True])
def test_bad_limits_are_refused_at_construction(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=option):
        build_server(lambda r: None, **{option: value})
    with pytest.raises(ValueError, match=option):
        App(**{option: value})


def test_limits_that_may_be_off_take_none() -> None:
    app = build_server(lambda r: None, max_message_rate=None, idle_timeout=None)
    assert app.max_message_rate is None and app.idle_timeout is None
    with pytest.raises(ValueError, match="max_queue"):
        build_server(lambda r: None, max_queue=None)


# -- sends never starve the event loop ------------------------------------------------------------------
@pytest.mark.parametrize("style", ["generator", "object"])
async def test_a_handler_sending_forever_cannot_starve_the_event_loop(style: str) -> None:
    """A server whose send never suspends (granian, once the client left) must not let a sending loop starve the
    event loop: a timer still fires (here: the client leaving), the watchdog sees the departure, the handler ends."""
    events: list[str] = []

    async def on_disconnect(scope: dict[str, Any]) -> None:
        events.append("on_disconnect")

    app = App()

    @app.websocket("/gen", on_disconnect=on_disconnect)
    async def gen(scope: dict[str, Any], receiver: Any) -> Any:
        while True:
            yield ws_send("tick")

    @app.websocket("/obj", on_disconnect=on_disconnect)
    async def obj() -> None:
        while True:
            await websocket.send("tick")

    first = [{"type": "websocket.connect"}]
    left = asyncio.Event()
    sends = 0

    async def receive() -> Message:
        if first:
            return first.pop(0)
        await left.wait()
        return {"type": "websocket.disconnect", "code": 1006}

    async def send(message: Message) -> None:  # completes without suspending, as granian's does
        nonlocal sends
        sends += 1
        if sends > 5_000_000:
            raise AssertionError("the event loop starved: the client's departure was never seen")

    async def client_leaves() -> None:
        await asyncio.sleep(0.1)
        left.set()

    scope = {"type": "websocket", "path": "/gen" if style == "generator" else "/obj", "query_string": b"",
             "headers": [], "extensions": {}}
    leaving = asyncio.create_task(client_leaves())
    await asyncio.wait_for(app(scope, receive, send), 10)
    await leaving
    assert events == ["on_disconnect"]
    assert sends > SENDS_PER_CHECK


# -- a departure before the implicit accept -------------------------------------------------------------
async def test_a_client_leaving_before_the_implicit_accept_is_noticed() -> None:
    events: list[str] = []

    async def on_disconnect(scope: dict[str, Any]) -> None:
        events.append("on_disconnect")

    async def on_close(scope: dict[str, Any]) -> None:
        events.append("on_close")

    app = App()

    working = asyncio.Event()

    @app.websocket("/slow-start", on_disconnect=on_disconnect, on_close=on_close)
    async def slow_start() -> None:
        try:
            working.set()
            await asyncio.sleep(30)  # works before its first receive/send
            await websocket.send("too late")
        finally:
            events.append("finally")

    client = RawClient()
    served = client.serve(app, "/slow-start")
    await asyncio.wait_for(working.wait(), 2)
    client.inbox.put_nowait({"type": "websocket.disconnect", "code": 1006})  # the client leaves meanwhile
    await asyncio.wait_for(served, 2)
    assert events == ["finally", "on_disconnect", "on_close"]
    assert client.sent == []


async def test_accept_failing_because_the_client_left_is_a_departure(caplog: pytest.LogCaptureFixture) -> None:
    events: list[str] = []

    async def on_disconnect(scope: dict[str, Any]) -> None:
        events.append("on_disconnect")

    app = App()

    @app.websocket("/late", on_disconnect=on_disconnect)
    async def late() -> None:
        await websocket.send("hello")

    events_in = [{"type": "websocket.connect"}]

    async def receive() -> Message:
        return events_in.pop(0) if events_in else {"type": "websocket.disconnect", "code": 1006}

    async def send(message: Message) -> None:
        raise OSError("ClientDisconnected")  # what uvicorn raises once the client is gone

    scope = {"type": "websocket", "path": "/late", "query_string": b"", "headers": [], "extensions": {}}
    with caplog.at_level(logging.WARNING, logger="scallion"):
        await asyncio.wait_for(app(scope, receive, send), 2)
    assert events == ["on_disconnect"]
    assert "failed" not in caplog.text


# -- a handler's own CancelledError ---------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/gen", "/obj"])
async def test_a_handler_raising_cancelled_error_itself_closes_1011_and_does_not_escape(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = App()

    async def cancelled_work() -> None:
        task = asyncio.create_task(asyncio.sleep(10))
        task.cancel()
        await task  # raises CancelledError in the handler, though nobody cancelled the handler

    @app.websocket("/gen")
    async def gen(scope: dict[str, Any], receiver: Any) -> Any:
        yield ws_send("hi")
        await cancelled_work()

    @app.websocket("/obj")
    async def obj() -> None:
        await websocket.send("hi")
        await cancelled_work()

    with caplog.at_level(logging.ERROR, logger="scallion"):
        async with TestClient(app) as client, client.websocket(path) as ws:
            assert await ws.receive() == "hi"
            assert await ws.wait_closed() == 1011
    assert "CancelledError" in caplog.text


# -- JSON: malformed and too deep -----------------------------------------------------------------------
async def test_deep_json_to_receive_json_closes_1007(caplog: pytest.LogCaptureFixture) -> None:
    app = App()

    @app.websocket("/json")
    async def json_echo() -> None:
        await websocket.send_json(await websocket.receive_json())

    with caplog.at_level(logging.DEBUG, logger="scallion"):
        async with TestClient(app) as client, client.websocket("/json") as ws:
            await ws.send(DEEP_JSON)
            assert await ws.wait_closed() == 1007
            assert "nested too deeply" in ws.close_reason
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("body", [DEEP_JSON, "{not json"])
async def test_bad_json_to_wrap_json_is_400(body: str, caplog: pytest.LogCaptureFixture) -> None:
    async def handler(request: dict[str, Any]) -> dict[str, Any]:
        return {"status": 200, "body": b"ok"}

    app = build_server(apply_middleware(wrap_json)(handler))
    with caplog.at_level(logging.DEBUG, logger="scallion"):
        async with TestClient(app) as client:
            response = await client.post("/", body=body, headers={"content-type": "application/json"})
    assert response.status == 400
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize(("body", "reason"), [(DEEP_JSON, "nested too deeply"), ("{not json", "malformed JSON")])
async def test_bad_json_to_request_json_in_an_app_route_is_400(
    body: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = App()

    @app.route("/data", methods=["POST"])
    async def data() -> Any:
        return await request.json()

    with caplog.at_level(logging.DEBUG, logger="scallion"):
        async with TestClient(app) as client:
            response = await client.post("/data", body=body, headers={"content-type": "application/json"})
            good = await client.post("/data", body="[1, 2]", headers={"content-type": "application/json"})
    assert response.status == 400
    assert reason in response.text
    assert good.json() == [1, 2]
    assert "Traceback" not in caplog.text
    assert "failed" not in caplog.text


async def test_invalid_json_is_still_a_msgspec_decode_error() -> None:
    import msgspec

    from scallion.errors import BadRequest, InvalidJSON, decode_json

    with pytest.raises(msgspec.DecodeError):
        decode_json("{")
    assert issubclass(InvalidJSON, BadRequest)


async def test_receive_json_closes_1007_even_when_caught() -> None:
    app = App()

    @app.websocket("/json")
    async def json_echo() -> None:
        try:
            await websocket.receive_json()
        except WebSocketDisconnect as exc:
            assert exc.code == 1007
            raise

    async with TestClient(app) as client, client.websocket("/json") as ws:
        await ws.send("{nope")
        assert await ws.wait_closed() == 1007


# -- log lines name what failed -------------------------------------------------------------------------
async def test_an_exception_in_a_middleware_is_logged_as_the_middleware(caplog: pytest.LogCaptureFixture) -> None:
    from scallion import standard_not_found

    def wrap_broken(next_middleware: Any) -> Any:
        async def broken(handler: Any, request: dict[str, Any]) -> Any:
            raise ValueError("boom in middleware")

        return broken

    app = build_server(apply_middleware(wrap_broken, wrap_routes([("/", ["WS"], echo)]))(standard_not_found))
    with caplog.at_level(logging.ERROR, logger="scallion"):
        async with TestClient(app) as client:
            with pytest.raises(WebSocketDenied):
                async with client.websocket("/"):
                    pass
            assert (await client.get("/")).status == 500
    assert caplog.text.count("wrap_broken.<locals>.broken failed") == 2
    assert "standard_not_found" not in caplog.text


async def test_an_exception_in_a_route_handler_is_logged_as_the_handler(caplog: pytest.LogCaptureFixture) -> None:
    app = App()

    @app.route("/bad")
    async def bad() -> str:
        raise ValueError("boom in handler")

    with caplog.at_level(logging.ERROR, logger="scallion"):
        async with TestClient(app) as client:
            assert (await client.get("/bad")).status == 500
    assert "handler test_limits.test_an_exception_in_a_route_handler_is_logged_as_the_handler.<locals>.bad failed" in (
        caplog.text
    )


# -- what may go on the wire ----------------------------------------------------------------------------
@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 2999, 5000, "1000"])
async def test_close_codes_that_may_not_be_sent_are_refused_where_written(code: Any) -> None:
    from scallion import ws_close

    with pytest.raises(ValueError, match="not a close code a server may send"):
        ws_close(code)
    app = App()

    @app.websocket("/close")
    async def close() -> None:
        await websocket.send("hi")
        await websocket.close(code)

    async with TestClient(app) as client, client.websocket("/close") as ws:
        assert await ws.receive() == "hi"
        assert await ws.wait_closed() == 1011  # the handler's ValueError


async def test_accepting_a_subprotocol_the_client_did_not_offer_is_a_value_error() -> None:
    app = App()
    errors: list[str] = []

    @app.websocket("/sub")
    async def sub() -> None:
        try:
            await websocket.accept(subprotocol="chat.v2")
        except ValueError as exc:
            errors.append(str(exc))
            await websocket.accept(subprotocol="chat.v1")
        await websocket.send("ok")

    async with TestClient(app) as client, client.websocket("/sub", subprotocols=["chat.v1"]) as ws:
        assert await ws.receive() == "ok"
        assert ws.subprotocol == "chat.v1"
    assert errors == [
        "cannot accept with subprotocol 'chat.v2': the client offered 'chat.v1'; choose one of them or None"
    ]


async def test_a_shutdown_during_the_handshake_closes_and_runs_on_close() -> None:
    started = asyncio.Event()
    events: list[str] = []

    async def slow_connect(scope: dict[str, Any]) -> Any:
        started.set()
        await asyncio.sleep(30)
        return ws_accept()

    async def on_close(scope: dict[str, Any]) -> None:
        events.append("on_close")

    from scallion import ws_accept

    app = App(shutdown_timeout=2)

    @app.websocket("/slow", on_connect=slow_connect, on_close=on_close)
    async def slow() -> None:
        await websocket.send("never")

    client = RawClient()
    served = client.serve(app, "/slow")
    await asyncio.wait_for(started.wait(), 2)
    loop = asyncio.get_running_loop()
    begun = loop.time()
    await asyncio.wait_for(app.close_websockets(), 3)
    assert loop.time() - begun < 1  # not the whole shutdown_timeout
    await asyncio.wait_for(served, 2)
    assert [m["type"] for m in client.sent] == ["websocket.close"]  # refused: the client sees 403
    assert events == ["on_close"]
