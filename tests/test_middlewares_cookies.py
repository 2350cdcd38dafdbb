"""wrap_cookies: request cookies in; every Set-Cookie attribute out, end to end."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from scallion import App, build_server, request, standard_not_found, websocket
from scallion.middlewares import apply_middleware, wrap_cookies, wrap_routes
from scallion.response import json, text, ws_send
from scallion.testing import TestClient


async def echo_cookies(req: dict[str, Any]) -> dict[str, Any]:
    return json(req["cookies"])


def serve(response: dict[str, Any]) -> Any:
    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        return response

    return build_server(apply_middleware(wrap_cookies)(handler))


async def test_request_cookies_parsed() -> None:
    async with TestClient(build_server(apply_middleware(wrap_cookies)(echo_cookies))) as client:
        none = await client.get("/")
        some = await client.get("/", headers={"cookie": 'a=1; b="quoted"; c=x%20y%3Bz; junk; =v'})
    assert none.json() == {}
    assert some.json() == {"a": "1", "b": "quoted", "c": "x y;z"}


async def test_every_attribute_end_to_end() -> None:
    moment = datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    cookie = {
        "value": "abc",
        "path": "/app",
        "max_age": 3600,
        "expires": moment,
        "domain": "example.com",
        "secure": True,
        "httponly": True,
        "samesite": "Strict",
    }
    async with TestClient(serve({**text("ok"), "cookies": {"sid": cookie}})) as client:
        response = await client.get("/")
    [header] = response.set_cookies
    assert header == (
        "sid=abc; Path=/app; Max-Age=3600; Expires=Tue, 06 May 2031 05:08:09 GMT; "
        "Domain=example.com; Secure; HttpOnly; SameSite=Strict"
    )


async def test_naive_datetime_is_utc_and_false_flags_are_left_out() -> None:
    cookie = {"value": "v", "expires": datetime(2030, 1, 2, 3, 4, 5), "secure": False, "httponly": None}
    async with TestClient(serve({**text("ok"), "cookies": {"c": cookie}})) as client:
        response = await client.get("/")
    assert response.set_cookies == ["c=v; Expires=Wed, 02 Jan 2030 03:04:05 GMT"]


async def test_several_cookies_and_special_values_round_trip() -> None:
    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        if req["path"] == "/set":
            return {**text("set"), "cookies": {"plain": "1", "odd": 'a b;c,d"e%f', "unicode": "ünï"}}
        return json(req["cookies"])

    async with TestClient(build_server(apply_middleware(wrap_cookies)(handler))) as client:
        first = await client.get("/set")
        assert len(first.set_cookies) == 3
        second = await client.get("/read")
    assert second.json() == {"plain": "1", "odd": 'a b;c,d"e%f', "unicode": "ünï"}


async def test_delete_a_cookie_with_max_age_zero() -> None:
    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        if req["path"] == "/login":
            return {**text("in"), "cookies": {"session": {"value": "s3cr3t", "path": "/", "httponly": True}}}
        if req["path"] == "/logout":
            return {**text("out"), "cookies": {"session": {"value": "", "path": "/", "max_age": 0}}}
        return json(req["cookies"])

    async with TestClient(build_server(apply_middleware(wrap_cookies)(handler))) as client:
        await client.get("/login")
        assert (await client.get("/me")).json() == {"session": "s3cr3t"}
        logout = await client.get("/logout")
        assert logout.set_cookies == ["session=; Path=/; Max-Age=0"]
        assert (await client.get("/me")).json() == {}


async def test_with_app_use() -> None:
    app = App()
    app.use(wrap_cookies)

    @app.route("/visit")
    async def visit() -> Any:
        count = int(request["cookies"].get("visits", "0")) + 1
        return {
            "status": 200,
            "body": str(count).encode(),
            "cookies": {"visits": str(count)},
            "headers": {"content-type": "text/plain"},
        }

    @app.route("/who")
    async def who() -> Any:
        return {"attribute": request.cookies, "scope": request["cookies"]}

    async with TestClient(app) as client:
        assert [(await client.get("/visit")).text for _ in range(3)] == ["1", "2", "3"]
        assert (await client.get("/who")).json() == {"attribute": {"visits": "3"}, "scope": {"visits": "3"}}


async def test_cookies_visible_in_websocket_scope() -> None:
    @websocket
    async def ws(scope: dict[str, Any], receiver: Any) -> Any:
        yield ws_send(scope["cookies"]["token"])

    handler = apply_middleware(wrap_cookies, wrap_routes([("/ws", ["WS"], ws)]))(standard_not_found)
    cookie = {"cookie": "token=t%201; other=2"}
    async with TestClient(build_server(handler)) as client, client.websocket("/ws", headers=cookie) as sock:
        assert await sock.receive() == "t 1"


async def test_cookies_visible_to_emmett_websocket() -> None:
    app = App()
    app.use(wrap_cookies)

    @app.websocket("/ws")
    async def ws() -> None:
        await websocket.send_json({"attr": websocket.cookies, "scope": websocket.scope["cookies"]})

    async with TestClient(app) as client:
        client.cookies["flavour"] = "shallot"
        async with client.websocket("/ws") as sock:
            assert await sock.receive_json() == {"attr": {"flavour": "shallot"}, "scope": {"flavour": "shallot"}}
