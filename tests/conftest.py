"""Shared fixtures. Real-server tests: ``server_kind`` parametrizes a test module over the servers in its
``SERVER_KINDS`` (by default ``tests.servers.SERVERS``; ``ALL_SERVERS`` adds hypercorn and daphne);
``serve_app("module:app")`` starts that app on that server once per module.

``SCALLION_TEST_SERVERS=hypercorn,daphne`` (comma-separated kinds) runs every real-server module on those
servers only, whatever its ``SERVER_KINDS``: to try a module on one server, or a server on every module."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from redis_server import RedisServer, start_redis
from servers import ALL_SERVERS, SERVERS, RunningServer, start_server


def server_kinds(module: object) -> tuple[str, ...]:
    """The server kinds a test module runs on: ``SCALLION_TEST_SERVERS`` if set, else its ``SERVER_KINDS``."""
    chosen = os.environ.get("SCALLION_TEST_SERVERS", "").strip()
    if chosen:
        kinds = tuple(kind.strip() for kind in chosen.split(",") if kind.strip())
        unknown = [kind for kind in kinds if kind not in ALL_SERVERS]
        if unknown:
            raise pytest.UsageError(f"SCALLION_TEST_SERVERS: unknown server kinds {unknown}; known: {ALL_SERVERS}")
        return kinds
    return tuple(getattr(module, "SERVER_KINDS", SERVERS))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``server_kind`` (module scope) over the module's server kinds."""
    if "server_kind" in metafunc.fixturenames:
        metafunc.parametrize("server_kind", server_kinds(metafunc.module), indirect=True, scope="module")


@pytest.fixture(scope="module")
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
