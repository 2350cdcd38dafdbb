"""An in-process fake ASGI server that plays ping-pong with an application, for counting instructions.

It calls the application exactly as uvicorn (httptools + websockets-sansio) does -- a new task per HTTP
request and per websocket connection, scope dicts with the same keys (``extensions:
{"websocket.http.response": {}}`` for websockets), ``receive`` on an :class:`asyncio.Queue`, ``send``
awaiting an :class:`asyncio.Event` that is set -- but without sockets, so the only work left is the
application's and the event loop's.

The fake client behaves like a network peer in a closed loop: it delivers the next message (or request)
only after the application has sent the echo (or the whole response), and always in a later iteration of
the event loop (``call_soon``). A websocket stays open for all ``count`` messages; then the client
disconnects (``websocket.disconnect`` 1000), after which ``send`` raises :class:`ClientDisconnected` as
uvicorn's does. Real time passes normally, so timers such as scallion's disconnect watchdog fire as they
would in a server.

The broadcast (``--kind broadcast``) opens ``--subscribers`` websockets on ``--path`` and one publisher on
``--pub-path``; once a probe message has reached every subscriber (so all are registered), the publisher
sends ``count`` messages, each only after every subscriber has had the previous one; the unit is a delivery.

``python -m bench.pingpong --app bench.apps.raw:app --kind ws --path /ws --count 2000`` runs one of these
on uvloop; :mod:`bench.instructions` runs that under callgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

Message = dict[str, Any]
ASGIApp = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Coroutine[Any, Any, None]
]

PAYLOAD = "x" * 64
"""The 64-byte text message the fake client sends."""

SERVER = ("127.0.0.1", 8000)
CLIENT = ("127.0.0.1", 54321)
ASGI = {"version": "3.0", "spec_version": "2.4"}


class ClientDisconnected(OSError):
    """Raised by ``send`` once the client has gone, like uvicorn's exception of the same name."""


class PingPongError(RuntimeError):
    """The application did not answer as an echo / hello server should."""


def load_app(target: str) -> ASGIApp:
    """``"package.module:attribute"`` -> the ASGI application."""
    module_name, _, attribute = target.partition(":")
    app: ASGIApp = getattr(importlib.import_module(module_name), attribute or "app")
    return app


def websocket_scope(path: str) -> Message:
    """A websocket scope with the keys and shapes uvicorn's websockets-sansio protocol builds."""
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "ws",
        "server": SERVER,
        "client": CLIENT,
        "root_path": "",
        "path": path,
        "raw_path": path.encode("ascii"),
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
            (b"sec-websocket-version", b"13"),
        ],
        "subprotocols": [],
        "state": {},
        "extensions": {"websocket.http.response": {}},
    }


def http_scope(path: str) -> Message:
    """A ``GET`` scope with the keys and shapes uvicorn's httptools protocol builds."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": SERVER,
        "client": CLIENT,
        "scheme": "http",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"pingpong"), (b"accept", b"*/*")],
        "state": {},
        "method": "GET",
        "path": path,
        "raw_path": path.encode("ascii"),
        "query_string": b"",
    }


class FakeSocket:
    """The server side of one fake websocket: ``receive`` on a queue that starts with ``websocket.connect``, and
    the set event a ``send`` awaits (as uvicorn's awaits its drain)."""

    def __init__(self) -> None:
        self.client_gone = False
        self.queue: asyncio.Queue[Message] = asyncio.Queue()
        self.writable = asyncio.Event()
        self.writable.set()
        self.queue.put_nowait({"type": "websocket.connect"})

    async def receive(self) -> Message:
        """What the application awaits: the next event from the client."""
        return await self.queue.get()


class WebSocketPeer(FakeSocket):
    """One fake websocket connection: the server side's ``receive``/``send`` and the client's behaviour."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, count: int, payload: str = PAYLOAD, reply: str | None = None
    ) -> None:
        super().__init__()
        self.loop = loop
        self.remaining = count
        self.payload = payload
        self.reply = payload if reply is None else reply
        """What the client expects back (the payload itself: an echo)."""
        self.echoes = 0
        self.close_code: int | None = None
        self.denied = False

    async def send(self, message: Message) -> None:
        """What the application calls; the client answers an accept or an echo with its next message."""
        await self.writable.wait()
        if self.client_gone:
            raise ClientDisconnected()
        kind = message["type"]
        if kind == "websocket.send":
            data = message.get("text")
            if data != self.reply:
                raise PingPongError(f"expected {self.reply!r}, got {message!r}")
            self.echoes += 1
            self._next()
        elif kind == "websocket.accept":
            self._next()
        elif kind == "websocket.close":
            self.close_code = message.get("code", 1000)
            self.client_gone = True
        elif kind.startswith("websocket.http.response"):
            self.denied = True
        else:
            raise PingPongError(f"unexpected message {message!r}")

    def _next(self) -> None:
        if self.remaining:
            self.remaining -= 1
            self.loop.call_soon(self.queue.put_nowait, {"type": "websocket.receive", "text": self.payload})
        else:
            self.loop.call_soon(self._disconnect)

    def _disconnect(self) -> None:
        self.client_gone = True
        self.queue.put_nowait({"type": "websocket.disconnect", "code": 1000})


class Broadcast:
    """The clients of a broadcast: the deliveries their subscribers have seen, and the round being waited for."""

    def __init__(self, loop: asyncio.AbstractEventLoop, subscribers: int, payload: str) -> None:
        self.loop = loop
        self.subscribers = subscribers
        self.payload = payload
        self.delivered = 0
        self.expected = 0
        self.round: asyncio.Future[None] = loop.create_future()

    def publish(self, publisher: FanoutPeer) -> asyncio.Future[None]:
        """The publisher sends one message; the future is done when every subscriber has it."""
        self.expected += self.subscribers
        self.round = self.loop.create_future()
        publisher.say(self.payload)
        return self.round

    def deliver(self) -> None:
        """A subscriber got the message."""
        self.delivered += 1
        if self.delivered == self.expected and not self.round.done():
            self.round.set_result(None)


class FanoutPeer(FakeSocket):
    """One fake websocket of a broadcast (a subscriber, or the publisher, which is sent nothing)."""

    def __init__(self, broadcast: Broadcast) -> None:
        super().__init__()
        self.broadcast = broadcast
        self.accepted: asyncio.Future[None] = broadcast.loop.create_future()

    async def send(self, message: Message) -> None:
        """What the application calls (awaiting, as :meth:`WebSocketPeer.send` does)."""
        await self.writable.wait()
        if self.client_gone:
            raise ClientDisconnected()
        kind = message["type"]
        if kind == "websocket.send":
            if message.get("text") != self.broadcast.payload:
                raise PingPongError(f"expected {self.broadcast.payload!r}, got {message!r}")
            self.broadcast.deliver()
        elif kind == "websocket.accept":
            self.accepted.set_result(None)
        elif kind == "websocket.close":
            self.client_gone = True
        else:
            raise PingPongError(f"unexpected message {message!r}")

    def say(self, text: str) -> None:
        """The client sends ``text``, in a later loop iteration."""
        self.broadcast.loop.call_soon(self.queue.put_nowait, {"type": "websocket.receive", "text": text})

    def leave(self) -> None:
        """The client disconnects."""
        self.client_gone = True
        self.queue.put_nowait({"type": "websocket.disconnect", "code": 1000})


class HttpPeer:
    """A fake keep-alive HTTP client sending ``GET path`` again as soon as each response is complete."""

    def __init__(self, loop: asyncio.AbstractEventLoop, app: ASGIApp, path: str, count: int) -> None:
        self.loop = loop
        self.app = app
        self.path = path
        self.remaining = count
        self.responses = 0
        self.body = b""
        self.status = 0
        self.failure: BaseException | None = None
        self.done: asyncio.Future[None] = loop.create_future()
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Send the next request, or finish."""
        if not self.remaining:
            if not self.done.done():
                self.done.set_result(None)
            return
        self.remaining -= 1
        cycle = _HttpCycle(self)
        task = self.loop.create_task(cycle.run(http_scope(self.path)))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def complete(self, status: int, body: bytes) -> None:
        """A whole response arrived: check it and send the next request in a later loop iteration."""
        self.responses += 1
        self.status = status
        self.body = body
        if status != 200:
            self.fail(PingPongError(f"GET {self.path} answered {status}"))
            return
        self.loop.call_soon(self.start)

    def fail(self, exc: BaseException) -> None:
        """Stop the run with ``exc``."""
        self.failure = exc
        if not self.done.done():
            self.done.set_exception(exc)


class _HttpCycle:
    """One request/response, like uvicorn's ``RequestResponseCycle``."""

    def __init__(self, peer: HttpPeer) -> None:
        self.peer = peer
        self.status = 0
        self.chunks: list[bytes] = []
        self.request_sent = False
        self.disconnected: asyncio.Event | None = None  # made when the app waits past the request

    async def run(self, scope: Message) -> None:
        try:
            await self.peer.app(scope, self.receive, self.send)
        except BaseException as exc:
            self.peer.fail(exc)

    async def receive(self) -> Message:
        if not self.request_sent:
            self.request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        self.disconnected = asyncio.Event()
        await self.disconnected.wait()  # the fake client never leaves mid-request
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
        elif kind == "http.response.body":
            self.chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                self.peer.complete(self.status, b"".join(self.chunks))
        else:
            raise PingPongError(f"unexpected message {message!r}")


async def lifespan_startup(app: ASGIApp) -> Callable[[], Awaitable[None]]:
    """Run the lifespan startup as uvicorn's ``lifespan=auto`` does; returns the shutdown coroutine."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    started = asyncio.Event()
    stopped = asyncio.Event()

    async def send(message: Message) -> None:
        if message["type"].startswith("lifespan.startup"):
            started.set()
        elif message["type"].startswith("lifespan.shutdown"):
            stopped.set()

    async def run() -> None:
        with contextlib.suppress(Exception):  # an app without lifespan support: uvicorn carries on
            await app({"type": "lifespan", "asgi": ASGI, "state": {}}, inbox.get, send)
        started.set()
        stopped.set()

    task = asyncio.get_running_loop().create_task(run())
    await inbox.put({"type": "lifespan.startup"})
    await started.wait()

    async def shutdown() -> None:
        await inbox.put({"type": "lifespan.shutdown"})
        await stopped.wait()
        await task

    return shutdown


async def drive_websocket(
    app: ASGIApp, path: str, count: int, payload: str = PAYLOAD, *, reply: str | None = None, freeze: bool = False
) -> WebSocketPeer:
    """Open one websocket on ``path``, echo ``count`` messages, disconnect; returns the peer to inspect.
    ``freeze``: ``gc.freeze()`` after startup (see :func:`run`)."""
    loop = asyncio.get_running_loop()
    shutdown = await lifespan_startup(app)
    if freeze:
        gc.freeze()
    peer = WebSocketPeer(loop, count, payload, reply)
    await loop.create_task(app(websocket_scope(path), peer.receive, peer.send))
    await shutdown()
    if peer.echoes != count:
        raise PingPongError(f"{path}: {peer.echoes} echoes for {count} messages")
    return peer


async def drive_http(app: ASGIApp, path: str, count: int, *, freeze: bool = False) -> HttpPeer:
    """Send ``count`` sequential ``GET path`` requests; returns the peer to inspect.
    ``freeze``: ``gc.freeze()`` after startup (see :func:`run`)."""
    loop = asyncio.get_running_loop()
    shutdown = await lifespan_startup(app)
    if freeze:
        gc.freeze()
    peer = HttpPeer(loop, app, path, count)
    peer.start()
    await peer.done
    await shutdown()
    if peer.responses != count:
        raise PingPongError(f"{path}: {peer.responses} responses for {count} requests")
    return peer


async def drive_broadcast(
    app: ASGIApp, path: str, pub_path: str, count: int, subscribers: int, *, freeze: bool = False
) -> Broadcast:
    """``subscribers`` websockets on ``path``, a publisher on ``pub_path``, a probe, then ``count`` messages to
    everyone (see the module docstring); returns the clients' record. ``freeze``: see :func:`run`."""
    loop = asyncio.get_running_loop()
    shutdown = await lifespan_startup(app)
    if freeze:
        gc.freeze()
    broadcast = Broadcast(loop, subscribers, PAYLOAD)
    peers = [FanoutPeer(broadcast) for _ in range(subscribers)]
    tasks = [loop.create_task(app(websocket_scope(path), p.receive, p.send)) for p in peers]
    await asyncio.wait_for(asyncio.gather(*(p.accepted for p in peers)), 60)
    await asyncio.sleep(0.05)  # accepted, then subscribed: let every handler reach its subscription
    publisher = FanoutPeer(broadcast)
    tasks.append(loop.create_task(app(websocket_scope(pub_path), publisher.receive, publisher.send)))
    probe = broadcast.publish(publisher)
    try:
        await asyncio.wait_for(asyncio.shield(probe), 30)
    except TimeoutError:
        raise PingPongError(f"the probe reached {broadcast.delivered} of {subscribers} subscribers") from None
    for _ in range(count):
        await asyncio.wait_for(broadcast.publish(publisher), 30)
    for peer in [*peers, publisher]:
        peer.leave()
    await asyncio.gather(*tasks)
    await shutdown()
    return broadcast


def run(
    target: str,
    kind: str,
    path: str,
    count: int,
    payload: str = PAYLOAD,
    reply: str | None = None,
    pub_path: str = "/pubq",
    subscribers: int = 1000,
) -> int:
    """Import the app, then drive it on uvloop; returns the number of echoes or responses.

    Everything alive after startup (modules, the app) is moved out of the garbage collector's reach with
    ``gc.freeze()``, so the occasional full collection costs the same whatever was imported: the per-message
    difference then measures the app's own work, and repeat runs agree closely.
    """
    import uvloop

    app = load_app(target)
    if kind == "broadcast":
        done = uvloop.run(drive_broadcast(app, path, pub_path, count, subscribers, freeze=True))
        return done.delivered - subscribers  # without the probe
    if kind == "ws":
        return uvloop.run(drive_websocket(app, path, count, payload, reply=reply, freeze=True)).echoes
    return uvloop.run(drive_http(app, path, count, freeze=True)).responses


def main(argv: list[str] | None = None) -> int:
    """Command line: drive one app once."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", required=True, help="module:attribute of the ASGI app")
    parser.add_argument("--kind", choices=["ws", "http", "broadcast"], required=True)
    parser.add_argument("--path", default="/")
    parser.add_argument("--count", type=int, default=1000, help="messages or requests (0 is allowed)")
    parser.add_argument("--payload", default=PAYLOAD, help="the text message the client sends (websockets)")
    parser.add_argument("--reply", help="the text the client expects back (default: the payload, an echo)")
    parser.add_argument("--pub-path", default="/pubq", help="the broadcast's publisher")
    parser.add_argument("--subscribers", type=int, default=1000, help="the broadcast's subscribers")
    args = parser.parse_args(argv)
    done = run(args.app, args.kind, args.path, args.count, args.payload, args.reply, args.pub_path, args.subscribers)
    print(f"{args.app} {args.kind} {args.path}: {done}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
