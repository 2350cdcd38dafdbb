"""The `make demo` app: a page at ``/`` with an echo box (websocket ``/echo``) and a chat room shared by every
open page (websocket ``/chat``, over ``scallion.pubsub``), and ``/hello``.

Serve it with ``scallion run examples/demo.py`` (or ``make demo``) and open http://127.0.0.1:8000/ in two
windows. With several workers, swap the MemoryBroker for ``RedisBroker("redis://...")``.
"""

from scallion import App, websocket
from scallion.pubsub import MemoryBroker, Message, merge
from scallion.response import html

app = App()
broker = MemoryBroker()

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>scallion demo</title>
  <style>
    body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; }
    .log { border: 1px solid #ccc; min-height: 8rem; padding: .5rem; white-space: pre-wrap; margin-bottom: 1.5rem; }
    .me { color: #555; } .them { color: #0a5; } .info { color: #999; font-style: italic; }
  </style>
</head>
<body>
  <h1>scallion demo</h1>
  <h2>echo</h2>
  <form id="echo-form"><input id="echo-text" autocomplete="off" placeholder="type a message" autofocus>
    <button>send</button></form>
  <div id="echo-log" class="log"></div>
  <h2>chat (open this page twice)</h2>
  <form id="chat-form"><input id="chat-text" autocomplete="off" placeholder="say something">
    <button>send</button></form>
  <div id="chat-log" class="log"></div>
  <script>
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    function connect(path, name, prefix) {
      const log = document.getElementById(name + "-log");
      const input = document.getElementById(name + "-text");
      function show(text, kind) {
        const line = document.createElement("div");
        line.className = kind;
        line.textContent = text;
        log.appendChild(line);
      }
      const socket = new WebSocket(scheme + location.host + path);
      socket.onopen = () => show("connected", "info");
      socket.onmessage = (event) => show(prefix + event.data, "them");
      socket.onclose = (event) => show("closed (" + event.code + ")", "info");
      document.getElementById(name + "-form").onsubmit = (event) => {
        event.preventDefault();
        if (input.value && socket.readyState === WebSocket.OPEN) {
          if (name === "echo") show("me: " + input.value, "me");
          socket.send(input.value);
          input.value = "";
        }
      };
    }
    connect("/echo", "echo", "echo: ");
    connect("/chat", "chat", "");
  </script>
</body>
</html>
"""


@app.on_stop
async def close_broker():
    await broker.close()


@app.route("/")
async def index():
    return html(PAGE)


@app.route("/hello")
async def hello():
    return "Hello from scallion!"


@app.websocket("/echo")
async def echo():
    async for message in websocket:
        await websocket.send(message)


@app.websocket("/chat")
async def chat():
    """Every message a page sends goes to every page (its own included), as ``guest-<port>: text``."""
    name = f"guest-{websocket.client[1]}" if websocket.client else "guest"
    async with broker.subscribe("chat") as room:
        await websocket.send(f"welcome, {name}")
        async for item in merge(websocket, room):
            if isinstance(item, Message):
                await websocket.send(item.data)
            else:
                await broker.publish("chat", f"{name}: {item}")
