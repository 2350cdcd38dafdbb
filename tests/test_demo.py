"""The `make demo` app (examples/demo.py): its page, /hello, the echo socket and the chat room."""

from __future__ import annotations

import pytest

from scallion.testing import TestClient

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def demo() -> object:
    from examples.demo import app

    return app


def test_the_page_and_hello(demo: object) -> None:
    with TestClient(demo) as client:
        page = client.get("/")
        assert page.status == 200 and 'new WebSocket(scheme + location.host + path)' in page.text
        assert client.get("/hello").text == "Hello from scallion!"


def test_echo(demo: object) -> None:
    with TestClient(demo) as client, client.websocket("/echo") as ws:
        ws.send("ping")
        assert ws.receive() == "ping"


def test_chat_reaches_every_page(demo: object) -> None:
    with TestClient(demo) as client, client.websocket("/chat") as one, client.websocket("/chat") as two:
        first, second = one.receive(), two.receive()
        assert first.startswith("welcome, guest") and second.startswith("welcome, guest")
        one.send("hi")
        name = first.removeprefix("welcome, ")
        assert one.receive() == two.receive() == f"{name}: hi"
