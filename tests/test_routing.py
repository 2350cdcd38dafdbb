"""Routing tables: static and ``{param}`` routes, converters, 404/405/426, trailing slashes, bad routes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from scallion import build_server, standard_not_found, websocket, ws_send
from scallion.middlewares import apply_middleware, wrap_routes
from scallion.response import json, text
from scallion.routing import Router
from scallion.testing import TestClient, WebSocketDenied

pytestmark = pytest.mark.timeout(30)


async def home(request: dict[str, Any]) -> dict[str, Any]:
    return text("home")


async def show(request: dict[str, Any], *args: Any) -> dict[str, Any]:
    return json(
        {
            "args": [str(a) for a in args],
            "types": [type(a).__name__ for a in args],
            "params": {k: str(v) for k, v in request.get("path_params", {}).items()},
        }
    )


@websocket
async def chat(scope: dict[str, Any], receiver: Any, room: str) -> Any:
    async for message in receiver:
        yield ws_send(f"{room}:{message}")


ROUTES = [
    ("/", ["GET"], home),
    ("/users/me", ["GET"], home),
    ("/users/{id:int}", ["GET", "DELETE"], show),
    ("/users/{name}", ["POST"], show),
    ("/price/{amount:float}", ["GET"], show),
    ("/things/{key:uuid}", ["GET"], show),
    ("/files/{rest:path}", ["GET"], show),
    ("/a/{x}/b/{y:int}", ["GET"], show),
    ("/slash/", ["GET"], home),
    ("/chat/{room}", ["WS"], chat),
]
app = build_server(apply_middleware(wrap_routes(ROUTES))(standard_not_found))


async def test_static_and_params_with_converters() -> None:
    async with TestClient(app) as client:
        assert (await client.get("/")).text == "home"
        assert (await client.get("/users/me")).text == "home"
        assert (await client.get("/users/42")).json() == {"args": ["42"], "types": ["int"], "params": {"id": "42"}}
        assert (await client.post("/users/bob")).json()["types"] == ["str"]
        assert (await client.get("/price/2.5")).json()["types"] == ["float"]
        key = uuid.uuid4()
        assert (await client.get(f"/things/{key}")).json()["types"] == ["UUID"]
        assert (await client.get("/files/a/b/c.txt")).json()["args"] == ["a/b/c.txt"]
        assert (await client.get("/a/one/b/2")).json()["params"] == {"x": "one", "y": "2"}


async def test_not_found_and_method_not_allowed() -> None:
    async with TestClient(app) as client:
        assert (await client.get("/nothing")).status == 404
        assert (await client.get("/users/x/y")).status == 404
        wrong = await client.put("/users/42")
        assert wrong.status == 405
        assert wrong.headers["allow"] == "DELETE, GET, HEAD, POST"
        assert (await client.head("/users/42")).status == 200


async def test_http_request_to_websocket_route_is_426() -> None:
    async with TestClient(app) as client:
        response = await client.get("/chat/lobby")
    assert response.status == 426
    assert response.headers["upgrade"] == "websocket"


async def test_websocket_route_params_and_refusals() -> None:
    async with TestClient(app) as client:
        async with client.websocket("/chat/lobby") as ws:
            await ws.send("hi")
            assert await ws.receive() == "lobby:hi"
        with pytest.raises(WebSocketDenied) as missing:
            async with client.websocket("/nowhere"):
                pass
        assert missing.value.status == 404
        with pytest.raises(WebSocketDenied) as wrong:
            async with client.websocket("/users/42"):
                pass
        assert wrong.value.status == 405


async def test_trailing_slash_redirects_keep_the_query() -> None:
    async with TestClient(app) as client:
        moved = await client.get("/slash?x=1")
        assert (moved.status, moved.headers["location"]) == (308, "/slash/?x=1")
        back = await client.get("/users/me/")
        assert (back.status, back.headers["location"]) == (308, "/users/me")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ([("users", ["GET"], home)], "starting with '/'"),
        ([("/u/{id:number}", ["GET"], home)], "unknown type 'number'"),
        ([("/u/{id}/{id}", ["GET"], home)], "appears twice"),
        ([("/u/{1x}", ["GET"], home)], "not a valid parameter name"),
        ([("/u/{id", ["GET"], home)], "unbalanced braces"),
        ([("/u", "GET", home)], "list of str"),
        ([("/u", ["GET"], "home")], "not callable"),
        ([("/u", ["GET"])], "expected \\(path, methods, handler\\)"),
    ],
)
def test_bad_routes_fail_at_compile_time(table: list[Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        wrap_routes(table)


def test_router_table_lists_every_route() -> None:
    rows = Router(ROUTES).table()
    assert ("/chat/{room}", ["WS"], chat) in rows
    assert ("/users/{id:int}", ["GET", "DELETE"], show) in rows


def test_many_routes_match_by_one_compiled_regex() -> None:
    table = [(f"/r{i}/{{id:int}}", ["GET"], show) for i in range(500)]
    router = Router(table)
    found = router.match("/r499/7", "GET")
    assert found is not None and getattr(found, "args", None) == (7,)
    assert router._combined is not None and router._combined.pattern.count("(?P<") == 500
