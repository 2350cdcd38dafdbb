"""The ASGI core over HTTP: request dicts, responses, body limits, errors, lifespan."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from scallion import build_server
from scallion.response import html, json, redirect, respond400, respond404, text
from scallion.testing import TestClient

pytestmark = pytest.mark.timeout(30)


async def echo_request(request: dict[str, Any]) -> dict[str, Any]:
    return json(
        {
            "method": request["method"],
            "path": request["path"],
            "headers": request["headers"],
            "body": request["body"].decode(),
            "config": request["config"],
            "list": [[k.decode(), v.decode()] for k, v in request["headers_list"]],
        }
    )


async def test_request_dict_has_headers_body_method() -> None:
    async with TestClient(build_server(echo_request)) as client:
        response = await client.post("/x", body=b"hello", headers={"X-Thing": "1"})
    data = response.json()
    assert data["method"] == "POST"
    assert data["path"] == "/x"
    assert data["body"] == "hello"
    assert data["headers"]["x-thing"] == "1"
    assert ["x-thing", "1"] in data["list"]


async def test_repeated_headers_are_comma_joined() -> None:
    seen: dict[str, Any] = {}

    async def handler(request: dict[str, Any]) -> dict[str, Any]:
        seen.update(request)
        return text("ok")

    app = build_server(handler)
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "query_string": b"",
        "headers": [(b"x-a", b"1"), (b"x-a", b"2"), (b"cookie", b"a=1"), (b"cookie", b"b=2")],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert seen["headers"]["x-a"] == "1,2"
    assert seen["headers"]["cookie"] == "a=1; b=2"
    assert sent[0]["status"] == 200


async def test_on_start_result_is_request_config_and_on_stop_runs() -> None:
    stopped: list[Any] = []

    async def on_start(scope: dict[str, Any]) -> dict[str, Any]:
        return {"db": "ready"}

    async def on_stop(scope: dict[str, Any]) -> None:
        stopped.append(scope["config"])

    async with TestClient(build_server(echo_request, on_start=on_start, on_stop=on_stop)) as client:
        assert (await client.get("/")).json()["config"] == {"db": "ready"}
    assert stopped == [{"db": "ready"}]


async def test_failing_on_start_reports_startup_failed() -> None:
    async def on_start(scope: dict[str, Any]) -> None:
        raise RuntimeError("no database")

    with pytest.raises(RuntimeError, match=r"lifespan\.startup failed: RuntimeError: no database"):
        async with TestClient(build_server(echo_request, on_start=on_start)):
            pass


async def test_handler_exception_is_500_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(request: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("boom")

    async with TestClient(build_server(broken)) as client:
        with caplog.at_level(logging.ERROR, logger="scallion"):
            response = await client.get("/")
    assert response.status == 500
    assert "boom" not in response.text
    assert "broken" in caplog.text and "ValueError: boom" in caplog.text


@pytest.mark.parametrize("value", [None, 42, "text", {"body": b"no status"}, {"status": "200"}])
async def test_non_response_is_500_naming_the_handler(value: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def sloppy(request: dict[str, Any]) -> Any:
        return value

    async with TestClient(build_server(sloppy)) as client:
        with caplog.at_level(logging.ERROR, logger="scallion"):
            response = await client.get("/")
    assert response.status == 500
    assert "sloppy" in caplog.text and "not a response" in caplog.text


async def test_body_over_cap_is_413_without_reading_it() -> None:
    reads = 0

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x" * 100, "more_body": True}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    app = build_server(echo_request, max_body_size=1000)
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-length", b"10000000")]}
    await app(scope, receive, send)
    assert reads == 0
    assert sent[0]["status"] == 413
    assert (b"connection", b"close") in sent[0]["headers"]


async def test_chunked_body_over_cap_is_413() -> None:
    async with TestClient(build_server(echo_request, max_body_size=1000)) as client:
        response = await client.post("/", chunks=[b"x" * 600, b"y" * 600])
        assert response.status == 413
        # the application keeps serving
        assert (await client.post("/", chunks=[b"x" * 600, b"y" * 300])).json()["body"] == "x" * 600 + "y" * 300


async def test_invalid_content_length_is_400() -> None:
    async with TestClient(build_server(echo_request)) as client:
        response = await client.post("/", body=b"abc", headers={"content-length": "abc"})
    assert response.status == 400


async def test_slow_body_is_408() -> None:
    never = asyncio.Event()
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"x", "more_body": True}
        await never.wait()
        raise AssertionError("unreachable")

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    app = build_server(echo_request, body_timeout=0.05)
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-length", b"10")]}
    await asyncio.wait_for(app(scope, receive, send), 5)
    assert sent[0]["status"] == 408


async def test_client_leaving_mid_body_gets_no_response() -> None:
    messages = iter([{"type": "http.request", "body": b"x", "more_body": True}, {"type": "http.disconnect"}])

    async def receive() -> dict[str, Any]:
        return next(messages)

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-length", b"10")]}
    await build_server(echo_request)(scope, receive, send)
    assert sent == []


async def test_response_helpers() -> None:
    async def handler(request: dict[str, Any]) -> dict[str, Any]:
        kind = request["path"].strip("/")
        return {
            "text": text("hi"),
            "html": html("<b>hi</b>"),
            "json": json({"a": [1, 2]}, status=201),
            "redirect": redirect("/elsewhere"),
            "404": respond404(),
            "400": respond400("bad thing"),
        }[kind]

    async with TestClient(build_server(handler)) as client:
        assert (await client.get("/text")).headers["content-type"] == "text/plain; charset=utf-8"
        assert (await client.get("/html")).text == "<b>hi</b>"
        created = await client.get("/json")
        assert (created.status, created.json()) == (201, {"a": [1, 2]})
        moved = await client.get("/redirect")
        assert (moved.status, moved.headers["location"]) == (307, "/elsewhere")
        assert (await client.get("/404")).status == 404
        bad = await client.get("/400")
        assert (bad.status, bad.text) == (400, "bad thing")


async def test_stream_and_filestream(tmp_path: Any) -> None:
    from scallion.response import filestream

    path = tmp_path / "data.txt"
    path.write_bytes(b"0123456789" * 1000)

    async def chunks() -> Any:
        yield b"a"
        yield b"b"

    async def handler(request: dict[str, Any]) -> dict[str, Any]:
        if request["path"] == "/file":
            return filestream(path, chunk_size=1000)
        return {"status": 200, "stream": chunks(), "headers": {"content-type": "text/plain"}}

    async with TestClient(build_server(handler)) as client:
        assert (await client.get("/stream")).body == b"ab"
        served = await client.get("/file")
        assert served.body == path.read_bytes()
        assert served.headers["content-type"] == "text/plain"
        assert served.headers["content-length"] == "10000"


async def test_response_cookies_become_set_cookie_headers() -> None:
    async def handler(request: dict[str, Any]) -> dict[str, Any]:
        return {
            "status": 200,
            "body": b"",
            "cookies": {"plain": "v 1", "session": {"value": "abc", "path": "/", "httponly": True, "max_age": 60}},
        }

    async with TestClient(build_server(handler)) as client:
        response = await client.get("/")
    assert response.set_cookies == ["plain=v%201", "session=abc; Path=/; HttpOnly; Max-Age=60"]
    assert response.cookies == {"plain": "v 1", "session": "abc"}


def test_sync_client() -> None:
    with TestClient(build_server(echo_request)) as client:
        assert client.get("/sync").json()["path"] == "/sync"


async def test_unknown_scope_type_is_refused() -> None:
    async def receive() -> dict[str, Any]:
        return {}

    async def send(message: dict[str, Any]) -> None:
        pass

    with pytest.raises(ValueError, match="webtransport"):
        await build_server(echo_request)({"type": "webtransport"}, receive, send)


def test_set_cookie_header_converts_and_validates() -> None:
    from datetime import UTC, datetime, timedelta

    from scallion.cookies import set_cookie_header

    assert set_cookie_header("a", {"value": "1", "max_age": timedelta(hours=1)}) == "a=1; Max-Age=3600"
    assert set_cookie_header("a", {"value": "1", "expires": 0}) == "a=1; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
    moment = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert set_cookie_header("a", {"value": "1", "expires": moment}) == "a=1; Expires=Wed, 02 Jan 2030 03:04:05 GMT"
    assert set_cookie_header("a", {"samesite": "none", "secure": True}) == "a=; SameSite=None; Secure"
    for bad in [
        ("a;b", "v"),
        ("a", {"path": "/; Domain=evil.example"}),
        ("a", {"path": "/\r\nX-Evil: 1"}),
        ("a", {"samesite": "sometimes"}),
        ("a", {"samesite": "None"}),
        ("a", {"colour": "red"}),
    ]:
        with pytest.raises(ValueError):
            set_cookie_header(*bad)  # type: ignore[arg-type]


async def test_no_content_length_on_204_and_304() -> None:
    async def handler(request: dict[str, Any]) -> dict[str, Any]:
        return {"status": int(request["path"].strip("/")), "body": b""}

    async with TestClient(build_server(handler)) as client:
        for status in (204, 304):
            response = await client.get(f"/{status}")
            assert response.status == status and "content-length" not in response.headers
        assert (await client.get("/200")).headers["content-length"] == "0"


def test_query_strings_are_utf8() -> None:
    from scallion.datastructures import parse_query

    assert parse_query("city=Z%C3%BCrich&a=1+2") == {"city": "Zürich", "a": "1 2"}
    assert parse_query("city=Zürich".encode()) == {"city": "Zürich"}
    assert parse_query(b"a=1&a=2&b=&c") == {"a": ["1", "2"], "b": "", "c": ""}
