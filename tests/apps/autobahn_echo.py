"""Echo servers at ``/`` for the Autobahn testsuite (tests/test_autobahn.py), one per handler style."""

from collections.abc import AsyncIterator
from typing import Any

from scallion import App, websocket, ws_send

LIMIT = 64 * 1024 * 1024  # Autobahn sends messages of up to 16 MiB

generator = App(max_message_size=LIMIT)


@generator.websocket("/")
async def echo(scope: dict[str, Any], receiver: AsyncIterator[str | bytes]) -> AsyncIterator[dict[str, Any]]:
    async for message in receiver:
        yield ws_send(message)


obj = App(max_message_size=LIMIT)


@obj.websocket("/")
async def echo_object() -> None:
    async for message in websocket:
        await websocket.send(message)
