"""The websocket load generator (picows on uvloop), run as its own process pinned to its own core.

Modes, each printing one JSON object on stdout:

* ``echo``: ``--connections`` sockets in a closed loop, each sending a ``--size``-byte text message as soon
  as the previous echo arrived; after ``--warmup`` seconds it counts for ``--duration`` seconds.
  -> ``{"value": msgs/s, "messages", "p50_us", "p99_us"}``
* ``broadcast``: ``--subscribers`` sockets on ``/sub`` and one publisher on ``/pub``; the publisher keeps
  ``--window`` messages in flight (a message is done when every subscriber has it).
  -> ``{"value": deliveries/s, "deliveries", "published"}``
* ``idle``: opens ``--connections`` sockets, prints ``{"connected": n}``, holds them until a line arrives on
  stdin, then closes them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

Stats = dict[str, Any]


def percentile(ordered: list[int], fraction: float) -> float:
    """The ``fraction`` quantile of already sorted values (nearest rank)."""
    if not ordered:
        return 0.0
    return float(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))])


class EchoLoad:
    """The shared state of the echo connections: sending on/off, counting on/off, round trips."""

    def __init__(self, size: int) -> None:
        self.payload = b"x" * size
        self.size = size
        self.sending = False
        self.counting = False
        self.samples: list[int] = []
        self.errors = 0


class EchoClient(WSListener):
    """One closed-loop connection: send, wait for the echo, record the round trip, send again."""

    def __init__(self, load: EchoLoad) -> None:
        super().__init__()
        self.load = load
        self.transport: WSTransport | None = None
        self.sent_at = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def fire(self) -> None:
        """Send the next message."""
        assert self.transport is not None
        self.sent_at = time.perf_counter_ns()
        self.transport.send(WSMsgType.TEXT, self.load.payload)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.TEXT:
            load = self.load
            if load.counting:
                load.samples.append(time.perf_counter_ns() - self.sent_at)
            if frame.payload_size != load.size:
                load.errors += 1
            if load.sending:
                self.fire()
        elif frame.msg_type is WSMsgType.CLOSE:
            transport.disconnect()


async def connect_all(factory: Callable[[], WSListener], url: str, count: int, concurrency: int = 100) -> list[Any]:
    """Open ``count`` connections, at most ``concurrency`` handshakes at a time; failures are returned too."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> Any:
        async with gate:
            try:
                _transport, listener = await ws_connect(factory, url, websocket_handshake_timeout=30)
            except Exception as exc:
                return exc
            return listener

    return await asyncio.gather(*(one() for _ in range(count)))


def close_all(listeners: list[Any]) -> None:
    """Close every connected socket politely."""
    for listener in listeners:
        transport = getattr(listener, "transport", None)
        if transport is not None and not transport.is_disconnected:
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()


async def echo(url: str, connections: int, size: int, warmup: float, duration: float) -> Stats:
    """The echo load; see the module docstring."""
    load = EchoLoad(size)
    opened = await connect_all(lambda: EchoClient(load), url, connections)
    clients = [c for c in opened if isinstance(c, EchoClient)]
    if len(clients) != connections:
        failures = [repr(c) for c in opened if not isinstance(c, EchoClient)]
        close_all(clients)
        return {"error": f"{len(clients)}/{connections} connected: {failures[:3]}"}
    load.sending = True
    for client in clients:
        client.fire()
    await asyncio.sleep(warmup)
    load.counting = True
    started = time.perf_counter()
    await asyncio.sleep(duration)
    load.counting = False
    elapsed = time.perf_counter() - started
    load.sending = False
    await asyncio.sleep(0.05)
    close_all(clients)
    samples = sorted(load.samples)
    return {
        "value": len(samples) / elapsed,
        "messages": len(samples),
        "p50_us": percentile(samples, 0.50) / 1000,
        "p99_us": percentile(samples, 0.99) / 1000,
        "errors": load.errors,
    }


class Fanout:
    """The broadcast's shared state: deliveries seen by all subscribers, publishes sent, the window."""

    def __init__(self, subscribers: int, window: int, payload: bytes) -> None:
        self.subscribers = subscribers
        self.window = window
        self.payload = payload
        self.delivered = 0
        self.published = 0
        self.publishing = False
        self.publisher: WSTransport | None = None

    def publish(self) -> None:
        """Send as many messages as the window allows."""
        assert self.publisher is not None
        limit = self.window * self.subscribers
        while self.publishing and self.published * self.subscribers - self.delivered < limit:
            self.published += 1
            self.publisher.send(WSMsgType.TEXT, self.payload)


class Subscriber(WSListener):
    """Counts what it receives and lets the publisher go on."""

    def __init__(self, fanout: Fanout) -> None:
        super().__init__()
        self.fanout = fanout
        self.transport: WSTransport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.TEXT:
            fanout = self.fanout
            fanout.delivered += 1
            if fanout.publishing:
                fanout.publish()
        elif frame.msg_type is WSMsgType.CLOSE:
            transport.disconnect()


class Publisher(WSListener):
    """The publishing connection (it receives nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.transport: WSTransport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport


async def broadcast(
    base: str, sub_path: str, pub_path: str, subscribers: int, window: int, warmup: float, duration: float
) -> Stats:
    """The broadcast load; see the module docstring."""
    fanout = Fanout(subscribers, window, b"b" * 64)
    opened = await connect_all(lambda: Subscriber(fanout), base + sub_path, subscribers)
    subs = [s for s in opened if isinstance(s, Subscriber)]
    (publisher,) = await connect_all(Publisher, base + pub_path, 1)
    if len(subs) != subscribers or not isinstance(publisher, Publisher):
        close_all(subs)
        return {"error": f"{len(subs)}/{subscribers} subscribers connected; publisher {publisher!r}"}
    transport = fanout.publisher = publisher.transport
    assert transport is not None
    # probe: one message must reach every subscriber (they are all registered on the server)
    await asyncio.sleep(0.2)
    deadline = time.monotonic() + 10
    transport.send(WSMsgType.TEXT, fanout.payload)
    while fanout.delivered < subscribers and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    if fanout.delivered != subscribers:
        close_all([*subs, publisher])
        return {"error": f"probe reached {fanout.delivered}/{subscribers} subscribers"}
    fanout.delivered = 0
    fanout.publishing = True
    fanout.publish()
    await asyncio.sleep(warmup)
    first, started = fanout.delivered, time.perf_counter()
    await asyncio.sleep(duration)
    last, elapsed = fanout.delivered, time.perf_counter() - started
    fanout.publishing = False
    published = fanout.published
    await asyncio.sleep(0.05)
    close_all([*subs, publisher])
    return {"value": (last - first) / elapsed, "deliveries": last - first, "published": published}


async def idle(url: str, connections: int) -> Stats:
    """Hold ``connections`` idle sockets until told to stop on stdin."""
    opened = await connect_all(Publisher, url, connections, concurrency=200)
    listeners = [c for c in opened if isinstance(c, Publisher)]
    failures = [repr(c) for c in opened if not isinstance(c, Publisher)]
    print(json.dumps({"connected": len(listeners), "failures": failures[:3]}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    close_all(listeners)
    await asyncio.sleep(0.2)
    return {"closed": len(listeners)}


def main(argv: list[str] | None = None) -> int:
    """Command line; see the module docstring."""
    import uvloop

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["echo", "broadcast", "idle"])
    parser.add_argument("--url", required=True, help="ws://host:port/path (broadcast: ws://host:port)")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--sub-path", default="/sub")
    parser.add_argument("--pub-path", default="/pub")
    args = parser.parse_args(argv)
    if args.mode == "echo":
        result = uvloop.run(echo(args.url, args.connections, args.size, args.warmup, args.duration))
    elif args.mode == "broadcast":
        result = uvloop.run(
            broadcast(args.url, args.sub_path, args.pub_path, args.subscribers, args.window, args.warmup, args.duration)
        )
    else:
        result = uvloop.run(idle(args.url, args.connections))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
