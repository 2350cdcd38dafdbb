"""AsyncAPI 3.0 documents (scallion.asyncapi) validated against the official JSON Schema of @asyncapi/specs
(fetched by `make asyncapi-schema` into .cache/asyncapi), for a realtime endpoint beside plain routes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

from scallion import App, websocket, ws_send
from scallion.asyncapi import asyncapi_document, describe
from scallion.pubsub import MemoryBroker
from scallion.realtime import Realtime
from scallion.testing import TestClient

pytestmark = pytest.mark.timeout(30)

SPECS = Path(__file__).resolve().parent.parent / ".cache/asyncapi/node_modules/@asyncapi/specs/schemas/3.0.0.json"


@pytest.fixture(scope="module")
def validator() -> Any:
    assert SPECS.exists(), "the AsyncAPI JSON Schema is missing: run `make asyncapi-schema` (npm @asyncapi/specs)"
    schema = json.loads(SPECS.read_text())
    return jsonschema.Draft7Validator(schema)


class Say(msgspec.Struct):
    """A chat line."""

    text: str
    room: str = "lobby"


class Ack(msgspec.Struct):
    ok: bool


def build() -> App:
    rt = Realtime(MemoryBroker(), title="chat")

    @rt.on("say")
    async def say(msg: Say) -> Ack:
        """Say something in a room."""
        return Ack(True)

    @rt.on("ping")
    async def ping() -> str:
        return "pong"

    rt.emits("notice", Say)
    app = App()
    rt.mount(app, "/realtime")

    @app.websocket("/echo/{room}")
    @describe(receives=str, sends=str)
    async def echo(scope: Any, receiver: Any, room: str) -> Any:
        """Echo every text message."""
        async for message in receiver:
            yield ws_send(message)

    @app.websocket("/typed")
    @describe(receives=Say, sends=Ack)
    async def typed() -> None:
        await websocket.send("x")

    app.asyncapi("/asyncapi.json")
    return app


def test_the_document_is_valid_asyncapi_3(validator: Any) -> None:
    document = asyncapi_document(build())
    errors = sorted(validator.iter_errors(document), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])
    assert document["asyncapi"] == "3.0.0"
    assert {c["address"] for c in document["channels"].values()} == {"/realtime", "/echo/{room}", "/typed"}
    operations = document["operations"]
    say = operations["realtime.say"]
    assert say["action"] == "receive" and say["summary"] == "Say something in a room."
    assert say["reply"]["messages"][0] == {"$ref": "#/channels/realtime/messages/say.reply"}
    assert operations["realtime._message"]["action"] == "send"
    assert operations["realtime.notice"]["action"] == "send"
    payload = document["components"]["messages"]["realtime.say"]["payload"]
    assert payload["properties"]["event"] == {"const": "say"}
    assert payload["properties"]["data"] == {"$ref": "#/components/schemas/Say"}
    assert document["components"]["schemas"]["Say"]["required"] == ["text"]
    echo = document["channels"]["echo_room"]
    assert echo["parameters"] == {"room": {"description": "the {room} segment of the path"}}
    assert document["components"]["messages"]["echo_room.receives"]["contentType"] == "text/plain"
    assert operations["typed.sends"]["messages"] == [{"$ref": "#/channels/typed/messages/sends"}]


def test_a_routing_table_too(validator: Any) -> None:
    rt = Realtime()

    @rt.on("add")
    async def add(numbers: list[int]) -> int:
        return sum(numbers)

    @websocket
    async def plain(scope: Any, receiver: Any) -> Any:
        yield ws_send("hi")

    document = asyncapi_document([*rt.routes("/rt"), ("/plain", ["WS"], plain), ("/", ["GET"], plain)])
    assert not list(validator.iter_errors(document))
    assert set(document["channels"]) == {"rt", "plain"}
    assert document["components"]["messages"]["rt.add"]["payload"]["properties"]["data"] == {
        "type": "array",
        "items": {"type": "integer"},
    }


def test_the_app_serves_it(validator: Any) -> None:
    with TestClient(build()) as client:
        answer = client.get("/asyncapi.json")
        assert answer.status == 200 and answer.headers["content-type"] == "application/json"
        assert not list(validator.iter_errors(answer.json()))
        assert "realtime" in answer.json()["channels"]


# -- scallion asyncapi TARGET ----------------------------------------------------------------------------
REPO = Path(__file__).resolve().parent.parent


def test_the_cli_prints_a_valid_document_for_the_demo_and_a_routing_table(validator: Any) -> None:
    import subprocess
    import sys

    for target in ["examples/demo.py", "examples/seed_000.py"]:
        result = subprocess.run(
            [sys.executable, "-m", "scallion", "asyncapi", target], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        document = json.loads(result.stdout)
        validator.validate(document)
        assert document["channels"], target
    missing = subprocess.run(
        [sys.executable, "-m", "scallion", "asyncapi", "tests/apps/lifecycle_gen.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1
    assert "no route table found" in missing.stderr
