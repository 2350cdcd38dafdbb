"""The Emmett-style ``App`` facade over HTTP: routes, return values, ``request``, hooks, middlewares."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import pytest

from scallion import App, request
from scallion.response import text
from scallion.testing import TestClient

pytestmark = pytest.mark.timeout(30)


class Point(msgspec.Struct):
    x: int
    y: int


def make_app() -> App:
    app = App()

    @app.route()
    async def hello() -> str:
        return "hello"

    @app.route("/bytes")
    async def raw() -> bytes:
        return b"\x00\x01"

    @app.route("/json/{id:int}", methods=["GET", "POST"])
    async def data(id: int) -> Any:
        return {"id": id, "method": request.method, "q": request.query_params.q, "missing": request.query_params["no"]}

    @app.route("/struct")
    async def struct() -> Point:
        return Point(1, 2)

    @app.route("/response")
    async def response() -> dict[str, Any]:
        return text("teapot", status=418)

    @app.route("/nothing")
    async def nothing() -> None:
        return None

    @app.route("/inspect", methods=["POST"])
    async def inspect() -> Any:
        return {
            "path": request.path,
            "headers": request.headers["x-h"],
            "cookies": request.cookies,
            "form": request.body_params,
            "json": await request.json() if request.headers.get("content-type") == "application/json" else None,
            "scheme": request.scheme,
            "host": request.host,
        }

    @app.route("/bad")
    async def bad() -> Any:
        return object()

    return app


async def test_return_values_become_responses() -> None:
    async with TestClient(make_app()) as client:
        hello = await client.get("/hello")
        assert (hello.status, hello.text, hello.headers["content-type"]) == (200, "hello", "text/plain; charset=utf-8")
        assert (await client.get("/bytes")).body == b"\x00\x01"
        assert (await client.get("/json/3?q=x")).json() == {"id": 3, "method": "GET", "q": "x", "missing": None}
        assert (await client.get("/struct")).json() == {"x": 1, "y": 2}
        assert (await client.get("/response")).status == 418
        assert (await client.get("/nothing")).status == 204


async def test_request_object() -> None:
    async with TestClient(make_app()) as client:
        form = await client.post("/inspect", data={"a": "1", "b": ["2", "3"]}, headers={"x-h": "v", "cookie": "c=d"})
        assert form.json()["form"] == {"a": "1", "b": ["2", "3"]}
        assert form.json()["cookies"] == {"c": "d"}
        assert form.json()["headers"] == "v"
        assert form.json()["scheme"] == "http" and form.json()["host"] == "testserver"
        body = await client.post("/inspect", json={"k": [1]}, headers={"x-h": "v"})
        assert body.json()["json"] == {"k": [1]}


async def test_unencodable_result_is_500_naming_the_function(caplog: pytest.LogCaptureFixture) -> None:
    async with TestClient(make_app()) as client:
        with caplog.at_level(logging.ERROR, logger="scallion"):
            assert (await client.get("/bad")).status == 500
    assert "make_app.<locals>.bad returned object" in caplog.text


def test_request_outside_a_handler_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="only available while an App handles an HTTP request"):
        _ = request.path


async def test_hooks_and_config() -> None:
    app = App()
    events: list[str] = []

    @app.on_start
    async def connect() -> dict[str, Any]:
        events.append("start")
        return {"db": 1}

    @app.on_stop
    def disconnect() -> None:
        events.append("stop")

    @app.route("/")
    async def index() -> Any:
        return request.scope["config"]

    async with TestClient(app) as client:
        assert (await client.get("/")).json() == {"db": 1}
    assert events == ["start", "stop"]


async def test_use_runs_middlewares_before_routing() -> None:
    app = App()
    order: list[str] = []

    def tag(name: str) -> Any:
        def wrap(next_middleware: Any) -> Any:
            async def middleware(handler: Any, req: dict[str, Any]) -> Any:
                order.append(name)
                return await next_middleware(handler, req)

            return middleware

        return wrap

    app.use(tag("a"), tag("b"))

    @app.route("/")
    async def index() -> str:
        return "ok"

    async with TestClient(app) as client:
        assert (await client.get("/")).text == "ok"
        assert (await client.get("/missing")).status == 404
    assert order == ["a", "b", "a", "b"]
    with pytest.raises(RuntimeError, match="already serving"):
        app.use(tag("c"))


def test_bad_declarations_fail_early() -> None:
    app = App()
    with pytest.raises(ValueError, match="unknown type"):

        @app.route("/x/{id:nope}")
        async def typo(id: int) -> str:
            return "no"

    with pytest.raises(TypeError, match="async def"):

        @app.route("/sync")
        def sync() -> str:
            return "no"

    with pytest.raises(TypeError, match="async generator or async def"):

        @app.websocket("/ws")
        def not_async() -> None:
            pass


def test_routes_lists_http_and_websocket_routes() -> None:
    app = make_app()

    @app.websocket()
    async def live() -> None:
        pass

    rows = app.routes()
    assert ("/hello", ["GET"], "test_app.make_app.<locals>.hello") in rows
    assert ("/live", ["WS"], "test_app.test_routes_lists_http_and_websocket_routes.<locals>.live") in rows
