"""The `make demo` app: a page at ``/`` whose text box talks to an echo websocket at ``/echo``, and ``/hello``.

Serve it with ``scallion run examples/demo.py`` (or ``make demo``) and open http://127.0.0.1:8000/.
"""

from scallion import App, websocket
from scallion.response import html

app = App()

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>scallion echo</title>
  <style>
    body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; }
    #log { border: 1px solid #ccc; min-height: 10rem; padding: .5rem; white-space: pre-wrap; }
    .me { color: #555; } .echo { color: #0a5; } .info { color: #999; font-style: italic; }
  </style>
</head>
<body>
  <h1>scallion echo</h1>
  <form id="form">
    <input id="text" autocomplete="off" placeholder="type a message" autofocus>
    <button>send</button>
  </form>
  <div id="log"></div>
  <script>
    const log = document.getElementById("log");
    const input = document.getElementById("text");
    function show(text, kind) {
      const line = document.createElement("div");
      line.className = kind;
      line.textContent = text;
      log.appendChild(line);
    }
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/echo");
    socket.onopen = () => show("connected", "info");
    socket.onmessage = (event) => show("echo: " + event.data, "echo");
    socket.onclose = (event) => show("closed (" + event.code + ")", "info");
    document.getElementById("form").onsubmit = (event) => {
      event.preventDefault();
      if (input.value && socket.readyState === WebSocket.OPEN) {
        show("me: " + input.value, "me");
        socket.send(input.value);
        input.value = "";
      }
    };
  </script>
</body>
</html>
"""


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
