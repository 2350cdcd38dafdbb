"""HTTP over real servers: a 10 MB body gets 413 and the server keeps serving; errors are 500 and logged."""

from __future__ import annotations

import http.client
from collections.abc import Callable

import pytest
from servers import ALL_SERVERS, RunningServer

pytestmark = pytest.mark.timeout(60)

SERVER_KINDS = ALL_SERVERS


@pytest.fixture(scope="module")
def server(serve_app: Callable[..., RunningServer]) -> RunningServer:
    return serve_app("http_app:app")


def request(server: RunningServer, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_ten_megabyte_body_is_413_and_the_next_request_is_served(server: RunningServer) -> None:
    try:
        status, _ = request(server, "POST", "/echo", b"x" * (10 * 1024 * 1024))
    except (BrokenPipeError, ConnectionResetError):
        status = 413  # the server answered and closed before the client finished sending
    assert status == 413
    assert request(server, "GET", "/hello") == (200, b"hello")
    assert request(server, "POST", "/echo", b"small body") == (200, b"small body")


def test_handler_exception_is_500_with_the_traceback_logged(server: RunningServer) -> None:
    mark = server.log_mark()
    assert request(server, "GET", "/boom")[0] == 500
    assert "ValueError: kaboom in a handler" in server.log(mark)
