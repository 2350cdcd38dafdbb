"""Receive-side backpressure over real servers: a handler that does not read makes the client's sends block
(scallion stops reading, the server stops reading the socket, TCP pushes back) instead of the server
buffering without bound; once the handler reads, every message arrives, in order."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request

import pytest
from servers import RunningServer, new_key
from websockets.asyncio.client import connect

pytestmark = pytest.mark.timeout(60)

MESSAGE_SIZE = 60_000  # under the apps' max_message_size (64 KiB)
TOTAL = 200 * 1024 * 1024 // MESSAGE_SIZE
"""The client tries to send 200 MB while the handler does not read."""
STALL_WAIT = 2.0
"""Seconds the client keeps trying. Without backpressure loopback takes far more than STALL_LIMIT in that time."""
STALL_LIMIT = 50 * 1024 * 1024
"""At most this much may be accepted from the client while the handler does not read."""
RSS_LIMIT = 64 * 1024 * 1024
"""At most this much may the server's memory grow meanwhile."""


@pytest.fixture(scope="module", params=["gen", "obj"])
def server(serve_app, request: pytest.FixtureRequest) -> RunningServer:  # type: ignore[no-untyped-def]
    return serve_app(f"lifecycle_{request.param}:app")


def post(url: str) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5) as response:
        return bytes(response.read())


async def test_a_handler_that_does_not_read_pushes_back_and_loses_nothing(server: RunningServer) -> None:
    key = new_key()
    # no permessage-deflate: compressed, 200 MB of padding would be a few kB on the wire
    async with connect(server.ws(f"/slow?key={key}"), compression=None) as ws:
        assert await ws.recv() == "ready"
        rss_before = server.rss()
        sent = 0
        stop = asyncio.Event()

        async def flood() -> None:
            nonlocal sent
            padding = os.urandom(MESSAGE_SIZE - 8)
            while sent < TOTAL and not stop.is_set():
                await ws.send(sent.to_bytes(8, "big") + padding)
                sent += 1

        flooding = asyncio.create_task(flood())
        done, _ = await asyncio.wait({flooding}, timeout=STALL_WAIT)
        accepted, grown = sent * MESSAGE_SIZE, server.rss() - rss_before
        print(f"{server.kind}: {sent} messages ({accepted / 2**20:.1f} MiB) accepted while the handler did "
              f"not read; server RSS grew {grown / 2**20:.1f} MiB")
        assert not done, f"the client sent all {TOTAL * MESSAGE_SIZE / 2**20:.0f} MiB: nothing pushed back"
        assert accepted < STALL_LIMIT
        assert grown < RSS_LIMIT

        stop.set()
        assert await asyncio.to_thread(post, server.http(f"/release/{key}")) == b"released"
        await asyncio.wait_for(flooding, 10)  # the blocked send completes, then the loop stops
        await ws.send("end")
        report = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert report == {"count": sent, "in_order": True}
