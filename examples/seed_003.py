"""The example of seed 003 (Emmett's ``websocket`` object), verbatim but for the ``scallion`` import and the
``app = App()`` the seed leaves implicit. Serve it with ``scallion run examples/seed_003.py``."""

from scallion import App, websocket

app = App()


@app.websocket()
async def echo():
    while True:
        message = await websocket.receive()
        await websocket.send(message)
