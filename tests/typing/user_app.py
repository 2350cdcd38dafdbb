"""A user's app, type-checked by tests/test_typing.py with ``mypy --strict``: the public names are typed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from scallion import App, Connection, request, websocket, ws_close, ws_send

app = App()


@app.route("/")
async def index() -> str:
    method: str = request.method
    agent: str | None = request.headers.get("user-agent")
    return f"{method} {agent}"


@app.websocket("/chat")
async def chat() -> None:
    path: str = websocket.path
    await websocket.accept()
    async for message in websocket:
        await websocket.send(f"{path}: {message!s}")
    data: Any = await websocket.receive_json()
    await websocket.send_json(data)


@websocket
async def echo(scope: dict[str, Any], receiver: Connection) -> AsyncIterator[dict[str, Any]]:
    async for message in receiver:
        yield ws_send(message)
    yield ws_close(1000)


async def on_connect(scope: dict[str, Any]) -> None:
    pass


@websocket(on_disconnect=on_connect)
async def quiet(scope: dict[str, Any], receiver: Connection) -> AsyncIterator[dict[str, Any]]:
    async for message in receiver:
        yield ws_send(message)


routes = [("/echo", ["WS"], echo), ("/quiet", ["WS"], quiet)]
