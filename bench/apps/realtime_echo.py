"""The per-event cost of scallion.realtime: a typed event echoed through the realtime endpoint, against a plain
Emmett-style websocket echo of the same JSON text (``make bench-instructions ARGS="--only realtime"``).

``WS /realtime``  ``{"event": "echo", "data": {"text": ...}, "id": 1}`` dispatched to ``@rt.on("echo")``, its payload
                  validated as :class:`Line`; the reply ``{"id": 1, "data": {"text": ...}}``
``WS /json``      ``await websocket.send(await websocket.receive())`` of the same request text
"""

from __future__ import annotations

import msgspec

from scallion import App, websocket
from scallion.pubsub import MemoryBroker
from scallion.realtime import Realtime

TEXT = "x" * 40
REQUEST = msgspec.json.encode({"event": "echo", "data": {"text": TEXT}, "id": 1}).decode()
"""What the fake client sends (``bench.pingpong --payload``)."""
REPLY = msgspec.json.encode({"id": 1, "data": {"text": TEXT}}).decode()
"""What the realtime endpoint answers (``bench.pingpong --reply``)."""


class Line(msgspec.Struct):
    text: str


rt = Realtime(MemoryBroker())


@rt.on("echo")
async def echo(line: Line) -> Line:
    return line


app = App(max_message_rate=None, allowed_origins="*")
rt.mount(app, "/realtime")


@app.websocket("/json")
async def json_echo() -> None:
    async for message in websocket:
        await websocket.send(message)
