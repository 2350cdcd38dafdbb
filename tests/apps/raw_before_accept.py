"""A raw ASGI app (no scallion): what a server tells an app that has not accepted yet when the client leaves.
It prints "connected", then what ``receive()`` gave within 2 s of the client's departure before accept, then accepts
and prints what ``receive()`` gives after. tests/test_faults.py reads the lines from the server's log."""

import asyncio


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    print("connected", flush=True)
    try:
        message = await asyncio.wait_for(receive(), 2.0)
        print(f"before accept: {message['type']}", flush=True)
    except TimeoutError:
        print("before accept: nothing within 2 s", flush=True)
    try:
        await send({"type": "websocket.accept"})
        message = await asyncio.wait_for(receive(), 2.0)
        print(f"after accept: {message['type']}", flush=True)
    except Exception as exc:  # a server may refuse the accept of a departed client
        print(f"after accept: {type(exc).__name__}", flush=True)
