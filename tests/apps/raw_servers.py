"""A raw ASGI app (no scallion): what a server does with plain ASGI messages, to tell a server's limits from
scallion's (tests/test_servers_more.py). It prints what it learns; the tests read the server's log.

- lifespan: prints ``lifespan.startup`` when the server sends it (daphne never does);
- ``/extensions``: sends the scope's ``extensions`` as JSON, then closes with 1000;
- ``/empty``: sends an empty text and an empty binary message, then ``after``, then closes with 1000;
- ``/reason``: closes with 4000 and the reason ``custom reason``;
- ``/code/<n>``: closes with code ``n``; prints ``close <n> sent``, or ``close <n> refused: <exception>`` and then
  closes with 1000;
- ``/sleeper``: sends ``sleeping`` and sleeps; prints ``sleeper finally`` when its ``finally`` runs;
- ``/spinner``: sends ``spin`` at every turn of the loop while a receive waits, until the client leaves; prints
  ``spinner: send raised <module>.<class> oserror=<bool>`` if a send raised (then what the receive got), or
  ``spinner: receive first: <message>``.
"""

import asyncio
import json


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                print("lifespan.startup", flush=True)
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "websocket":
        await receive()
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    path = scope["path"]
    if path == "/extensions":
        await send({"type": "websocket.send", "text": json.dumps(sorted(scope.get("extensions") or {}))})
        await send({"type": "websocket.close", "code": 1000})
    elif path == "/empty":
        await send({"type": "websocket.send", "text": ""})
        await send({"type": "websocket.send", "bytes": b""})
        await send({"type": "websocket.send", "text": "after"})
        await send({"type": "websocket.close", "code": 1000})
    elif path == "/reason":
        await send({"type": "websocket.close", "code": 4000, "reason": "custom reason"})
    elif path.startswith("/code/"):
        code = int(path.removeprefix("/code/"))
        try:
            await send({"type": "websocket.close", "code": code})
            print(f"close {code} sent", flush=True)
        except Exception as exc:
            print(f"close {code} refused: {type(exc).__name__}: {exc}", flush=True)
            await send({"type": "websocket.close", "code": 1000})
    elif path == "/sleeper":
        await send({"type": "websocket.send", "text": "sleeping"})
        try:
            await asyncio.sleep(60)
        finally:
            print("sleeper finally", flush=True)
    elif path == "/spinner":
        reader = asyncio.ensure_future(receive())
        try:
            while not reader.done():
                try:
                    await send({"type": "websocket.send", "text": "spin"})
                except Exception as exc:
                    kind = type(exc)
                    print(f"spinner: send raised {kind.__module__}.{kind.__qualname__} oserror="
                          f"{isinstance(exc, OSError)}: {exc}; then {await reader}", flush=True)
                    return
                await asyncio.sleep(0)
            print(f"spinner: receive first: {reader.result()}", flush=True)
        finally:
            reader.cancel()
    else:  # echo, until the client leaves
        while (message := await receive())["type"] == "websocket.receive":
            await send({**message, "type": "websocket.send"})
