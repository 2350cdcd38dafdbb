"""wrap_cors: preflights, simple requests, credentials, Vary."""

from __future__ import annotations

from typing import Any

from scallion import App, build_server, standard_not_found, websocket
from scallion.middlewares import apply_middleware, wrap_cors, wrap_routes
from scallion.response import text, ws_send
from scallion.testing import TestClient

SITE = "https://app.example.com"


def serve(calls: list[str] | None = None, headers: dict[str, str] | None = None, **options: Any) -> Any:
    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        if calls is not None:
            calls.append(req["method"])
        return text("ok", headers=headers)

    return build_server(apply_middleware(wrap_cors(**options))(handler))


def preflight(origin: str = SITE, method: str = "PUT", request_headers: str | None = None) -> dict[str, str]:
    headers = {"origin": origin, "access-control-request-method": method}
    if request_headers is not None:
        headers["access-control-request-headers"] = request_headers
    return headers


async def test_preflight_answered_without_calling_the_handler() -> None:
    calls: list[str] = []
    server = serve(calls, allow_origins=[SITE], allow_headers=["X-Token"], max_age=99)
    async with TestClient(server) as client:
        response = await client.options("/items", headers=preflight(request_headers="x-token, Content-Type"))
    assert response.status == 204
    assert response.headers["access-control-allow-origin"] == SITE
    assert response.headers["access-control-allow-methods"] == "DELETE, GET, HEAD, PATCH, POST, PUT"
    assert response.headers["access-control-allow-headers"] == "x-token"
    assert response.headers["access-control-max-age"] == "99"
    assert response.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in response.headers
    assert calls == []


async def test_preflight_refusals() -> None:
    calls: list[str] = []
    server = serve(calls, allow_origins=[SITE], allow_methods=["GET", "POST"])
    async with TestClient(server) as client:
        origin = await client.options("/", headers=preflight(origin="https://evil.example"))
        method = await client.options("/", headers=preflight(method="DELETE"))
        header = await client.options("/", headers=preflight(method="POST", request_headers="x-secret"))
        safelisted = await client.options("/", headers=preflight(method="POST", request_headers="Content-Type"))
    assert origin.status == method.status == header.status == 400
    assert "access-control-allow-origin" not in origin.headers
    assert "origin" in origin.text and "DELETE" in method.text and "x-secret" in header.text
    assert safelisted.status == 204
    assert calls == []


async def test_preflight_wildcards_echo_what_was_asked() -> None:
    server = serve(allow_methods="*", allow_headers="*")
    async with TestClient(server) as client:
        response = await client.options("/", headers=preflight(method="PURGE", request_headers="X-A, X-B"))
    assert response.status == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "vary" not in response.headers
    assert response.headers["access-control-allow-methods"] == "PURGE"
    assert response.headers["access-control-allow-headers"] == "x-a, x-b"


async def test_simple_request_any_origin() -> None:
    async with TestClient(serve()) as client:
        response = await client.get("/", headers={"origin": SITE})
        plain = await client.get("/")
    assert response.headers["access-control-allow-origin"] == "*"
    assert "vary" not in response.headers
    assert "access-control-allow-origin" not in plain.headers


async def test_simple_request_listed_origins() -> None:
    server = serve(allow_origins=[SITE + "/", "http://localhost:8000"], expose_headers=["X-Total"])
    async with TestClient(server) as client:
        allowed = await client.get("/", headers={"origin": SITE})
        refused = await client.get("/", headers={"origin": "https://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == SITE
    assert allowed.headers["vary"] == "Origin"
    assert allowed.headers["access-control-expose-headers"] == "X-Total"
    assert refused.status == 200 and refused.text == "ok"
    assert "access-control-allow-origin" not in refused.headers
    assert "access-control-expose-headers" not in refused.headers
    assert refused.headers["vary"] == "Origin"


async def test_credentials_never_with_star() -> None:
    server = serve(allow_origins="*", allow_credentials=True, allow_methods="*", allow_headers="*")
    async with TestClient(server) as client:
        simple = await client.post("/", headers={"origin": SITE})
        pre = await client.options("/", headers=preflight(method="PATCH", request_headers="authorization"))
    for response in (simple, pre):
        assert response.headers["access-control-allow-origin"] == SITE
        assert response.headers["access-control-allow-credentials"] == "true"
        assert response.headers["vary"] == "Origin"
    assert pre.headers["access-control-allow-methods"] == "PATCH"
    assert pre.headers["access-control-allow-headers"] == "authorization"


async def test_existing_vary_is_extended() -> None:
    server = serve(headers={"vary": "Accept-Encoding"}, allow_origins=[SITE])
    async with TestClient(server) as client:
        response = await client.get("/", headers={"origin": SITE})
    assert response.headers["vary"] == "Accept-Encoding, Origin"


async def test_options_without_request_method_reaches_the_handler() -> None:
    calls: list[str] = []
    async with TestClient(serve(calls)) as client:
        response = await client.options("/", headers={"origin": SITE})
    assert response.status == 200 and calls == ["OPTIONS"]
    assert response.headers["access-control-allow-origin"] == "*"


async def test_websocket_passes_through() -> None:
    @websocket
    async def ws(scope: dict[str, Any], receiver: Any) -> Any:
        yield ws_send("hi")

    routes = wrap_routes([("/ws", ["WS"], ws)])
    server = build_server(apply_middleware(wrap_cors(allow_origins=[SITE]), routes)(standard_not_found))
    async with TestClient(server) as client, client.websocket("/ws", headers={"origin": "https://x.y"}) as sock:
        assert await sock.receive() == "hi"


async def test_with_app_use() -> None:
    app = App()
    app.use(wrap_cors(allow_origins=[SITE], allow_credentials=True))

    @app.route("/data", methods=["GET", "DELETE"])
    async def data() -> Any:
        return {"ok": True}

    async with TestClient(app) as client:
        pre = await client.options("/data", headers=preflight(method="DELETE"))
        get = await client.get("/data", headers={"origin": SITE})
    assert pre.status == 204 and pre.headers["access-control-allow-origin"] == SITE
    assert get.json() == {"ok": True}
    assert get.headers["access-control-allow-credentials"] == "true"
