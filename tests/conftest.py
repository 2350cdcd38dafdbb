"""Shared fixtures. Real-server tests: ``server_kind`` parametrizes a test module over every server in
``tests.servers.SERVERS``; ``serve_app("module:app")`` starts that app on that server once per module."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from redis_server import RedisServer, start_redis
from servers import SERVERS, RunningServer, start_server


@pytest.fixture(scope="module", params=SERVERS)
def server_kind(request: pytest.FixtureRequest) -> str:
    """The server a real-server test runs against."""
    return str(request.param)


@pytest.fixture(scope="module")
def serve_app(server_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RunningServer]]:
    """``serve_app("module:app")``: start an app (from tests/apps or examples) on ``server_kind``, kept running
    for the whole module and stopped by PID at its end."""
    started: list[RunningServer] = []

    def serve(target: str, **env: str) -> RunningServer:
        server = start_server(server_kind, target, tmp_path_factory.mktemp("servers"), env)
        started.append(server)
        return server

    yield serve
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis server for the whole session (pub/sub tests), stopped by PID at the end."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()
