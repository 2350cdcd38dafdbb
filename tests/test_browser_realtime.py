"""The JavaScript client in real headless Chromium (Playwright driving Debian's /usr/bin/chromium) against
tests/apps/realtime_app.py on a real uvicorn on 127.0.0.1: typed requests and error replies, pushes, channels
across two pages, and a page whose network is cut for 10 s (a TCP proxy between it and the server) showing
every message published meanwhile exactly once, in order, once it is back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import Proxy, chromium, post_json
from servers import RunningServer, start_server

SERVER = "uvicorn-websockets-sansio"
OUTAGE = 10.0
"""Seconds the page is offline in the resume test (the issue's number)."""

pytestmark = pytest.mark.timeout(55)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(SERVER, "realtime_app:app", tmp_path_factory.mktemp("browser"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def open_page(browser: Any, port: int, query: str = "") -> Any:
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{port}/{query}")
    page.wait_for_function("window.joined !== undefined", timeout=10_000)
    page.evaluate("window.joined")  # resolved: the page listens to the room
    return page


def test_typed_requests_errors_and_pushes(browser: Any, server: RunningServer) -> None:
    page = open_page(browser, server.port)
    assert page.evaluate("rt.request('echo', {text: 'héllo'})") == {"text": "héllo", "length": 5}
    error = page.evaluate(
        "rt.request('echo', {text: 7}).catch((e) => [e instanceof RealtimeError, e.code, e.field, e.message])"
    )
    assert error[:3] == [True, "invalid_payload", "$.text"] and "Expected `str`, got `int`" in error[3]
    assert page.evaluate("rt.request('nope', null).catch((e) => e.code)") == "unknown_event"
    assert page.evaluate("rt.join('private:x').catch((e) => e.code)") == "forbidden"
    pushed = page.evaluate(
        "new Promise((resolve) => { rt.on('notice', resolve); rt.request('nudge', {text: 'psst'}); })"
    )
    assert pushed == {"text": "psst"}
    assert page.evaluate("rt.request('echo', {text: 'still open'})")["length"] == 10
    assert [state for state, _ in page.evaluate("states")] == ["open"]
    page.close()


def test_two_pages_share_a_room_with_presence(browser: Any, server: RunningServer) -> None:
    ada = open_page(browser, server.port, "?nick=ada")
    bob = open_page(browser, server.port, "?nick=bob")
    ada.wait_for_function("presence.some(([e, m]) => e === 'join' && m === 'bob')", timeout=5_000)
    offset = post_json(server.port, "/publish", {"text": "hello both"})["offset"]
    for page in (ada, bob):
        page.wait_for_function("messages.length === 1", timeout=5_000)
        assert page.evaluate("messages.map(([t, o]) => [t, o])") == [["hello both", offset]]
        assert page.locator("#log li").all_text_contents() == ["hello both"]
    bob.close()
    ada.wait_for_function("presence.some(([e, m]) => e === 'leave' && m === 'bob')", timeout=5_000)
    ada.close()


def test_offline_for_10_s_then_every_message_once_in_order(
    browser: Any, server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy = Proxy(server.port)
    try:
        page = open_page(browser, proxy.port)
        before = post_json(server.port, "/publish", {"text": "before"})["offset"]
        page.wait_for_function("messages.length === 1", timeout=5_000)
        proxy.cut()
        page.wait_for_function("states.some(([s]) => s === 'reconnecting')", timeout=5_000)
        cut_at = time.monotonic()
        sent = [before]
        n = 0
        while time.monotonic() - cut_at < OUTAGE:  # published by the server while the page is offline
            n += 1
            sent.append(post_json(server.port, "/publish", {"text": f"offline {n}"})["offset"])
            page.wait_for_timeout(500)  # the page's clock: spread the messages over the outage
        assert page.evaluate("messages.length") == 1
        restored = page.evaluate("performance.now()")
        proxy.restore()
        page.wait_for_function(f"messages.length >= {len(sent)}", timeout=15_000)
        after = post_json(server.port, "/publish", {"text": "after"})["offset"]
        sent.append(after)
        page.wait_for_function(f"messages.length >= {len(sent)}", timeout=5_000)
        messages = page.evaluate("messages")
        assert [offset for _, offset, _ in messages] == sent  # exactly once, in order
        assert [text for text, _, _ in messages] == ["before", *(f"offline {i}" for i in range(1, n + 1)), "after"]
        reopened = next(t for s, t in page.evaluate("states") if s == "open" and t > restored)
        caught_up = messages[len(sent) - 2][2]
        with capsys.disabled():
            print(
                f"\n[resume] offline {OUTAGE:.0f} s, {n} messages missed: reconnected {reopened - restored:.0f} ms "
                f"after the network came back, all shown {caught_up - restored:.0f} ms after "
                f"({caught_up - reopened:.1f} ms from open to the last missed message)"
            )
        page.close()
    finally:
        proxy.close()
