"""wrap_json: JSON request bodies decoded into request["json"]."""

from __future__ import annotations

from typing import Any

from scallion import App, build_server, request, websocket
from scallion.middlewares import apply_middleware, wrap_json, wrap_routes
from scallion.response import json, ws_send
from scallion.testing import TestClient


def make_server(calls: list[Any]) -> Any:
    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        calls.append(req["json"])
        return json({"json": req["json"]})

    return build_server(apply_middleware(wrap_json)(handler))


async def test_decodes_json_body() -> None:
    calls: list[Any] = []
    async with TestClient(make_server(calls)) as client:
        response = await client.post("/", json={"a": [1, 2, {"b": None}]})
    assert response.status == 200
    assert response.json() == {"json": {"a": [1, 2, {"b": None}]}}


async def test_json_variants_of_content_type() -> None:
    calls: list[Any] = []
    async with TestClient(make_server(calls)) as client:
        for content_type in ("application/json; charset=utf-8", "application/vnd.api+json", "Application/Problem+JSON"):
            response = await client.post("/", body=b'{"x": 1}', headers={"content-type": content_type})
            assert response.json() == {"json": {"x": 1}}, content_type


async def test_malformed_json_is_400_and_handler_not_called() -> None:
    calls: list[Any] = []
    async with TestClient(make_server(calls)) as client:
        response = await client.post("/", body=b'{"x": ', headers={"content-type": "application/json"})
    assert response.status == 400
    assert "malformed JSON" in response.text
    assert calls == []


async def test_no_json_body_gives_none() -> None:
    calls: list[Any] = []
    async with TestClient(make_server(calls)) as client:
        empty = await client.post("/", headers={"content-type": "application/json"})
        other = await client.post("/", body=b'{"x": 1}', headers={"content-type": "text/plain"})
        get = await client.get("/")
    assert [r.json() for r in (empty, other, get)] == [{"json": None}] * 3


async def test_with_app_use() -> None:
    app = App()
    app.use(wrap_json)

    @app.route("/echo", methods=["POST"])
    async def echo() -> Any:
        return {"via_scope": request["json"], "via_method": await request.json()}

    async with TestClient(app) as client:
        ok = await client.post("/echo", json=[1, "two"])
        bad = await client.post("/echo", body=b"[1,", headers={"content-type": "application/json"})
    assert ok.json() == {"via_scope": [1, "two"], "via_method": [1, "two"]}
    assert bad.status == 400


async def test_websocket_passes_through() -> None:
    @websocket
    async def ws(scope: dict[str, Any], receiver: Any) -> Any:
        yield ws_send(repr(scope["json"]))

    server = build_server(apply_middleware(wrap_json, wrap_routes([("/ws", ["WS"], ws)]))(handler_404))
    async with TestClient(server) as client, client.websocket("/ws") as sock:
        assert await sock.receive() == "None"


async def handler_404(req: dict[str, Any]) -> dict[str, Any]:
    return {"status": 404, "body": b""}
