"""The `make demo` app: a chat on ``scallion.realtime`` and its JavaScript client.

Rooms, a nickname, who is here (presence), the last 50 messages on joining a room (history), typing notices,
and messages that survive a reconnect (the client rejoins from the last offset it saw). Also ``/echo`` (a
plain Emmett-style echo socket), ``/hello`` and ``/asyncapi.json`` (the AsyncAPI document of the sockets).

One process, memory broker: ``scallion run examples/demo.py`` (or ``make demo``), then open
http://127.0.0.1:8000/ in two windows. Several workers share one Redis:
``scallion run examples/demo.py --workers 2 --broker redis://127.0.0.1:6379/0``.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

import msgspec

from scallion import App, websocket
from scallion.pubsub import History, MemoryBroker, RedisBroker
from scallion.realtime import Client, Realtime, RealtimeError
from scallion.response import html

ROOMS = ("lobby", "python", "random")
ROOM = re.compile(r"room:[a-z0-9-]{1,32}\Z")
HISTORY = {"typing:*": History(size=0)}  # typing notices are not worth keeping

_url = os.environ.get("SCALLION_BROKER", "").strip()
broker = RedisBroker(_url, history_for=HISTORY) if _url else MemoryBroker(history_for=HISTORY)
app = App()


def nickname(client: Client) -> str:
    """The nickname the page connected with (``?nick=``), tidied; ``guest-<id>`` without one."""
    nick = str(client.connection.query_params["nick"] or "").strip()[:24]
    return nick or f"guest-{client.id[:4]}"


def member(client: Client, channel: str) -> tuple[str, Any] | None:
    """Present in a room as the nickname (typing channels have no presence)."""
    return (nickname(client), {"nick": nickname(client)}) if channel.startswith("room:") else None


def authorize(scope: dict[str, Any], channel: str) -> bool:
    """Rooms are ``room:<name>`` and their typing channels ``typing:room:<name>``."""
    return bool(ROOM.match(channel.removeprefix("typing:")))


chat = Realtime(broker, authorize=authorize, member=member, title="scallion chat")


class Say(msgspec.Struct):
    """A chat line for a room."""

    room: str
    text: str


class Typing(msgspec.Struct):
    """The sender is typing in a room."""

    room: str


class Line(msgspec.Struct):
    """A chat line as the room sees it."""

    nick: str
    text: str
    at: float


@chat.on("say")
async def say(msg: Say, client: Client) -> str | None:
    """Send a line to a room; the reply is its offset."""
    text = msg.text.strip()
    if not text:
        raise RealtimeError("empty", "say something")
    if not ROOM.match(msg.room):
        raise RealtimeError("forbidden", f"no room {msg.room!r}")
    return await chat.publish(msg.room, Line(nickname(client), text[:2000], time.time()))


@chat.on("typing")
async def typing(msg: Typing, client: Client) -> None:
    """Tell the room that the sender is typing."""
    if ROOM.match(msg.room):
        await chat.publish(f"typing:{msg.room}", {"nick": nickname(client)})


chat.mount(app, "/realtime")
app.asyncapi("/asyncapi.json", title="scallion demo")


@app.on_stop
async def close_broker() -> None:
    await broker.close()


@app.route("/")
async def index() -> Any:
    return html(PAGE)


@app.route("/hello")
async def hello() -> str:
    return "Hello from scallion!"


@app.websocket("/echo")
async def echo() -> None:
    """Echo every message (a plain socket beside the realtime one)."""
    async for message in websocket:
        await websocket.send(message)


PAGE = (
    """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>scallion chat</title>
  <style>
    body { font-family: system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #222; }
    header { display: flex; gap: 1rem; align-items: center; padding: .6rem 1rem; background: #1f6f50; color: #fff; }
    header h1 { font-size: 1.1rem; margin: 0; flex: 1; }
    #state { font-size: .8rem; padding: .15rem .5rem; border-radius: 1rem; background: #999; }
    #state.open { background: #2ea043; } #state.reconnecting, #state.connecting { background: #d29922; }
    main { display: grid; grid-template-columns: 10rem 1fr 10rem; gap: 1rem; padding: 1rem;
           height: calc(100vh - 5rem); }
    nav button { display: block; width: 100%; margin-bottom: .3rem; padding: .4rem; border: 0; border-radius: .3rem;
                 background: #e3e6ea; text-align: left; cursor: pointer; }
    nav button.current { background: #1f6f50; color: #fff; }
    #room { display: flex; flex-direction: column; background: #fff; border-radius: .4rem; padding: .5rem; }
    #messages { flex: 1; overflow-y: auto; list-style: none; margin: 0; padding: 0; }
    #messages li { padding: .15rem 0; } #messages b { color: #1f6f50; }
    #typing { height: 1.2rem; font-size: .8rem; color: #888; font-style: italic; }
    form { display: flex; gap: .5rem; } #text { flex: 1; padding: .4rem; }
    aside h2, nav h2 { font-size: .8rem; text-transform: uppercase; color: #666; }
    #members { list-style: none; padding: 0; } #members li::before { content: "● "; color: #2ea043; }
  </style>
</head>
<body>
  <header><h1>scallion chat</h1>
    <label>nickname <input id="nick" size="12"></label><span id="state">connecting</span></header>
  <main>
    <nav><h2>rooms</h2><div id="rooms"></div></nav>
    <section id="room">
      <ul id="messages"></ul>
      <div id="typing"></div>
      <form id="say"><input id="text" autocomplete="off" placeholder="say something"><button>send</button></form>
    </section>
    <aside><h2>here</h2><ul id="members"></ul></aside>
  </main>
  <script type="module">
    import { connect } from "/realtime/client.js";
    const ROOMS = """
    + msgspec.json.encode(ROOMS).decode()
    + """;
    const $ = (id) => document.getElementById(id);
    const params = new URLSearchParams(location.search);
    const nick = params.get("nick") || localStorage.getItem("nick") || "guest" + Math.floor(Math.random() * 1000);
    $("nick").value = nick;
    $("nick").onchange = () => { localStorage.setItem("nick", $("nick").value); location.search = "?nick=" +
      encodeURIComponent($("nick").value) + "&room=" + encodeURIComponent(current); };
    const rt = connect("/realtime?nick=" + encodeURIComponent(nick));
    window.chat = rt;
    rt.onState((state) => { $("state").textContent = state; $("state").className = state; });
    let current = null;
    const members = new Map();
    const typists = new Map();
    function showMembers() {
      $("members").replaceChildren(...[...members.keys()].sort().map((name) => {
        const li = document.createElement("li"); li.textContent = name; return li;
      }));
    }
    function showTyping() {
      const now = Date.now();
      const names = [...typists].filter(([name, until]) => until > now && name !== nick).map(([name]) => name);
      $("typing").textContent = names.length ? names.join(", ") + (names.length > 1 ? " are" : " is") + " typing…" : "";
    }
    setInterval(showTyping, 500);
    async function enter(room) {
      if (current) { await rt.leave("room:" + current); await rt.leave("typing:room:" + current); }
      current = room;
      history.replaceState(null, "", "?nick=" + encodeURIComponent(nick) + "&room=" + room);
      document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("current", b.textContent === room));
      $("messages").replaceChildren();
      members.clear(); showMembers(); typists.clear();
      const joined = await rt.join("room:" + room, {
        history: 50,
        onMessage: (line) => {
          const li = document.createElement("li");
          const who = document.createElement("b"); who.textContent = line.nick;
          li.append(who, ": " + line.text);
          li.title = new Date(line.at * 1000).toLocaleTimeString();
          $("messages").append(li);
          li.scrollIntoView({ block: "end" });
          typists.delete(line.nick); showTyping();
        },
        onPresence: (event) => {
          if (event.event === "join") members.set(event.member, event.info); else members.delete(event.member);
          showMembers();
        },
        onJoin: (reply) => {
          members.clear();
          for (const [name, info] of Object.entries(reply.members || {})) members.set(name, info);
          showMembers();
        },
      });
      rt.join("typing:room:" + room, { onMessage: (t) => { typists.set(t.nick, Date.now() + 3000); showTyping(); } });
      return joined;
    }
    for (const room of ROOMS) {
      const button = document.createElement("button");
      button.textContent = room;
      button.onclick = () => enter(room);
      $("rooms").append(button);
    }
    let lastTyping = 0;
    $("text").oninput = () => {
      if (Date.now() - lastTyping > 1500) { lastTyping = Date.now(); rt.emit("typing", { room: "room:" + current }); }
    };
    $("say").onsubmit = async (event) => {
      event.preventDefault();
      const text = $("text").value;
      if (!text.trim()) return;
      $("text").value = "";
      try { await rt.request("say", { room: "room:" + current, text }); }
      catch (error) { $("text").value = text; $("typing").textContent = "not sent: " + error.message; }
    };
    window.ready = enter(ROOMS.includes(params.get("room")) ? params.get("room") : ROOMS[0]);
  </script>
</body>
</html>
"""
)
