"""wrap_origin: cross-site websocket hijacking protection."""

from __future__ import annotations

from typing import Any

import pytest

from scallion import App, build_server, standard_not_found, websocket
from scallion.middlewares import apply_middleware, wrap_origin, wrap_routes
from scallion.response import text, ws_send
from scallion.testing import TestClient, WebSocketDenied

SITE = "https://app.example.com"


@websocket
async def hello(scope: dict[str, Any], receiver: Any) -> Any:
    yield ws_send("welcome")


async def write(req: dict[str, Any]) -> dict[str, Any]:
    return text("written")


def serve(*args: Any, **options: Any) -> Any:
    table = wrap_routes([("/ws", ["WS"], hello), ("/write", ["GET", "POST"], write)])
    return build_server(apply_middleware(wrap_origin(*args, **options), table)(standard_not_found))


async def connect(client: TestClient, headers: dict[str, str] | None = None, host: str | None = None) -> str:
    merged = dict(headers or {})
    if host is not None:
        merged["host"] = host
    async with client.websocket("/ws", headers=merged) as sock:
        return str(await sock.receive())


async def test_listed_origin_connects_and_others_get_403() -> None:
    async with TestClient(serve([SITE, "http://localhost:8000/"])) as client:
        assert await connect(client, {"origin": SITE}) == "welcome"
        assert await connect(client, {"origin": "http://localhost:8000"}) == "welcome"
        for evil in ("https://evil.example", "null", "https://app.example.com.evil.example", "garbage"):
            with pytest.raises(WebSocketDenied) as denied:
                await connect(client, {"origin": evil})
            assert denied.value.status == 403, evil
            assert b"origin not allowed" in denied.value.body


async def test_same_origin_allowed_by_default() -> None:
    async with TestClient(serve()) as client:
        assert await connect(client, {"origin": "https://chat.example.com"}, host="chat.example.com") == "welcome"
        assert await connect(client, {"origin": "https://chat.example.com"}, host="chat.example.com:443") == "welcome"
        assert await connect(client, {"origin": "http://localhost:8000"}, host="localhost:8000") == "welcome"
        assert await connect(client, {"origin": "http://[::1]:8000"}, host="[::1]:8000") == "welcome"
        with pytest.raises(WebSocketDenied):
            await connect(client, {"origin": "http://localhost:9000"}, host="localhost:8000")
        with pytest.raises(WebSocketDenied):
            await connect(client, {"origin": "https://evil.example"}, host="chat.example.com")


async def test_same_origin_can_be_disabled() -> None:
    async with TestClient(serve(allow_same_origin=False)) as client:
        with pytest.raises(WebSocketDenied):
            await connect(client, {"origin": "https://chat.example.com"}, host="chat.example.com")


async def test_missing_origin() -> None:
    async with TestClient(serve([SITE])) as client:
        assert await connect(client) == "welcome"
    async with TestClient(serve([SITE], allow_missing=False)) as client:
        with pytest.raises(WebSocketDenied):
            await connect(client)


async def test_star_allows_any_origin() -> None:
    async with TestClient(serve("*")) as client:
        assert await connect(client, {"origin": "https://anything.example"}) == "welcome"


async def test_http_untouched_unless_asked() -> None:
    async with TestClient(serve([SITE])) as client:
        assert (await client.post("/write", headers={"origin": "https://evil.example"})).status == 200
    async with TestClient(serve([SITE], http=True)) as client:
        evil = {"origin": "https://evil.example"}
        assert (await client.post("/write", headers=evil)).status == 403
        assert (await client.get("/write", headers=evil)).status == 200
        assert (await client.post("/write", headers={"origin": SITE})).status == 200
        assert (await client.post("/write")).status == 200


async def test_with_app_and_emmett_websocket() -> None:
    app = App(allowed_origins="*")  # App checks origins itself (tests/test_security.py); "*" leaves it to wrap_origin
    app.use(wrap_origin([SITE]))

    @app.websocket("/live")
    async def live() -> None:
        await websocket.send("live")

    async with TestClient(app) as client:
        async with client.websocket("/live", headers={"origin": SITE}) as sock:
            assert await sock.receive() == "live"
        with pytest.raises(WebSocketDenied) as denied:
            async with client.websocket("/live", headers={"origin": "https://evil.example"}):
                pass
    assert denied.value.status == 403


async def test_wildcard_origins() -> None:
    async with TestClient(serve(["https://*.example.com", "http://*.local.test:8000"])) as client:
        assert await connect(client, {"origin": "https://a.example.com"}) == "welcome"
        assert await connect(client, {"origin": "https://a.b.example.com"}) == "welcome"
        assert await connect(client, {"origin": "http://box.local.test:8000"}) == "welcome"
        for refused in ("https://example.com", "https://evilexample.com", "http://a.example.com",
                        "https://a.example.com:8443", "http://box.local.test", "https://a.example.com.evil.example"):
            with pytest.raises(WebSocketDenied):
                await connect(client, {"origin": refused})


@pytest.mark.parametrize("entry", ["app.example.com", "https://app.*.example.com", "https://example.com/app", 42])
def test_bad_entries_raise(entry: Any) -> None:
    with pytest.raises(ValueError, match=r"such as 'https://example\.com'"):
        wrap_origin([entry])
