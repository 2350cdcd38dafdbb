"""Receive-side limits over real servers. scallion reads ahead what a client sends while its handler does not
read, so that it notices a departed client whatever the handler does (issue 8). The read-ahead is bounded
(``max_queue`` messages, ``max_read_ahead`` bytes): a client that floods a handler that does not read is closed
with 1008 within the bound, the server's memory stays bounded and the handler's ``finally`` and hooks run;
within the bound, once the handler reads, every message arrives, in order."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request

import pytest
from servers import RunningServer, new_key, read_until_closed
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

pytestmark = pytest.mark.timeout(60)

MESSAGE_SIZE = 60_000  # under the apps' max_message_size (64 KiB)
TOTAL = 200 * 1024 * 1024 // MESSAGE_SIZE
"""The client tries to send 200 MB while the handler does not read."""
READ_AHEAD = 1024 * 1024
"""scallion's default max_read_ahead: what may wait unread in scallion before it closes with 1008."""
RSS_LIMIT = 64 * 1024 * 1024
"""At most this much may the server's memory grow meanwhile."""
CLOSE_CODES = {
    "uvicorn-websockets-sansio": {1008},
    "uvicorn-wsproto": {1008},
    # granian closes the TCP connection right after the close frame, with the flood still unread in its socket:
    # the kernel answers with RST, and the client's kernel may discard the close frame that had arrived (measured:
    # lost in 2 of 8 runs). The connection still ends, within the bound.
    "granian": {1008, None},
}
"""The close codes a flooding client may see, per server."""


@pytest.fixture(scope="module", params=["gen", "obj"])
def server(serve_app, request: pytest.FixtureRequest) -> RunningServer:  # type: ignore[no-untyped-def]
    return serve_app(f"lifecycle_{request.param}:app")


def post(url: str) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5) as response:
        return bytes(response.read())


async def test_a_flood_to_a_handler_that_does_not_read_is_closed_1008_with_bounded_memory(
    server: RunningServer,
) -> None:
    key = new_key()
    # no permessage-deflate: compressed, 200 MB of padding would be a few kB on the wire
    async with connect(server.ws(f"/slow?key={key}"), compression=None, max_queue=None) as ws:
        assert await ws.recv() == "ready"
        rss_before = server.rss()
        sent = 0
        padding = os.urandom(MESSAGE_SIZE - 8)
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(20):
                while sent < TOTAL:
                    await ws.send(sent.to_bytes(8, "big") + padding)
                    sent += 1
                    # a client that never lets its loop read would not see the server's close frame: once the
                    # server closes, it discards what arrives, so the client's sends would never block again
                    await asyncio.sleep(0)
        grown = server.rss() - rss_before
        _, code, reason = await read_until_closed(ws)
    print(f"{server.kind}: closed {code} after {sent} messages ({sent * MESSAGE_SIZE / 2**20:.1f} MiB); "
          f"server RSS grew {grown / 2**20:.1f} MiB")
    assert code in CLOSE_CODES[server.kind]
    assert code is None or "read-ahead full" in reason
    assert sent < TOTAL
    assert grown < RSS_LIMIT
    events = await server.wait_events(key)
    assert [e for e in events if e in ("on_disconnect", "on_close")] == ["on_close"]


async def test_within_the_read_ahead_bound_nothing_is_lost(server: RunningServer) -> None:
    key = new_key()
    count = READ_AHEAD // MESSAGE_SIZE - 1  # fits in the read-ahead
    async with connect(server.ws(f"/slow?key={key}"), compression=None) as ws:
        assert await ws.recv() == "ready"
        padding = os.urandom(MESSAGE_SIZE - 8)
        for sent in range(count):
            await ws.send(sent.to_bytes(8, "big") + padding)
        assert await asyncio.to_thread(post, server.http(f"/release/{key}")) == b"released"
        await ws.send("end")
        report = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert report == {"count": count, "in_order": True}
