"""A realtime endpoint and a bare test page for the Chromium tests (tests/test_browser_realtime.py).

``/`` loads ``/realtime/client.js`` and records, on ``window``, every state change, channel message and
presence event with ``performance.now()``; ``POST /publish`` publishes its JSON body to ``room`` (server code
publishing from an HTTP route). The broker is ``App.broker`` (``SCALLION_BROKER``: memory when unset).
"""

from __future__ import annotations

from typing import Any

import msgspec

from scallion import App, request
from scallion.realtime import Client, Realtime
from scallion.response import html

app = App()


class Say(msgspec.Struct):
    text: str


class Echoed(msgspec.Struct):
    text: str
    length: int


def member(client: Client, channel: str) -> tuple[str, Any] | None:
    nick = client.connection.query_params["nick"]
    return (nick, {"nick": nick}) if nick else None


rt = Realtime(app.broker, member=member, authorize=lambda scope, channel: not channel.startswith("private"))


@rt.on("echo")
async def echo(msg: Say) -> Echoed:
    return Echoed(msg.text, len(msg.text))


@rt.on("nudge")
async def nudge(msg: Say, client: Client) -> None:
    await client.emit("notice", {"text": msg.text})


rt.mount(app, "/realtime")


@app.on_stop
async def close_broker() -> None:
    await app.broker.close()


@app.route("/publish", methods=["POST"])
async def publish() -> dict[str, Any]:
    return {"offset": await rt.publish("room", await request.json())}


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>realtime test page</title></head>
<body><ul id="log"></ul>
<script type="module">
import { connect, RealtimeError } from "/realtime/client.js";
const params = new URLSearchParams(location.search);
const nick = params.get("nick") || "";
window.states = [];
window.messages = [];
window.presence = [];
const rt = connect("/realtime?nick=" + encodeURIComponent(nick), { maxDelay: Number(params.get("maxDelay") || 5000) });
window.rt = rt;
window.RealtimeError = RealtimeError;
rt.onState((state) => window.states.push([state, performance.now()]));
window.joined = rt.join("room", {
  onMessage: (data, meta) => {
    window.messages.push([data.text, meta.offset, performance.now()]);
    const li = document.createElement("li");
    li.textContent = data.text;
    document.getElementById("log").appendChild(li);
  },
  onPresence: (event) => window.presence.push([event.event, event.member]),
});
</script></body></html>"""


@app.route("/")
async def index() -> Any:
    return html(PAGE)
