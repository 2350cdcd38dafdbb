"""The demo chat (examples/demo.py) in headless Chromium with the Redis broker: two pages join a room, one sends
(through the page's form), the other shows it; then the pages' server process is restarted while they stay open,
a third client on a second server process sends meanwhile, and once the server is back both pages show those
messages, exactly once, in order (the client rejoins from its last offset; Redis kept the history)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import Proxy, chromium
from redis_server import RedisServer
from servers import RunningServer, start_server
from websockets.sync.client import connect

SERVER = "uvicorn-websockets-sansio"

pytestmark = pytest.mark.timeout(55)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def lines(page: Any) -> list[str]:
    return list(page.locator("#messages li").all_text_contents())


def carol_says(port: int, texts: list[str]) -> list[str]:
    """A third client, on the other server process, speaking the protocol with python-websockets."""
    offsets = []
    with connect(f"ws://127.0.0.1:{port}/realtime?nick=carol") as ws:
        for n, text in enumerate(texts, 1):
            ws.send(json.dumps({"event": "say", "data": {"room": "room:random", "text": text}, "id": n}))
            reply = json.loads(ws.recv(timeout=5))
            assert reply["id"] == n, reply
            offsets.append(reply["data"])
    return offsets


def test_two_pages_chat_and_recover_across_a_server_restart(
    browser: Any, redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"SCALLION_BROKER": redis_server.url}
    pages_server: RunningServer = start_server(SERVER, "demo:app", tmp_path, env)
    other = start_server(SERVER, "demo:app", tmp_path, env)
    proxy = Proxy(pages_server.port)  # the pages' address stays the same across the restart
    try:
        ada = browser.new_page()
        bob = browser.new_page()
        for page, nick in ((ada, "ada"), (bob, "bob")):
            page.goto(f"http://127.0.0.1:{proxy.port}/?nick={nick}&room=random")
            page.evaluate("window.ready")
        ada.wait_for_function("document.querySelectorAll('#members li').length === 2", timeout=5_000)
        ada.fill("#text", "hello bob")
        ada.press("#text", "Enter")
        bob.wait_for_function("document.querySelectorAll('#messages li').length === 1", timeout=5_000)
        assert lines(bob) == ["ada: hello bob"]
        assert bob.locator("#members li").all_text_contents() == ["ada", "bob"]

        pages_server.stop()  # the pages stay open, reconnecting
        for page in (ada, bob):
            page.wait_for_function("document.getElementById('state').textContent === 'reconnecting'", timeout=5_000)
        missed = [f"while you were away {n}" for n in range(1, 4)]
        carol_says(other.port, missed)
        restarted = start_server(SERVER, "demo:app", tmp_path, env)
        proxy.target = restarted.port
        back = time.monotonic()
        try:
            expected = ["ada: hello bob", *(f"carol: {text}" for text in missed)]
            for page in (ada, bob):
                page.wait_for_function(
                    f"document.querySelectorAll('#messages li').length >= {len(expected)}", timeout=15_000
                )
            recovered = time.monotonic() - back
            for page in (ada, bob):
                assert lines(page) == expected  # exactly once, in order
                page.wait_for_function("document.getElementById('state').textContent === 'open'", timeout=5_000)
            bob.fill("#text", "welcome back")
            bob.press("#text", "Enter")
            ada.wait_for_function(
                f"document.querySelectorAll('#messages li').length === {len(expected) + 1}", timeout=5_000
            )
            assert lines(ada)[-1] == "bob: welcome back"
            with capsys.disabled():
                print(
                    f"\n[demo] server restarted: both pages showed the 3 missed messages {recovered * 1000:.0f} ms "
                    "after the new process listened"
                )
        finally:
            restarted.stop()
    finally:
        proxy.close()
        other.stop()
        if pages_server.process.poll() is None:
            pages_server.stop()
