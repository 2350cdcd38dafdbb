"""scallion.realtime in process (TestClient): the envelope, typed dispatch and its errors, channels with
authorization, resume, history and presence, in an App and in a routing table beside both handler styles."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import pytest

from scallion import App, build_server, websocket, ws_send
from scallion.middlewares import apply_middleware, wrap_routes
from scallion.pubsub import History, MemoryBroker
from scallion.realtime import Client, Realtime, RealtimeError
from scallion.testing import TestClient

pytestmark = pytest.mark.timeout(20)


class Say(msgspec.Struct):
    text: str
    times: int = 1


class Ack(msgspec.Struct):
    echoed: str


def make(broker: MemoryBroker | None = None, **options: Any) -> Realtime:
    rt = Realtime(broker if broker is not None else MemoryBroker(), **options)

    @rt.on("say")
    async def say(msg: Say) -> Ack:
        return Ack(msg.text * msg.times)

    @rt.on("whoami")
    async def whoami(_: None, client: Client) -> str:
        return str(client.connection.query_params["name"])

    @rt.on("ping")
    async def ping() -> str:
        return "pong"

    @rt.on("boom")
    async def boom(_: Any) -> None:
        raise ZeroDivisionError("kaboom")

    @rt.on("refuse")
    async def refuse(_: Any) -> None:
        raise RealtimeError("quota", "too many")

    @rt.on("post")
    async def post(msg: Say) -> str | None:
        return await rt.publish("room", {"text": msg.text})

    return rt


def app_with(rt: Realtime) -> App:
    app = App()
    rt.mount(app, "/rt")
    return app


def test_typed_request_and_reply() -> None:
    with TestClient(app_with(make())) as client, client.websocket("/rt?name=ada") as ws:
        ws.send_json({"event": "say", "data": {"text": "ab", "times": 2}, "id": 1})
        assert ws.receive_json() == {"id": 1, "data": {"echoed": "abab"}}
        ws.send_json({"event": "whoami", "id": 2})
        assert ws.receive_json() == {"id": 2, "data": "ada"}
        ws.send_json({"event": "ping", "id": 3})
        assert ws.receive_json() == {"id": 3, "data": "pong"}
        ws.send_json({"event": "say", "data": {"text": "quiet"}})  # no id: no reply
        ws.send_json({"event": "ping", "id": 4})
        assert ws.receive_json() == {"id": 4, "data": "pong"}


def test_errors_are_replies_and_the_socket_stays_open(caplog: pytest.LogCaptureFixture) -> None:
    with TestClient(app_with(make())) as client, client.websocket("/rt") as ws:
        ws.send_json({"event": "say", "data": {"text": 5}, "id": 1})
        reply = ws.receive_json()
        assert reply["id"] == 1 and reply["error"]["code"] == "invalid_payload"
        assert reply["error"]["field"] == "$.text" and "Expected `str`, got `int`" in reply["error"]["message"]
        ws.send_json({"event": "say", "data": {"txt": "typo"}, "id": 2})
        assert ws.receive_json()["error"]["field"] == "$.text"
        ws.send_json({"event": "nope", "id": 3})
        assert ws.receive_json() == {"id": 3, "error": {"code": "unknown_event", "message": "unknown event 'nope'"}}
        with caplog.at_level(logging.ERROR, logger="scallion.realtime"):
            ws.send_json({"event": "boom", "id": 4})
            assert ws.receive_json() == {"id": 4, "error": {"code": "internal", "message": "internal error"}}
        assert any(r.exc_info and "kaboom" in str(r.exc_info[1]) for r in caplog.records)
        ws.send_json({"event": "refuse", "id": 5})
        assert ws.receive_json() == {"id": 5, "error": {"code": "quota", "message": "too many"}}
        ws.send("not json")
        assert ws.receive_json()["error"]["code"] == "invalid_message"
        ws.send_json({"event": "nope"})  # without an id the error has none
        assert ws.receive_json() == {"error": {"code": "unknown_event", "message": "unknown event 'nope'"}}
        ws.send_json({"event": "say", "data": {"text": "still open"}, "id": 6})
        assert ws.receive_json() == {"id": 6, "data": {"echoed": "still open"}}


def test_declaration_mistakes() -> None:
    rt = Realtime()
    with pytest.raises(ValueError, match="protocol's own"):
        rt.on("$join")
    with pytest.raises(TypeError, match="async def"):
        rt.on("sync")(lambda msg: msg)

    @rt.on("x")
    async def x() -> None: ...

    with pytest.raises(ValueError, match="already has a handler"):
        rt.on("x")


def test_channels_join_publish_leave() -> None:
    with TestClient(app_with(make())) as client, client.websocket("/rt") as one, client.websocket("/rt") as two:
        for ws in (one, two):
            ws.send_json({"event": "$join", "data": {"channel": "room"}, "id": 1})
            assert ws.receive_json() == {"id": 1, "data": {"channel": "room", "recovered": False}}
        one.send_json({"event": "post", "data": {"text": "hello"}, "id": 2})
        offset = one.receive_json()["data"]  # the reply comes before the channel message: the handler publishes first
        expected = {"event": "$message", "data": {"channel": "room", "data": {"text": "hello"}, "offset": offset}}
        assert one.receive_json() == expected and two.receive_json() == expected
        two.send_json({"event": "$leave", "data": {"channel": "room"}, "id": 3})
        assert two.receive_json() == {"id": 3, "data": None}
        two.send_json({"event": "$leave", "data": {"channel": "room"}, "id": 4})
        assert two.receive_json()["error"]["code"] == "not_joined"
        one.send_json({"event": "post", "data": {"text": "again"}, "id": 5})
        one.receive_json(), one.receive_json()
        two.send_json({"event": "ping", "id": 6})
        assert two.receive_json() == {"id": 6, "data": "pong"}  # nothing from the room came before


def test_authorize_refusal_is_an_error_reply() -> None:
    seen: list[tuple[str, str]] = []

    async def authorize(scope: dict[str, Any], channel: str) -> bool:
        seen.append((scope["path"], channel))
        return channel.startswith("public:")

    with TestClient(app_with(make(authorize=authorize))) as client, client.websocket("/rt") as ws:
        ws.send_json({"event": "$join", "data": {"channel": "secret"}, "id": 1})
        assert ws.receive_json() == {"id": 1, "error": {"code": "forbidden", "message": "not allowed to join 'secret'"}}
        ws.send_json({"event": "$join", "data": {"channel": "public:a"}, "id": 2})
        assert ws.receive_json()["data"]["channel"] == "public:a"
    assert seen == [("/rt", "secret"), ("/rt", "public:a")]


def test_resume_from_last_offset_exactly_once_in_order() -> None:
    broker = MemoryBroker()
    rt = make(broker)
    with TestClient(app_with(rt)) as client:
        with client.websocket("/rt") as ws:
            ws.send_json({"event": "$join", "data": {"channel": "room"}, "id": 1})
            ws.receive_json()
            ws.send_json({"event": "post", "data": {"text": "m1"}, "id": 2})
            ws.receive_json()
            last = ws.receive_json()["data"]["offset"]
        sent = []
        with client.websocket("/rt") as other:  # meanwhile another client posts
            for n in range(2, 6):
                other.send_json({"event": "post", "data": {"text": f"m{n}"}, "id": n})
                sent.append(other.receive_json()["data"])
        with client.websocket("/rt") as ws:
            ws.send_json({"event": "$join", "data": {"channel": "room", "since": last}, "id": 1})
            assert ws.receive_json() == {"id": 1, "data": {"channel": "room", "recovered": True}}
            got = [ws.receive_json()["data"] for _ in range(4)]
            assert [m["data"]["text"] for m in got] == ["m2", "m3", "m4", "m5"]
            assert [m["offset"] for m in got] == sent
            ws.send_json({"event": "post", "data": {"text": "live"}, "id": 9})
            ws.receive_json()
            assert ws.receive_json()["data"]["data"] == {"text": "live"}  # no repeat between replay and live


def test_resume_from_a_foreign_offset_is_not_recovered_and_history_fills_in() -> None:
    with TestClient(app_with(make())) as client, client.websocket("/rt") as ws:
        for n in range(3):
            ws.send_json({"event": "post", "data": {"text": f"old{n}"}, "id": n})
            ws.receive_json()
        ws.send_json({"event": "$join", "data": {"channel": "room", "since": "1-1", "history": 2}, "id": 7})
        assert ws.receive_json() == {"id": 7, "data": {"channel": "room", "recovered": False}}
        assert [ws.receive_json()["data"]["data"]["text"] for _ in range(2)] == ["old1", "old2"]


def test_history_on_join() -> None:
    rt = make(MemoryBroker(history=History(size=10)))
    with TestClient(app_with(rt)) as client, client.websocket("/rt") as ws:
        for n in range(4):
            ws.send_json({"event": "post", "data": {"text": f"h{n}"}, "id": n})
            ws.receive_json()
        ws.send_json({"event": "$join", "data": {"channel": "room", "history": 3}, "id": 9})
        assert ws.receive_json()["id"] == 9
        assert [ws.receive_json()["data"]["data"]["text"] for _ in range(3)] == ["h1", "h2", "h3"]
        ws.send_json({"event": "post", "data": {"text": "new"}, "id": 10})
        ws.receive_json()
        assert ws.receive_json()["data"]["data"] == {"text": "new"}


def test_presence_members_and_events() -> None:
    def member(client: Client, channel: str) -> tuple[str, Any]:
        name = client.connection.query_params["name"]
        return name, {"nick": name}

    with TestClient(app_with(make(member=member))) as client, client.websocket("/rt?name=ada") as ada:
        ada.send_json({"event": "$join", "data": {"channel": "room", "presence": True}, "id": 1})
        assert ada.receive_json()["data"]["members"] == {"ada": {"nick": "ada"}}
        own = {"channel": "room", "event": "join", "member": "ada", "info": {"nick": "ada"}}
        assert ada.receive_json()["data"] == own
        with client.websocket("/rt?name=bob") as bob:
            bob.send_json({"event": "$join", "data": {"channel": "room", "presence": True}, "id": 1})
            assert set(bob.receive_json()["data"]["members"]) == {"ada", "bob"}
            assert ada.receive_json() == {
                "event": "$presence",
                "data": {"channel": "room", "event": "join", "member": "bob", "info": {"nick": "bob"}},
            }
        assert ada.receive_json()["data"]["event"] == "leave"  # bob's socket went: he left the channel


def test_pushes_and_publish_from_an_http_route() -> None:
    rt = make()

    @rt.on("nudge")
    async def nudge(_: None, client: Client) -> None:
        await client.emit("notice", {"hello": True})

    app = app_with(rt)

    @app.route("/announce", methods=["POST"])
    async def announce() -> dict[str, Any]:
        from scallion import request

        return {"offset": await rt.publish("room", {"text": request.body.decode()})}

    with TestClient(app) as client, client.websocket("/rt") as ws:
        ws.send_json({"event": "nudge", "id": 1})
        assert ws.receive_json() == {"event": "notice", "data": {"hello": True}}
        assert ws.receive_json() == {"id": 1, "data": None}
        ws.send_json({"event": "$join", "data": {"channel": "room"}, "id": 2})
        ws.receive_json()
        offset = client.post("/announce", body="from http").json()["offset"]
        assert ws.receive_json()["data"] == {"channel": "room", "data": {"text": "from http"}, "offset": offset}


def test_in_a_routing_table_beside_seed_and_emmett_handlers() -> None:
    rt = make()

    @websocket
    async def echo(scope: Any, receiver: Any) -> Any:
        async for message in receiver:
            yield ws_send(message)

    app = App()
    rt.mount(app, "/rt")

    @app.websocket("/emmett")
    async def emmett() -> None:
        async for message in websocket:
            await websocket.send(f"emmett: {message}")

    table = build_server(apply_middleware(wrap_routes([*rt.routes("/realtime"), ("/echo", ["WS"], echo)]))(
        lambda request: {"status": 404, "body": b""}
    ))
    for target, path in ((table, "/realtime"), (app, "/rt")):
        with TestClient(target) as client:
            with client.websocket(path) as ws:
                ws.send_json({"event": "say", "data": {"text": "t"}, "id": 1})
                assert ws.receive_json() == {"id": 1, "data": {"echoed": "t"}}
            js = client.get(f"{path}/client.js")
            assert js.status == 200 and js.headers["content-type"].startswith("text/javascript")
            assert "export function connect" in js.text
    with TestClient(table) as client, client.websocket("/echo") as ws:
        ws.send("plain")
        assert ws.receive() == "plain"
    with TestClient(app) as client, client.websocket("/emmett") as ws:
        ws.send("hi")
        assert ws.receive() == "emmett: hi"
