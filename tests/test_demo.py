"""The `make demo` app (examples/demo.py) in process: its page, /hello, the echo socket, and the chat over the
realtime protocol (rooms, nicknames, presence, history on join, typing notices, refusals). The same chat in
Chromium, across a server restart with Redis: tests/test_browser_demo.py."""

from __future__ import annotations

from typing import Any

import pytest

from scallion.testing import TestClient

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def demo() -> Any:
    from examples.demo import app

    return app


def test_the_page_hello_and_the_asyncapi_document(demo: Any) -> None:
    with TestClient(demo) as client:
        page = client.get("/")
        assert page.status == 200 and 'import { connect } from "/realtime/client.js"' in page.text
        assert client.get("/hello").text == "Hello from scallion!"
        assert client.get("/realtime/client.js").status == 200
        document = client.get("/asyncapi.json").json()
        assert {"realtime.say", "realtime.typing"} <= set(document["operations"])


def test_echo(demo: Any) -> None:
    with TestClient(demo) as client, client.websocket("/echo") as ws:
        ws.send("ping")
        assert ws.receive() == "ping"


def join(ws: Any, channel: str, id: int, **options: Any) -> Any:
    ws.send_json({"event": "$join", "data": {"channel": channel, **options}, "id": id})
    return ws.receive_json()


def test_chat_rooms_presence_history_typing(demo: Any) -> None:
    with TestClient(demo) as client, client.websocket("/realtime?nick=ada") as ada:
        assert join(ada, "room:lobby", 1, presence=True)["data"]["members"] == {"ada": {"nick": "ada"}}
        ada.receive_json()  # her own presence
        ada.send_json({"event": "say", "data": {"room": "room:lobby", "text": "first"}, "id": 2})
        offset = ada.receive_json()["data"]
        line = ada.receive_json()["data"]
        assert line["offset"] == offset and line["data"]["nick"] == "ada" and line["data"]["text"] == "first"
        with client.websocket("/realtime?nick=bob") as bob:
            reply = join(bob, "room:lobby", 1, presence=True, history=50)
            assert set(reply["data"]["members"]) == {"ada", "bob"}
            assert bob.receive_json()["data"]["data"]["text"] == "first"  # history on join
            assert bob.receive_json()["data"]["member"] == "bob"  # then his own arrival
            assert ada.receive_json()["data"]["member"] == "bob"
            join(ada, "typing:room:lobby", 3)
            bob.send_json({"event": "typing", "data": {"room": "room:lobby"}})
            typing = {"channel": "typing:room:lobby", "data": {"nick": "bob"}, "offset": None}
            assert ada.receive_json()["data"] == typing
            assert join(bob, "room:nope nope", 4)["error"]["code"] == "forbidden"
            bob.send_json({"event": "say", "data": {"room": "room:lobby", "text": "  "}, "id": 5})
            assert bob.receive_json()["error"] == {"code": "empty", "message": "say something"}
        assert ada.receive_json()["data"] == {
            "channel": "room:lobby", "event": "leave", "member": "bob", "info": {"nick": "bob"}
        }
