"""wrap_parameters: query_params, form_params and params."""

from __future__ import annotations

from typing import Any

from scallion import App, build_server, request, standard_not_found, websocket
from scallion.datastructures import QueryParams
from scallion.middlewares import apply_middleware, wrap_parameters, wrap_routes
from scallion.response import json, ws_send
from scallion.testing import TestClient


async def dump(req: dict[str, Any]) -> dict[str, Any]:
    assert all(isinstance(req[k], QueryParams) for k in ("query_params", "form_params", "params"))
    return json({k: req[k] for k in ("query_params", "form_params", "params")})


server = build_server(apply_middleware(wrap_parameters)(dump))


async def test_query_params() -> None:
    async with TestClient(server) as client:
        response = await client.get("/?a=1&b=x&b=y&empty=&name=J%C3%BCrgen+M")
    assert response.json()["query_params"] == {"a": "1", "b": ["x", "y"], "empty": "", "name": "Jürgen M"}
    assert response.json()["form_params"] == {}
    assert response.json()["params"] == response.json()["query_params"]


async def test_raw_utf8_query_string_is_decoded_as_utf8() -> None:
    async with TestClient(server) as client:
        raw = await client.get("/?city=Zürich")  # the query string carries raw UTF-8 bytes
        encoded = await client.get("/", query={"city": "Zürich"})
    assert raw.json()["query_params"] == encoded.json()["query_params"] == {"city": "Zürich"}


async def test_form_params_and_merge_form_wins() -> None:
    async with TestClient(server) as client:
        response = await client.post("/?a=query&only=q", data={"a": "form", "tags": ["x", "y"], "ü": "ß"})
    body = response.json()
    assert body["query_params"] == {"a": "query", "only": "q"}
    assert body["form_params"] == {"a": "form", "tags": ["x", "y"], "ü": "ß"}
    assert body["params"] == {"a": "form", "only": "q", "tags": ["x", "y"], "ü": "ß"}


async def test_multipart_fields_are_form_params_too() -> None:
    async with TestClient(server) as client:
        response = await client.post("/?a=query&only=q", data={"a": "form", "tags": ["x", "y"]}, files={"f": b"1"})
    body = response.json()
    assert body["form_params"] == {"a": "form", "tags": ["x", "y"]}
    assert body["params"] == {"a": "form", "only": "q", "tags": ["x", "y"]}


async def test_form_needs_the_form_content_type() -> None:
    async with TestClient(server) as client:
        response = await client.post("/", body=b"a=1", headers={"content-type": "text/plain"})
        charset = await client.post(
            "/", body=b"a=1", headers={"content-type": "application/x-www-form-urlencoded; charset=UTF-8"}
        )
    assert response.json()["form_params"] == {}
    assert charset.json()["form_params"] == {"a": "1"}


async def test_missing_names_read_as_none() -> None:
    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        params = req["params"]
        return json([params["nope"], params.nope, params.a])

    async with TestClient(build_server(apply_middleware(wrap_parameters)(handler))) as client:
        response = await client.get("/?a=1")
    assert response.json() == [None, None, "1"]


async def test_with_app_use() -> None:
    app = App()
    app.use(wrap_parameters)

    @app.route("/search", methods=["GET", "POST"])
    async def search() -> Any:
        return {
            "q": request.query_params.q,
            "form": request.body_params,
            "params": request["params"],
        }

    async with TestClient(app) as client:
        get = await client.get("/search?q=onion")
        post = await client.post("/search?q=onion", data={"q": "leek", "n": "2"})
    assert get.json() == {"q": "onion", "form": {}, "params": {"q": "onion"}}
    assert post.json() == {"q": "onion", "form": {"q": "leek", "n": "2"}, "params": {"q": "leek", "n": "2"}}


async def test_query_params_visible_in_websocket_scope() -> None:
    @websocket
    async def ws(scope: dict[str, Any], receiver: Any) -> Any:
        yield ws_send(f"{scope['query_params']['room']}|{scope['params']['user']}|{dict(scope['form_params'])}")

    handler = apply_middleware(wrap_parameters, wrap_routes([("/ws", ["WS"], ws)]))(standard_not_found)
    async with TestClient(build_server(handler)) as client, client.websocket("/ws?room=lobby&user=ann") as sock:
        assert await sock.receive() == "lobby|ann|{}"


async def test_query_params_visible_to_emmett_websocket() -> None:
    app = App()
    app.use(wrap_parameters)

    @app.websocket("/chat")
    async def chat() -> None:
        await websocket.send_json({"room": websocket.query_params.room, "tags": websocket.query_params["t"]})

    async with TestClient(app) as client, client.websocket("/chat", query={"room": "r1", "t": ["a", "b"]}) as sock:
        assert await sock.receive_json() == {"room": "r1", "tags": ["a", "b"]}
