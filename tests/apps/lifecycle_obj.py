"""The lifecycle table in Emmett style: coroutine handlers using the ``websocket`` object, on an ``App``.
Hooks and ``finally`` blocks record events (see ``recorder.py``)."""

import asyncio

import msgspec
from recorder import HOOKS, key_of, record, recording

from scallion import App, websocket, ws_close, ws_deny

MAX_MESSAGE_SIZE = 64 * 1024
application = App(max_message_size=MAX_MESSAGE_SIZE)
released: dict[str, asyncio.Event] = {}


def _released(key):
    return released.setdefault(key, asyncio.Event())


def _key():
    return key_of(websocket.scope)


@application.websocket("/returns", **HOOKS)
async def returns():
    await websocket.send("bye soon")


@application.websocket("/close/{code}", **HOOKS)
async def closes(code):
    await websocket.send("closing")
    await websocket.close(int(code), "custom reason")
    try:
        await websocket.send("sent after close")
    except Exception as exc:
        record(_key(), f"send-after-close-raised:{type(exc).__name__}")
    else:
        record(_key(), "send-after-close-did-not-raise")


@application.websocket("/echo", **HOOKS)
async def echo():
    try:
        async for message in websocket:
            await websocket.send(message)
    finally:
        record(_key(), "finally")


@application.websocket("/ticker", **HOOKS)
async def ticker():
    try:
        tick = 0
        while True:
            await websocket.send(f"tick {tick}")
            tick += 1
            await asyncio.sleep(0.01)
    finally:
        record(_key(), "finally")


@application.websocket("/spinner", **HOOKS)
async def spinner():
    """Sends at every turn of the loop: a client's close always lands between two sends."""
    try:
        while True:
            await websocket.send("spin")
            await asyncio.sleep(0)
    finally:
        record(_key(), "finally")


@application.websocket("/sleeper", **HOOKS)
async def sleeper():
    await websocket.accept()
    try:
        await websocket.send("sleeping")
        await asyncio.sleep(3600)
    finally:
        record(_key(), "finally")


@application.websocket("/fail_after", **HOOKS)
async def fail_after():
    await websocket.send("about to fail")
    raise RuntimeError(f"boom after accept {_key()}")


@application.websocket("/fail_before", **HOOKS)
async def fail_before():
    raise RuntimeError(f"boom before accept {_key()}")


@application.websocket("/refuse", **HOOKS)
async def refuse():
    await websocket.close()


async def refusing(scope):
    return ws_close()


@application.websocket("/refuse_hook", on_connect=refusing, **HOOKS)
async def refuse_hook():
    record(_key(), "handler-ran")


@application.websocket("/deny", **HOOKS)
async def deny():
    await websocket.deny(401, b"no entry for you")


async def denying(scope):
    return ws_deny(401, "no entry for you", {"x-denied": "yes"})


@application.websocket("/deny_hook", on_connect=denying, **HOOKS)
async def deny_hook():
    record(_key(), "handler-ran")


@application.websocket("/json", **HOOKS)
async def json_echo():
    while True:
        await websocket.send_json(await websocket.receive_json())


class Point(msgspec.Struct):
    x: int
    y: int


@application.websocket("/typed", **HOOKS)
async def typed():
    while True:
        point = await websocket.receive_json(Point)
        await websocket.send_json({"sum": point.x + point.y})


@application.websocket("/attrs/{room}", **HOOKS)
async def attrs(room):
    params = websocket.query_params
    await websocket.accept(subprotocol="chat.v2")
    await websocket.send_json({
        "room": room,
        "scheme": websocket.scheme,
        "path": websocket.path,
        "host": websocket.host,
        "x_test": websocket.headers["x-test"],
        "user_agent": websocket.headers.get("user-agent"),
        "cookies": websocket.cookies,
        "single": params.single,
        "single_item": params["single"],
        "repeated": params.repeated,
        "missing_item": params["missing"],
        "missing_attr": params.missing,
        "path_params": websocket.path_params,
        "subprotocols": websocket.subprotocols,
        "client_host": websocket.client[0],
        "scope_path": websocket.scope["path"],
    })


@application.websocket()
async def default_named():
    await websocket.send(f"served at {websocket.path}")


@application.websocket("/slow", **HOOKS)
async def slow():
    """Do not read until /release/<key> is posted, then count what arrives up to "end"."""
    await websocket.send("ready")
    await _released(_key()).wait()
    count, in_order = 0, True
    async for message in websocket:
        if message == "end":
            break
        in_order = in_order and int.from_bytes(message[:8], "big") == count
        count += 1
    await websocket.send_json({"count": count, "in_order": in_order})


@application.route("/release/{key}", methods=["POST"])
async def release(key):
    _released(key).set()
    return "released"


app = recording(application)
