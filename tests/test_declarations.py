"""Mistakes caught at declaration (issue 10): every case measured on main, replayed as written.

Each mistake used to be accepted and then misbehave on every request (a 405 with ``Allow: O, P, S, T``, a 500,
a 403, a handshake "refused" with status 200, the second of two handlers silently winning). Now ``@app.route``,
``@app.websocket`` and ``wrap_routes([...])`` raise a ``ValueError`` that names the route and the function and
says how to fix it. The ``websocket`` and ``request`` proxies are inspectable outside a handler.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import io
import re
from pathlib import Path
from typing import Any

import pytest

from scallion import App, build_server, request, standard_not_found, websocket, ws_send
from scallion.middlewares import apply_middleware, wrap_routes
from scallion.response import text
from scallion.testing import TestClient

pytestmark = pytest.mark.timeout(20)


def served(table: list[Any]) -> Any:
    return build_server(apply_middleware(wrap_routes(table))(standard_not_found))


async def home(request: dict[str, Any]) -> dict[str, Any]:
    return text("home")


async def other_home(request: dict[str, Any]) -> dict[str, Any]:
    return text("other")


# -- methods ------------------------------------------------------------------------------------------------------
def test_app_methods_as_a_str_is_refused_with_a_hint() -> None:
    app = App()
    with pytest.raises(ValueError) as refused:

        @app.route("/m", methods="POST")  # type: ignore[arg-type]
        async def m() -> str:
            return "ok"

    message = str(refused.value)
    assert "'/m'" in message and "m" in message and '["POST"]' in message
    assert app.table == []


def test_routing_table_methods_as_a_str_is_refused_with_a_hint() -> None:
    with pytest.raises(ValueError, match=r'\["GET", "POST"\]') as refused:
        wrap_routes([("/m", "GET, POST", home)])
    assert "'/m'" in str(refused.value) and "home" in str(refused.value)


@pytest.mark.parametrize("methods", [["GOT"], ["GET", "PSOT"], [], ["GET", 1]])
def test_unknown_or_malformed_methods_are_refused(methods: list[Any]) -> None:
    with pytest.raises(ValueError, match=r"'/m'") as refused:
        wrap_routes([("/m", methods, home)])
    assert "home" in str(refused.value)
    app = App()
    with pytest.raises(ValueError, match=r"'/m'"):
        app.route("/m", methods=methods)(home_function)


async def home_function() -> str:
    return "home"


def test_methods_still_accept_lower_case_and_tuples() -> None:
    app = App()

    @app.route("/m", methods=("get", "post"))
    async def m() -> str:
        return request.method

    with TestClient(app) as client:
        assert client.post("/m").text == "POST"
        assert client.get("/m").text == "GET"


# -- route parameters against function parameters -----------------------------------------------------------------
def test_app_route_parameter_that_is_no_function_parameter() -> None:
    app = App()
    with pytest.raises(ValueError) as refused:

        @app.route("/p/{id}")
        async def p(item: str) -> str:
            return item

    message = str(refused.value)
    assert "'/p/{id}'" in message and "p(item" in message and "{id}" in message and "**kwargs" in message


def test_app_websocket_parameter_that_is_no_function_parameter() -> None:
    app = App()
    with pytest.raises(ValueError, match=r"\{id\}.*\*\*kwargs") as emmett:

        @app.websocket("/w/{id}")
        async def w(item: str) -> None:
            await websocket.send(item)

    assert "'/w/{id}'" in str(emmett.value)
    with pytest.raises(ValueError, match=r"\{id\}.*\*\*kwargs") as generator:

        @app.websocket("/g/{id}")
        async def g(scope: Any, receiver: Any, item: str) -> Any:
            yield ws_send(item)

    assert "'/g/{id}'" in str(generator.value) and "g(scope, receiver, item" in str(generator.value)


def test_app_function_parameter_that_no_route_gives() -> None:
    app = App()
    with pytest.raises(ValueError, match=r"'/p/\{id\}'.*other") as refused:

        @app.route("/p/{id}")
        async def p(id: str, other: str) -> str:
            return id

    assert "default" in str(refused.value)


def test_app_route_parameters_by_name_and_kwargs_still_work() -> None:
    app = App()

    @app.route("/kw/{a}/{b:int}")
    async def kw(**params: Any) -> Any:
        return params

    @app.route("/named/{b}/{a}")
    async def named(a: str, b: str, c: str = "c") -> Any:
        return [a, b, c]

    @app.websocket("/ws/{room}")
    async def room(room: str) -> None:
        await websocket.send(room)

    with TestClient(app) as client:
        assert client.get("/kw/x/2").json() == {"a": "x", "b": 2}
        assert client.get("/named/1/2").json() == ["2", "1", "c"]
        with client.websocket("/ws/lobby") as ws:
            assert ws.receive() == "lobby"


def test_routing_table_route_parameter_that_the_function_cannot_take() -> None:
    async def p(request: dict[str, Any]) -> dict[str, Any]:
        return text("p")

    with pytest.raises(ValueError) as refused:
        wrap_routes([("/p/{id}", ["GET"], p)])
    message = str(refused.value)
    assert "'/p/{id}'" in message and "p(request)" in message and "*args" in message


def test_routing_table_websocket_parameter_that_the_function_cannot_take() -> None:
    @websocket
    async def chat(scope: Any, receiver: Any) -> Any:
        yield ws_send("hi")

    with pytest.raises(ValueError, match=r"'/chat/\{room\}'.*chat\(scope, receiver\).*\*args"):
        wrap_routes([("/chat/{room}", ["WS"], chat)])


def test_routing_table_parameters_by_position_and_args_still_work() -> None:
    async def one(request: dict[str, Any], x: str) -> dict[str, Any]:
        return text(x)

    async def many(request: dict[str, Any], *args: Any) -> dict[str, Any]:
        return text(",".join(map(str, args)))

    @websocket
    async def chat(scope: Any, receiver: Any, room: str) -> Any:
        yield ws_send(room)

    app = served([("/one/{x}", ["GET"], one), ("/many/{a}/{b:int}", ["GET"], many), ("/chat/{r}", ["WS"], chat)])
    with TestClient(app) as client:
        assert client.get("/one/x").text == "x"
        assert client.get("/many/a/2").text == "a,2"
        with client.websocket("/chat/lobby") as ws:
            assert ws.receive() == "lobby"


# -- duplicates ---------------------------------------------------------------------------------------------------
def test_app_same_path_and_method_twice_names_both_handlers() -> None:
    app = App()

    @app.route("/d")
    async def first() -> str:
        return "first"

    with pytest.raises(ValueError, match=r"'/d'.*GET") as refused:

        @app.route("/d", methods=["POST", "GET"])
        async def second() -> str:
            return "second"

    assert "first" in str(refused.value) and "second" in str(refused.value)
    with TestClient(app) as client:  # the refused declaration left nothing behind
        assert client.get("/d").text == "first"
        assert client.post("/d").status == 405


def test_routing_table_same_path_and_method_twice_names_both_handlers() -> None:
    with pytest.raises(ValueError, match=r"'/d'.*GET") as refused:
        wrap_routes([("/d", ["GET"], home), ("/d", ["GET"], other_home)])
    assert "home" in str(refused.value) and "other_home" in str(refused.value)


def test_routing_table_routes_that_match_the_same_paths_are_duplicates() -> None:
    async def by_id(request: dict[str, Any], id: str) -> dict[str, Any]:
        return text(id)

    async def by_name(request: dict[str, Any], name: str) -> dict[str, Any]:
        return text(name)

    with pytest.raises(ValueError, match=r"'/u/\{name\}'.*'/u/\{id\}'") as refused:
        wrap_routes([("/u/{id}", ["GET"], by_id), ("/u/{name}", ["GET"], by_name)])
    assert "by_id" in str(refused.value) and "by_name" in str(refused.value)
    wrap_routes([("/u/{id:int}", ["GET"], by_id), ("/u/{name}", ["GET"], by_name)])  # different paths match


def test_same_path_for_other_methods_is_fine() -> None:
    app = served([("/d", ["GET"], home), ("/d", ["POST"], other_home)])
    with TestClient(app) as client:
        assert (client.get("/d").text, client.post("/d").text) == ("home", "other")


# -- websocket and HTTP handlers in the right rows ----------------------------------------------------------------
@pytest.mark.parametrize("method", ["ws", "WS"])
def test_routing_table_http_handler_under_ws_is_refused(method: str) -> None:
    with pytest.raises(ValueError, match=r"'/h'.*WS") as refused:
        wrap_routes([("/h", [method], home)])
    assert "home" in str(refused.value) and "@websocket" in str(refused.value)


@pytest.mark.parametrize("method", ["ws", "WS"])
def test_app_route_under_ws_is_refused(method: str) -> None:
    app = App()
    with pytest.raises(ValueError, match=r"'/h'.*WS") as refused:

        @app.route("/h", methods=[method])
        async def h() -> str:
            return "not a websocket"

    assert "@app.websocket" in str(refused.value)


def test_websocket_handler_under_get_is_refused() -> None:
    @websocket
    async def chat(scope: Any, receiver: Any) -> Any:
        yield ws_send("hi")

    with pytest.raises(ValueError, match=r"'/chat'.*GET") as refused:
        wrap_routes([("/chat", ["GET"], chat)])
    assert "chat" in str(refused.value) and '["WS"]' in str(refused.value)


def test_async_generator_under_get_is_refused() -> None:
    async def gen(scope: Any, receiver: Any) -> Any:
        yield ws_send("hi")

    with pytest.raises(ValueError, match=r"'/gen'.*GET.*gen") as refused:
        wrap_routes([("/gen", ["GET"], gen)])
    assert '["WS"]' in str(refused.value)


def test_app_route_refuses_websocket_handlers_with_a_hint() -> None:
    @websocket
    async def chat(scope: Any, receiver: Any) -> Any:
        yield ws_send("hi")

    app = App()
    with pytest.raises(TypeError, match=r"@app\.websocket"):
        app.route("/chat")(chat)


def test_plain_async_generator_in_a_ws_route_is_treated_as_websocket() -> None:
    async def gen(scope: Any, receiver: Any, room: str) -> Any:
        async for message in receiver:
            yield ws_send(f"{room}:{message}")

    app = served([("/g/{room}", ["WS"], gen)])
    with TestClient(app) as client, client.websocket("/g/lobby") as ws:
        ws.send("x")
        assert ws.receive() == "lobby:x"


def test_bad_converters_name_the_function() -> None:
    with pytest.raises(ValueError, match=r"'/u/\{id:number\}'.*home.*unknown type 'number'"):
        wrap_routes([("/u/{id:number}", ["GET"], home)])
    app = App()
    with pytest.raises(ValueError, match=r"'/u/\{id:number\}'.*home_function.*unknown type 'number'"):
        app.route("/u/{id:number}")(home_function)


# -- the proxies outside a handler --------------------------------------------------------------------------------
def test_proxies_outside_a_handler_are_attribute_errors_too() -> None:
    assert not hasattr(websocket, "x")
    assert not hasattr(request, "x")
    for proxy, name in ((websocket, "path"), (request, "method")):
        with pytest.raises(RuntimeError) as outside:
            getattr(proxy, name)
        assert isinstance(outside.value, AttributeError)
        assert "only available" in str(outside.value) and name in str(outside.value)


def test_websocket_proxy_is_inspectable_and_copyable() -> None:
    signature = inspect.signature(websocket)
    assert "on_connect" in signature.parameters
    assert copy.copy(websocket) is websocket and copy.deepcopy(websocket) is websocket
    assert copy.copy(request) is request


async def test_websocket_proxy_is_copyable_inside_a_handler() -> None:
    app = App()

    @app.websocket("/c")
    async def c() -> None:
        await websocket.send(str(copy.copy(websocket) is websocket))
        await websocket.send(str(inspect.signature(websocket)))

    async with TestClient(app) as client, client.websocket("/c") as ws:
        assert await ws.receive() == "True"
        assert "on_connect" in await ws.receive()


# -- the documented messages are the real ones --------------------------------------------------------------------
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("doc", "module"), [("http.md", "shop"), ("websockets.md", "chat")])
def test_common_mistakes_sections_show_the_real_messages(doc: str, module: str) -> None:
    text = (ROOT / "docs" / doc).read_text()
    section = text[text.index("\n## Common mistakes\n") :]
    assert "\n## " not in section[1:], "the section is the last of the file"
    printed = io.StringIO()
    namespace: dict[str, Any] = {"__name__": module}
    with contextlib.redirect_stdout(printed):
        for block in re.findall(r"^```python\n(.*?)^```", section, re.S | re.M):
            exec(compile(block, doc, "exec"), namespace)
    shown = "".join(re.findall(r"^```text\n(.*?)^```", section, re.S | re.M))
    assert printed.getvalue() == shown
