"""wrap_content_type: a content-type guessed from the path for responses without one."""

from __future__ import annotations

from typing import Any

from scallion import build_server, standard_not_found, websocket
from scallion.middlewares import apply_middleware, wrap_content_type, wrap_routes
from scallion.response import ws_send
from scallion.testing import TestClient

SHARED: dict[str, Any] = {"status": 200, "body": b"data", "headers": {}}


def serve(factory: Any, response: dict[str, Any]) -> Any:
    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        return response

    return build_server(apply_middleware(factory)(handler))


async def test_used_directly_guesses_from_extension() -> None:
    async with TestClient(serve(wrap_content_type, {"status": 200, "body": b"x"})) as client:
        css = await client.get("/style.css")
        js = await client.get("/app.JS")
        gz = await client.get("/archive.tar.gz")
        unknown = await client.get("/blob.unknownext")
        none = await client.get("/no/extension.d/file")
    assert css.headers["content-type"] == "text/css"
    assert "javascript" in js.headers["content-type"]
    assert gz.headers["content-type"] == "application/gzip"
    assert unknown.headers["content-type"] == "application/octet-stream"
    assert none.headers["content-type"] == "application/octet-stream"


async def test_called_with_options() -> None:
    ext_form = wrap_content_type(additional_content_types={".foo": "x/foo", "bar": "x/bar"})
    shallot_form = wrap_content_type({"x/baz": [".baz", "qux"]})
    async with TestClient(serve(ext_form, {"status": 200, "body": b"x"})) as client:
        assert (await client.get("/a.foo")).headers["content-type"] == "x/foo"
        assert (await client.get("/a.bar")).headers["content-type"] == "x/bar"
        assert (await client.get("/a.html")).headers["content-type"] == "text/html"
    async with TestClient(serve(shallot_form, {"status": 200, "body": b"x"})) as client:
        assert (await client.get("/a.baz")).headers["content-type"] == "x/baz"
        assert (await client.get("/a.qux")).headers["content-type"] == "x/baz"
    async with TestClient(serve(wrap_content_type(), {"status": 200, "body": b"x"})) as client:
        assert (await client.get("/a.png")).headers["content-type"] == "image/png"


async def test_default_only_when_there_is_a_body() -> None:
    async with TestClient(serve(wrap_content_type, {"status": 200, "body": b""})) as client:
        empty = await client.get("/unknown")
        known = await client.get("/known.txt")
    assert "content-type" not in empty.headers
    assert known.headers["content-type"] == "text/plain"


async def test_default_can_be_disabled() -> None:
    factory = wrap_content_type(default_content_type=None)
    async with TestClient(serve(factory, {"status": 200, "body": b"x"})) as client:
        assert "content-type" not in (await client.get("/unknown")).headers


async def test_existing_content_type_kept_and_no_body_statuses_untouched() -> None:
    given = {"status": 200, "body": b"{}", "headers": {"Content-Type": "application/json"}}
    async with TestClient(serve(wrap_content_type, given)) as client:
        assert (await client.get("/x.html")).headers["content-type"] == "application/json"
    async with TestClient(serve(wrap_content_type, {"status": 304})) as client:
        assert "content-type" not in (await client.get("/x.html")).headers


async def test_streams_get_the_default() -> None:
    async def chunks() -> Any:
        yield b"a"

    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        return {"status": 200, "stream": chunks()}

    async with TestClient(build_server(apply_middleware(wrap_content_type)(handler))) as client:
        response = await client.get("/download")
    assert response.body == b"a"
    assert response.headers["content-type"] == "application/octet-stream"


async def test_response_dict_is_not_mutated() -> None:
    async with TestClient(serve(wrap_content_type, SHARED)) as client:
        assert (await client.get("/a.css")).headers["content-type"] == "text/css"
        assert (await client.get("/a.html")).headers["content-type"] == "text/html"
    assert SHARED == {"status": 200, "body": b"data", "headers": {}}


async def test_websocket_session_passes_through() -> None:
    @websocket
    async def ws(scope: dict[str, Any], receiver: Any) -> Any:
        yield ws_send("hello")

    handler = apply_middleware(wrap_content_type, wrap_routes([("/ws.json", ["WS"], ws)]))(standard_not_found)
    async with TestClient(build_server(handler)) as client, client.websocket("/ws.json") as sock:
        assert await sock.receive() == "hello"
