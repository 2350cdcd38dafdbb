"""Typed client messages that keep the socket open when the handler wants (issue 10, item 4), in both styles and
through ``merge``; and honest handshake failures (item 3): a server-side exception before accept is HTTP 500,
a refusal stays 403, and a subprotocol the client did not offer is refused where it is chosen."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import pytest

from scallion import App, InvalidMessage, build_server, websocket, ws_accept, ws_send
from scallion.middlewares import apply_middleware, wrap_routes
from scallion.pubsub import MemoryBroker, merge
from scallion.testing import TestClient, WebSocketDenied, WebSocketProtocolError
from scallion.types import Message

pytestmark = pytest.mark.timeout(30)


class Say(msgspec.Struct):
    text: str
    room: str = "lobby"


# -- typed receive, Emmett style ------------------------------------------------------------------------
async def test_receive_json_on_error_raise_keeps_the_socket_open() -> None:
    app = App()

    @app.websocket("/say")
    async def say() -> None:
        while True:
            try:
                message = await websocket.receive_json(type=Say, on_error="raise")
            except InvalidMessage as invalid:
                await websocket.send_json({"error": invalid.reason})
                continue
            await websocket.send_json({"ok": message.text})

    async with TestClient(app) as client, client.websocket("/say") as ws:
        await ws.send_json({"text": 5})
        error = (await ws.receive_json())["error"]
        assert "Expected `str`, got `int` - at `$.text`" in error
        await ws.send("{not json")
        assert "invalid JSON" in (await ws.receive_json())["error"]
        await ws.send('{"text": "deep", "room": ' + "[" * 1000 + "]" * 1000 + "}")
        assert "invalid message: Expected `str`, got `array` - at `$.room`" in (await ws.receive_json())["error"]
        await ws.send_json({"text": "hi"})
        assert await ws.receive_json() == {"ok": "hi"}  # still open


async def test_receive_json_closes_1007_by_default() -> None:
    app = App()

    @app.websocket("/say")
    async def say() -> None:
        await websocket.receive_json(type=Say)

    async with TestClient(app) as client, client.websocket("/say") as ws:
        await ws.send_json({"room": "x"})
        assert await ws.wait_closed() == 1007
        assert "missing required field `text`" in ws.close_reason


async def test_invalid_message_carries_the_data() -> None:
    app = App()
    seen: list[InvalidMessage] = []

    @app.websocket("/say")
    async def say() -> None:
        try:
            await websocket.receive_json(type=Say, on_error="raise")
        except InvalidMessage as invalid:
            seen.append(invalid)
            await websocket.send("noted")

    async with TestClient(app) as client, client.websocket("/say") as ws:
        await ws.send('{"text": null}')
        assert await ws.receive() == "noted"
    assert seen[0].data == '{"text": null}'
    assert isinstance(seen[0], ValueError)


@pytest.mark.parametrize("on_error", ["ignore", "", None])
def test_a_bad_on_error_is_refused_before_anything_is_read(on_error: Any) -> None:
    app = App()

    @app.websocket("/say")
    async def say() -> None:
        try:
            await websocket.receive_json(type=Say, on_error=on_error)
        except ValueError as exc:
            await websocket.send(str(exc))
        try:
            websocket.json(Say, on_error=on_error)
        except ValueError as exc:
            await websocket.send(str(exc))

    with TestClient(app) as client, client.websocket("/say") as ws:
        assert "on_error" in ws.receive()
        assert "on_error" in ws.receive()


# -- typed receive, generator style ---------------------------------------------------------------------
@websocket
async def typed_chat(scope: dict[str, Any], receiver: Any) -> Any:
    async for item in receiver.json(Say, on_error="yield"):
        if isinstance(item, InvalidMessage):
            yield ws_send(f"bad message: {item.reason}")
        else:
            yield ws_send(f"{item.room}: {item.text}")


async def test_the_generator_style_iterates_typed_messages_and_answers_bad_ones() -> None:
    app = build_server(apply_middleware(wrap_routes([("/chat", ["WS"], typed_chat)]))(lambda r: None))
    async with TestClient(app) as client, client.websocket("/chat") as ws:
        await ws.send_json({"text": "hi", "room": "a"})
        assert await ws.receive() == "a: hi"
        await ws.send_json({"txt": "typo"})
        assert (await ws.receive()).startswith("bad message: invalid message: Object missing required field `text`")
        await ws.send_json({"text": "still here"})
        assert await ws.receive() == "lobby: still here"


async def test_the_typed_iterator_closes_1007_by_default_and_ends_with_the_connection() -> None:
    ended: list[str] = []

    @websocket
    async def strict(scope: dict[str, Any], receiver: Any) -> Any:
        async for say in receiver.json(Say):
            yield ws_send(say.text)
        ended.append("loop ended")

    app = build_server(apply_middleware(wrap_routes([("/strict", ["WS"], strict)]))(lambda r: None))
    async with TestClient(app) as client:
        async with client.websocket("/strict") as ws:
            await ws.send_json({"text": "one"})
            assert await ws.receive() == "one"
            await ws.send("[]")
            assert await ws.wait_closed() == 1007
        async with client.websocket("/strict") as ws:
            await ws.send_json({"text": "two"})
            assert await ws.receive() == "two"
            await ws.close()
    assert ended == ["loop ended", "loop ended"]  # the iterator ends with the connection, whoever closed it


# -- typed receive through merge ------------------------------------------------------------------------
async def test_typed_messages_through_merge_with_a_subscription() -> None:
    broker = MemoryBroker()
    app = App()

    @app.websocket("/room/{room}")
    async def room_chat(scope: dict[str, Any], receiver: Any, room: str) -> Any:
        async with broker.subscribe(room) as subscription:
            yield ws_send("joined")
            async for item in merge(receiver.json(Say, on_error="yield"), subscription):
                if isinstance(item, InvalidMessage):
                    yield ws_send("bad message")
                elif isinstance(item, Say):
                    await broker.publish(room, item.text)
                else:
                    yield ws_send(f"{item.channel}: {item.data}")

    async with TestClient(app) as client, client.websocket("/room/r1") as ws:
        assert await ws.receive() == "joined"
        await ws.send_json({"text": "hello"})
        assert await ws.receive() == "r1: hello"
        await ws.send_json({"wrong": 1})
        assert await ws.receive() == "bad message"
        await ws.send_json({"text": "again"})
        assert await ws.receive() == "r1: again"


# -- honest handshake failures --------------------------------------------------------------------------
async def test_a_server_bug_before_accept_is_http_500_and_a_refusal_403(caplog: pytest.LogCaptureFixture) -> None:
    app = App()

    @app.websocket("/bug")
    async def bug() -> None:
        await websocket.send(42)  # type: ignore[arg-type]  # a TypeError before the implicit accept

    @app.websocket("/raises")
    async def raises() -> None:
        raise RuntimeError("before its first receive")

    @app.websocket("/refuses")
    async def refuses() -> None:
        await websocket.close()

    with caplog.at_level(logging.ERROR, logger="scallion"):
        async with TestClient(app) as client:
            for path, status in [("/bug", 500), ("/raises", 500), ("/refuses", 403)]:
                with pytest.raises(WebSocketDenied) as denied:
                    async with client.websocket(path):
                        pass
                assert denied.value.status == status, path
    assert caplog.text.count("Traceback") == 2
    assert "test_a_server_bug_before_accept_is_http_500_and_a_refusal_403.<locals>.bug failed" in caplog.text


async def test_a_middleware_failing_on_a_handshake_is_http_500() -> None:
    def wrap_broken(next_middleware: Any) -> Any:
        async def broken(handler: Any, request: dict[str, Any]) -> Any:
            raise LookupError("no session store")

        return broken

    @websocket
    async def echo(scope: dict[str, Any], receiver: Any) -> Any:
        async for message in receiver:
            yield ws_send(message)

    app = build_server(apply_middleware(wrap_broken, wrap_routes([("/", ["WS"], echo)]))(lambda r: None))
    async with TestClient(app) as client:
        with pytest.raises(WebSocketDenied) as denied:
            async with client.websocket("/"):
                pass
    assert denied.value.status == 500


async def test_without_the_denial_extension_a_server_bug_before_accept_is_a_close() -> None:
    app = App()

    @app.websocket("/raises")
    async def raises() -> None:
        raise RuntimeError("before its first receive")

    first = [{"type": "websocket.connect"}]
    sent: list[Message] = []

    async def receive() -> Message:
        return first.pop(0) if first else {"type": "websocket.disconnect", "code": 1006}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/raises", "query_string": b"", "headers": [], "extensions": {}}
    await app(scope, receive, send)
    assert [m["type"] for m in sent] == ["websocket.close"]


async def test_on_connect_choosing_a_subprotocol_the_client_did_not_offer_fails_there() -> None:
    async def pick(scope: dict[str, Any]) -> Any:
        return ws_accept(subprotocol="sub-123")

    app = App()

    @app.websocket("/sub", on_connect=pick)
    async def sub() -> None:
        await websocket.send("hi")

    async with TestClient(app) as client:
        with pytest.raises(WebSocketDenied) as denied:  # a ValueError in on_connect: 500, logged
            async with client.websocket("/sub"):
                pass
        assert denied.value.status == 500
        async with client.websocket("/sub", subprotocols=["sub-123"]) as ws:
            assert ws.subprotocol == "sub-123"
            assert await ws.receive() == "hi"


async def test_the_test_client_refuses_a_subprotocol_it_did_not_offer_as_browsers_do() -> None:
    async def raw(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (event := (await receive())["type"]) != "lifespan.shutdown":
                await send({"type": event + ".complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await receive()
        await send({"type": "websocket.accept", "subprotocol": "chat"})
        while (await receive())["type"] != "websocket.disconnect":
            pass

    async with TestClient(raw) as client:
        with pytest.raises(WebSocketProtocolError, match="did not offer"):
            async with client.websocket("/"):
                pass
        async with client.websocket("/", subprotocols=["chat"]) as ws:
            assert ws.subprotocol == "chat"
