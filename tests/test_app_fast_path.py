"""An App with no middleware sends its routes' str, bytes, None and JSON results as ready ASGI messages, without
building response dicts (issue 9); what the client gets is exactly what the response-dict path gives, and as soon
as a middleware is used it sees response dicts again."""

from __future__ import annotations

from typing import Any

import pytest

from scallion import App
from scallion.asgi import Ready
from scallion.response import text
from scallion.testing import TestClient

pytestmark = pytest.mark.timeout(30)

RESULTS: dict[str, Any] = {
    "/str": "hello",
    "/bytes": b"\x00\x01",
    "/none": None,
    "/json": {"a": [1, 2]},
    "/list": [1, "two"],
    "/dict-response": text("made by hand", 201, {"x-made": "yes"}),
    "/long": "x" * 5000,
}


def make_app(middleware: bool) -> tuple[App, list[Any]]:
    app = App()
    seen: list[Any] = []
    for path, result in RESULTS.items():

        async def route(result: Any = result) -> Any:
            return result

        route.__name__ = route.__qualname__ = "route_" + path.strip("/").replace("-", "_")
        app.route(path)(route)
    if middleware:

        def wrap_seen(next_middleware: Any) -> Any:
            async def look(handler: Any, request: dict[str, Any]) -> Any:
                response = await next_middleware(handler, request)
                seen.append(response)
                return response

            return look

        app.use(wrap_seen)
    return app, seen


async def responses(app: App) -> dict[str, tuple[int, dict[str, str], bytes]]:
    got = {}
    async with TestClient(app) as client:
        for path in RESULTS:
            response = await client.get(path)
            got[path] = (response.status, dict(response.headers), response.content)
    return got


async def test_the_bare_path_answers_exactly_as_the_response_dict_path() -> None:
    bare, _ = make_app(middleware=False)
    wrapped, seen = make_app(middleware=True)
    assert await responses(bare) == await responses(wrapped)
    assert bare.bare and not wrapped.bare
    assert all(type(response) is dict for response in seen)  # a middleware never sees a Ready response
    assert len(seen) == len(RESULTS)


async def test_bare_responses_carry_their_length_and_type() -> None:
    app, _ = make_app(middleware=False)
    got = await responses(app)
    assert got["/str"] == (200, {"content-type": "text/plain; charset=utf-8", "content-length": "5"}, b"hello")
    assert got["/none"][0] == 204 and "content-length" not in got["/none"][1]
    assert got["/json"][2] == b'{"a":[1,2]}' and got["/json"][1]["content-type"] == "application/json"
    assert got["/long"][1]["content-length"] == "5000"
    assert got["/dict-response"] == (201, {"x-made": "yes", "content-type": "text/plain; charset=utf-8",
                                           "content-length": "12"}, b"made by hand")


def test_ready_is_a_pair_of_asgi_messages() -> None:
    from scallion.asgi import ready

    response = ready(200, (b"content-type", b"text/plain; charset=utf-8"), b"hi")
    assert type(response) is Ready
    start, body = response
    assert start == {"type": "http.response.start", "status": 200,
                     "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"2")]}
    assert body == {"type": "http.response.body", "body": b"hi"}
