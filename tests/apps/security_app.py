"""Apps served by real servers in tests/test_security.py: ``app`` has the secure defaults (same-origin
websockets only); ``hosts_app`` also only answers requests addressed to ``localhost``."""

from scallion import App, websocket

app = App()
hosts_app = App(allowed_hosts=["localhost"])


@app.websocket("/ws")
@hosts_app.websocket("/ws")
async def greet() -> None:
    await websocket.send("welcome")
    async for message in websocket:
        await websocket.send(message)


@app.route("/hello")
@hosts_app.route("/hello")
async def hello() -> str:
    return "hello"
