"""An App served by real servers in tests/test_servers_http.py."""

from scallion import App, request

app = App()


@app.route("/hello")
async def hello() -> str:
    return "hello"


@app.route("/echo", methods=["POST"])
async def echo() -> bytes:
    return request.body


@app.route("/boom")
async def boom() -> str:
    raise ValueError("kaboom in a handler")
