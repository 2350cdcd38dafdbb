"""What the Chromium tests share: Debian's chromium driven by Playwright, and a loopback TCP proxy that can cut
the network between the page and the server (every connection reset, new ones refused) and bring it back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

from servers import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Playwright's ``Browser``), closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def post_json(port: int, path: str, data: Any, timeout: float = 5.0) -> Any:
    """POST ``data`` as JSON to 127.0.0.1:``port``; the decoded JSON answer."""
    body = json.dumps(data).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as answer:
        return json.loads(answer.read())


class Proxy:
    """A TCP proxy on 127.0.0.1 to ``target`` (a port), run in a thread of its own. :meth:`cut` resets every
    connection and refuses new ones (as a lost network does) until :meth:`restore`."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.cut_off = False
        self.transports: set[asyncio.WriteTransport] = set()
        self.loop = asyncio.new_event_loop()
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.started.wait(5):
            raise RuntimeError("the proxy did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self.started.set()
        self.loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_off:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        pair = {writer.transport, up_writer.transport}
        self.transports |= pair

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self.transports -= pair

    def _call(self, func: Any) -> None:
        done = threading.Event()

        def run() -> None:
            func()
            done.set()

        self.loop.call_soon_threadsafe(run)
        if not done.wait(5):
            raise RuntimeError("the proxy did not answer")

    def cut(self) -> None:
        """Reset every connection through the proxy; refuse new ones until :meth:`restore`."""

        def cut() -> None:
            self.cut_off = True
            for transport in list(self.transports):
                transport.abort()

        self._call(cut)

    def restore(self) -> None:
        """Let connections through again."""

        def restore() -> None:
            self.cut_off = False

        self._call(restore)

    def close(self) -> None:
        """Stop the proxy and its thread."""

        def stop() -> None:
            self.cut_off = True
            for transport in list(self.transports):
                transport.abort()
            self.server.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(stop)
        self.thread.join(5)
