"""The lifecycle table in seed-000 style: ``@websocket`` async generators in a ``wrap_routes`` table served by
``build_server``. Hooks and ``finally`` blocks record events (see ``recorder.py``)."""

import asyncio
import json

from recorder import HOOKS, key_of, record, recording

from scallion import build_server, standard_not_found, websocket, ws_close, ws_deny, ws_send
from scallion.middlewares import apply_middleware, wrap_cookies, wrap_parameters, wrap_routes

MAX_MESSAGE_SIZE = 64 * 1024
released: dict[str, asyncio.Event] = {}


def _released(key):
    return released.setdefault(key, asyncio.Event())


@websocket(**HOOKS)
async def returns(scope, receiver):
    yield ws_send("bye soon")


@websocket(**HOOKS)
async def closes(scope, receiver, code):
    yield ws_send("closing")
    yield ws_close(int(code), "custom reason")
    record(key_of(scope), "resumed-after-ws_close")
    yield ws_send("sent after ws_close")


@websocket(**HOOKS)
async def echo(scope, receiver):
    try:
        async for message in receiver:
            yield ws_send(message)
    finally:
        record(key_of(scope), "finally")


@websocket(**HOOKS)
async def ticker(scope, receiver):
    try:
        tick = 0
        while True:
            yield ws_send(f"tick {tick}")
            tick += 1
            await asyncio.sleep(0.01)
    finally:
        record(key_of(scope), "finally")


@websocket(**HOOKS)
async def spinner(scope, receiver):
    """Sends at every turn of the loop: a client's close always lands between two sends."""
    try:
        while True:
            yield ws_send("spin")
            await asyncio.sleep(0)
    finally:
        record(key_of(scope), "finally")


@websocket(**HOOKS)
async def sleeper(scope, receiver):
    try:
        yield ws_send("sleeping")
        await asyncio.sleep(3600)
    finally:
        record(key_of(scope), "finally")


@websocket(**HOOKS)
async def fail_after(scope, receiver):
    yield ws_send("about to fail")
    raise RuntimeError(f"boom after accept {key_of(scope)}")


async def raising_on_connect(scope):
    raise RuntimeError(f"boom before accept {key_of(scope)}")


@websocket(on_connect=raising_on_connect, **HOOKS)
async def fail_before(scope, receiver):
    record(key_of(scope), "handler-ran")
    yield ws_send("should not be sent")


async def refusing(scope):
    return ws_close()


@websocket(on_connect=refusing, **HOOKS)
async def refuse(scope, receiver):
    record(key_of(scope), "handler-ran")
    yield ws_send("should not be sent")


async def denying(scope):
    return ws_deny(401, "no entry for you", {"x-denied": "yes"})


@websocket(on_connect=denying, **HOOKS)
async def deny(scope, receiver):
    record(key_of(scope), "handler-ran")
    yield ws_send("should not be sent")


@websocket(**HOOKS)
async def json_echo(scope, receiver):
    while True:
        data = await websocket.receive_json()
        yield ws_send(json.dumps(data))


@websocket(**HOOKS)
async def scope_view(scope, receiver, room, user):
    yield ws_send(json.dumps({
        "args": [room, user],
        "path": scope["path"],
        "method": scope["method"],
        "query_string": scope["query_string"].decode(),
        "cookie_header": scope["headers"].get("cookie"),
        "x_test": scope["headers"].get("x-test"),
        "path_params": scope.get("path_params"),
        "cookies": scope.get("cookies"),  # wrap_cookies
        "query_params": scope.get("query_params"),  # wrap_parameters
    }))


WRONG = {"str": "a plain string", "none": None, "int-text": {"type": "websocket.send", "text": 42},
         "no-type": {"text": "hi"}}


@websocket(**HOOKS)
async def wrong_type(scope, receiver, variant):
    yield ws_send("first, a good one")
    yield WRONG[variant]
    record(key_of(scope), "resumed-after-wrong-yield")


async def coro(scope, receiver):
    async for message in receiver:
        record(key_of(scope), f"got:{message}")
        break


coro_handler = websocket(**HOOKS)(coro)


@websocket(**HOOKS)
async def slow(scope, receiver):
    """Do not read until /release/<key> is posted, then count what arrives up to "end"."""
    yield ws_send("ready")
    await _released(key_of(scope)).wait()
    count, in_order = 0, True
    async for message in receiver:
        if message == "end":
            break
        in_order = in_order and int.from_bytes(message[:8], "big") == count
        count += 1
    yield ws_send(json.dumps({"count": count, "in_order": in_order}))


async def release(request, key):
    _released(key).set()
    return {"status": 200, "body": b"released"}


routes = [
    ("/returns", ["WS"], returns),
    ("/close/{code}", ["WS"], closes),
    ("/echo", ["WS"], echo),
    ("/ticker", ["WS"], ticker),
    ("/spinner", ["WS"], spinner),
    ("/sleeper", ["WS"], sleeper),
    ("/fail_after", ["WS"], fail_after),
    ("/fail_before", ["WS"], fail_before),
    ("/refuse", ["WS"], refuse),
    ("/deny", ["WS"], deny),
    ("/json", ["WS"], json_echo),
    ("/scope/{room}/{user}", ["WS"], scope_view),
    ("/wrong/{variant}", ["WS"], wrong_type),
    ("/coro", ["WS"], coro_handler),
    ("/slow", ["WS"], slow),
    ("/release/{key}", ["POST"], release),
]
handler = apply_middleware(wrap_cookies, wrap_parameters, wrap_routes(routes))(standard_not_found)
app = recording(build_server(handler, max_message_size=MAX_MESSAGE_SIZE))
