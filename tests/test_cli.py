"""The ``scallion`` command line, end to end: ``scallion run`` in a subprocess on a free port of 127.0.0.1 with
uvicorn and with granian, real HTTP requests (http.client) and a real websocket client (python-websockets),
``scallion routes``, the error messages for bad targets, ``python -m scallion``, and what an open websocket sees
when ``scallion run`` is stopped with SIGINT:

- uvicorn (one process, ``--workers 2``, ``--reload``): close code 1001 (going away), because ``scallion run``
  closes scallion websockets before uvicorn's own shutdown would close them with 1012.
- granian (2.8): 1001 as well: granian would drop open websocket connections without a close frame when it
  stops, before the ASGI lifespan shutdown runs; scallion's signal handler closes them first
  (scallion/granian_signals.py).

Every wait polls a condition against a deadline; servers are stopped by PID (SIGINT, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

pytestmark = pytest.mark.timeout(90)

_SCRIPT = Path(sys.executable).with_name("scallion")
SCALLION = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "scallion"]
"""The installed console script next to this interpreter (``python -m scallion`` if there is none)."""
PYTHON_M = [sys.executable, "-m", "scallion"]

APP_SOURCE = '''
"""A tiny app for tests/test_cli.py: an App (``app``), a build_server app (``core``) and things that are not."""

from scallion import App, build_server, standard_not_found, websocket, ws_send
from scallion.middlewares import apply_middleware, wrap_routes

app = App()


@app.route("/hello")
async def hello():
    return "hello from scallion run"


@app.route("/items/{item_id:int}", methods=["GET", "POST"])
async def item(item_id):
    return {"id": item_id}


@app.websocket("/echo")
async def echo():
    async for message in websocket:
        await websocket.send(message)


async def core_hello(request):
    return {"status": 200, "body": b"core hello", "headers": {"content-type": "text/plain"}}


@websocket
async def core_echo(scope, receiver):
    async for message in receiver:
        yield ws_send(message)


core = build_server(
    apply_middleware(wrap_routes([("/core", ["GET"], core_hello), ("/ws", ["WS"], core_echo)]))(standard_not_found)
)


async def raw(scope, receive, send):
    """A plain ASGI app: servable, but it has no route table."""


not_an_app = 42


def sync_function(scope, receive, send):
    pass


async def undecorated(scope, receiver):
    async for message in receiver:
        yield ws_send(message)


@app.route("/client")
async def client():
    from scallion import request

    return {"client": request.client[0]}


@app.route("/broker")
async def broker():
    return {"type": type(app.broker).__name__, "url": getattr(app.broker, "url", None)}
'''

BROKER_SOURCE = """
from scallion import App
from scallion.pubsub import MemoryBroker

news = MemoryBroker()
app = App()


@app.route("/hello")
async def hello():
    return "hello"
"""

BROKEN_SOURCE = """
raise RuntimeError("this module refuses to import")
"""

DEADLINE = 30.0
"""Seconds a server gets to accept TCP connections, and a stopped server to exit."""


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ``cliapp.py`` (the test app) and ``cli_broken.py`` (raises on import)."""
    directory = tmp_path_factory.mktemp("cliapp")
    (directory / "cliapp.py").write_text(textwrap.dedent(APP_SOURCE))
    (directory / "cli_broken.py").write_text(BROKEN_SOURCE)
    (directory / "cli_brokers.py").write_text(BROKER_SOURCE)
    return directory


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An unrelated current directory: file targets must work from anywhere."""
    return tmp_path_factory.mktemp("elsewhere")


# -- running servers ---------------------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """PIDs of the processes started by ``pid`` (workers, reloader children), from /proc."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError):
                for child in map(int, (task / "children").read_text().split()):
                    if child not in found:
                        found.append(child)
                        todo.append(child)
    return found


@dataclass
class Running:
    """A ``scallion run`` subprocess serving on ``127.0.0.1:port``."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def log(self) -> str:
        """What the server printed so far."""
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, method: str = "GET") -> tuple[int, str, bytes]:
        """``(status, content-type, body)`` of a real HTTP request."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            return response.status, response.getheader("content-type") or "", response.read()
        finally:
            connection.close()

    def ws(self, path: str) -> str:
        """The websocket URL of ``path``."""
        return f"ws://127.0.0.1:{self.port}{path}"

    def wait_for_log(self, text: str, deadline: float = DEADLINE) -> str:
        """The server's log once it contains ``text``."""
        end = time.monotonic() + deadline
        while text not in (log := self.log()):
            if time.monotonic() > end:
                raise AssertionError(f"{text!r} not in the log within {deadline}s:\n{log}")
            time.sleep(0.02)  # polling the log file, not synchronisation
        return log

    def wait_exit(self, timeout: float = DEADLINE) -> int:
        """Wait for the process to exit; its exit status."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"scallion run did not exit within {timeout}s:\n{self.log()}") from None


@contextlib.contextmanager
def scallion_run(target: str, *options: str, cwd: Path, command: list[str] = SCALLION) -> Iterator[Running]:
    """Start ``scallion run target --port <free> options...`` and wait until its port accepts connections;
    afterwards stop it (and anything it started) by PID."""
    port = free_port()
    log_path = cwd / f"scallion-run-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*command, "run", target, "--host", "127.0.0.1", "--port", str(port), *options],
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    running = Running(process, port, log_path)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + DEADLINE
        while True:
            if process.poll() is not None:
                raise AssertionError(f"scallion run exited with {process.returncode}:\n{running.log()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"scallion run did not listen on {port} within {DEADLINE}s:\n{running.log()}")
            time.sleep(0.05)  # poll interval, not synchronisation
        workers = descendants(process.pid)
        yield running
    finally:
        workers = list(dict.fromkeys([*workers, *descendants(process.pid)]))
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(DEADLINE)
        for pid in workers:  # only processes this test started, by PID
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def scallion(*args: str, cwd: Path, command: list[str] = SCALLION) -> subprocess.CompletedProcess[str]:
    """Run a short ``scallion`` command (not ``run`` of a servable app) to completion."""
    return subprocess.run([*command, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


# -- scallion run ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_run_serves_http_and_websockets(server: str, app_dir: Path, elsewhere: Path) -> None:
    with scallion_run(str(app_dir / "cliapp.py"), "--server", server, cwd=elsewhere) as running:
        assert running.get("/hello") == (200, "text/plain; charset=utf-8", b"hello from scallion run")
        status, content_type, body = running.get("/items/7", "POST")
        assert (status, content_type, json.loads(body)) == (200, "application/json", {"id": 7})
        assert running.get("/nowhere")[0] == 404
        with connect(running.ws("/echo"), open_timeout=10) as ws:
            for message in ["hello", "world", b"\x00bytes"]:
                ws.send(message)
                assert ws.recv(timeout=10) == message


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_run_module_attr_with_python_m(server: str, app_dir: Path) -> None:
    """``python -m scallion run module:attr`` from the module's directory, here a build_server app."""
    with scallion_run("cliapp:core", "--server", server, cwd=app_dir, command=PYTHON_M) as running:
        assert running.get("/core") == (200, "text/plain", b"core hello")
        with connect(running.ws("/ws"), open_timeout=10) as ws:
            ws.send("ping")
            assert ws.recv(timeout=10) == "ping"


# -- shutdown --------------------------------------------------------------------------------------------
def close_seen_on_sigint(running: Running) -> tuple[int | None, int | None]:
    """Open a websocket, echo once, SIGINT ``scallion run`` by PID; ``(code received from the server or None
    when no close frame came, the client's close_code)``. Also checks that the server exits with status 0."""
    with connect(running.ws("/echo"), open_timeout=10) as ws:
        ws.send("before shutdown")
        assert ws.recv(timeout=10) == "before shutdown"
        running.process.send_signal(signal.SIGINT)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=DEADLINE)
    assert running.wait_exit() == 0, running.log()
    return (closed.value.rcvd.code if closed.value.rcvd else None), ws.close_code


WS_OPTIONS = ("--ws-max-size", "65536", "--ws-ping-interval", "5", "--ws-ping-timeout", "5", "--no-proxy-headers")
SHUTDOWN_OPTIONS = {
    "single": (),
    "workers": ("--workers", "2"),
    "reload": ("--reload",),
    "wsproto": ("--ws", "wsproto", *WS_OPTIONS),
    "websockets": ("--ws", "websockets", *WS_OPTIONS),
    "sansio-options": ("--ws", "websockets-sansio", *WS_OPTIONS, "--forwarded-allow-ips", "10.0.0.1"),
    "workers-options": ("--workers", "2", "--ws", "wsproto", *WS_OPTIONS),
}


@pytest.mark.parametrize("options", SHUTDOWN_OPTIONS.values(), ids=SHUTDOWN_OPTIONS.keys())
def test_uvicorn_shutdown_closes_websockets_with_1001(options: tuple[str, ...], app_dir: Path, elsewhere: Path) -> None:
    with scallion_run(str(app_dir / "cliapp.py"), *options, cwd=elsewhere) as running:
        received, close_code = close_seen_on_sigint(running)
    assert (received, close_code) == (1001, 1001), running.log()


def test_granian_shutdown_closes_websockets_with_1001(app_dir: Path, elsewhere: Path) -> None:
    """granian would stop its Rust server (dropping the websocket connection, no close frame) before the ASGI
    lifespan shutdown runs; scallion's signal handler closes the websockets with 1001 first."""
    with scallion_run(str(app_dir / "cliapp.py"), "--server", "granian", cwd=elsewhere) as running:
        received, close_code = close_seen_on_sigint(running)
    assert (received, close_code) == (1001, 1001), running.log()


# -- scallion routes -------------------------------------------------------------------------------------
def test_routes_of_an_app(app_dir: Path, elsewhere: Path) -> None:
    result = scallion("routes", str(app_dir / "cliapp.py"), cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows == [
        ["PATH", "METHODS", "HANDLER"],
        ["/hello", "GET", "cliapp.hello"],
        ["/items/{item_id:int}", "GET,POST", "cliapp.item"],
        ["/echo", "WS", "cliapp.echo"],
        ["/client", "GET", "cliapp.client"],
        ["/broker", "GET", "cliapp.broker"],
    ]


def test_routes_of_a_build_server_app(app_dir: Path) -> None:
    result = scallion("routes", "cliapp:core", cwd=app_dir, command=PYTHON_M)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows == [
        ["PATH", "METHODS", "HANDLER"],
        ["/core", "GET", "cliapp.core_hello"],
        ["/ws", "WS", "cliapp.core_echo"],
    ]


def test_routes_of_a_plain_asgi_app_says_there_is_no_table(app_dir: Path, elsewhere: Path) -> None:
    result = scallion("routes", f"{app_dir / 'cliapp.py'}:raw", cwd=elsewhere)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "no route table found" in result.stderr
    assert "wrap_routes" in result.stderr


# -- bad targets -----------------------------------------------------------------------------------------
BAD_TARGETS = [
    ("missing.py", "file not found: missing.py"),
    ("no/such/dir/app.py:app", "file not found: no/such/dir/app.py"),
    ("no_such_module_here:app", "cannot import module 'no_such_module_here': no module named 'no_such_module_here'"),
    ("{dir}/cliapp.py:nothing", "module 'cliapp' has no attribute 'nothing'"),
    ("{dir}/cliapp.py:not_an_app", "cliapp:not_an_app is neither an ASGI application nor a handler: it is a int"),
    ("{dir}/cliapp.py:sync_function", "cliapp:sync_function is neither an ASGI application nor a handler: it is a"),
    ("{dir}/cliapp.py:hello", "it takes 0 argument(s), an ASGI app takes (scope, receive, send) or a handler takes"),
    ("{dir}/cliapp.py:undecorated", "it is an async generator function: decorate it with @websocket to serve it"),
    ("{dir}/cli_broken.py", "importing module 'cli_broken' failed: RuntimeError: this module refuses to import"),
]


@pytest.mark.parametrize("command", ["run", "routes"])
@pytest.mark.parametrize(("target", "message"), BAD_TARGETS, ids=[t for t, _ in BAD_TARGETS])
def test_bad_targets_exit_2_with_a_clear_message(
    command: str, target: str, message: str, app_dir: Path, elsewhere: Path
) -> None:
    options = ["--port", str(free_port())] if command == "run" else []
    result = scallion(command, target.format(dir=app_dir), *options, cwd=elsewhere)
    assert result.returncode == 2, (result.stdout, result.stderr)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("scallion: error: "), result.stderr
    assert message in last, result.stderr


def test_missing_attribute_lists_the_apps_found(app_dir: Path, elsewhere: Path) -> None:
    result = scallion("routes", f"{app_dir / 'cliapp.py'}:nothing", cwd=elsewhere)
    assert "ASGI apps found: app, core" in result.stderr


# -- python -m scallion ----------------------------------------------------------------------------------
def test_python_m_scallion_help(elsewhere: Path) -> None:
    result = scallion("--help", cwd=elsewhere, command=PYTHON_M)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m scallion")
    assert "run" in result.stdout and "routes" in result.stdout
    run_help = scallion("run", "--help", cwd=elsewhere, command=PYTHON_M)
    assert run_help.returncode == 0
    for option in ["--host", "--port", "--workers", "--reload", "--server {uvicorn,granian}", "--log-level"]:
        assert option in run_help.stdout


def test_no_command_is_a_usage_error(elsewhere: Path) -> None:
    result = scallion(cwd=elsewhere, command=PYTHON_M)
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_version(elsewhere: Path) -> None:
    import scallion as package

    result = scallion("--version", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"scallion {package.__version__}"


def test_run_help_lists_every_option(elsewhere: Path) -> None:
    result = scallion("run", "--help", cwd=elsewhere)
    for option in [
        "--ws {auto,websockets-sansio,websockets,wsproto}",
        "--ws-max-size",
        "--ws-ping-interval",
        "--ws-ping-timeout",
        "--proxy-headers",
        "--no-proxy-headers",
        "--forwarded-allow-ips",
        "--broker",
        "--log-level",
    ]:
        assert option in result.stdout, option


# -- bare handlers as the TARGET (seed 000's "normal handler") ------------------------------------------------
@pytest.mark.parametrize("options", [(), ("--workers", "2")], ids=["single", "workers"])
def test_run_a_bare_websocket_handler_on_every_path(options: tuple[str, ...], app_dir: Path, elsewhere: Path) -> None:
    """``scallion run file.py:core_echo`` (an ``@websocket`` handler) echoes on any websocket path, answers HTTP
    with 404, says what it serves, and still closes with 1001 at shutdown."""
    with scallion_run(f"{app_dir / 'cliapp.py'}:core_echo", *options, cwd=elsewhere) as running:
        for path in ["/", "/any/path", "/echo"]:
            with connect(running.ws(path), open_timeout=10) as ws:
                ws.send(path)
                assert ws.recv(timeout=10) == path
        assert running.get("/")[0] == 404
        assert "serving the websocket handler cliapp.core_echo on every websocket path" in running.log()
        received, close_code = close_seen_on_sigint(running)
    assert (received, close_code) == (1001, 1001), running.log()


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_run_a_bare_data_driven_handler(server: str, app_dir: Path, elsewhere: Path) -> None:
    with scallion_run(f"{app_dir / 'cliapp.py'}:core_hello", "--server", server, cwd=elsewhere) as running:
        assert running.get("/anything") == (200, "text/plain", b"core hello")
        with pytest.raises(InvalidStatus) as refused, connect(running.ws("/ws"), open_timeout=10):
            pass
        assert refused.value.response.status_code == 200  # the handler's response refuses the handshake


def test_run_a_bare_websocket_handler_on_granian(app_dir: Path, elsewhere: Path) -> None:
    with scallion_run(f"{app_dir / 'cliapp.py'}:core_echo", "--server", "granian", cwd=elsewhere) as running:
        with connect(running.ws("/x"), open_timeout=10) as ws:
            ws.send("granian")
            assert ws.recv(timeout=10) == "granian"
        assert running.get("/")[0] == 404


# -- server options --------------------------------------------------------------------------------------
def test_ws_max_size_is_the_servers_limit(app_dir: Path, elsewhere: Path) -> None:
    with scallion_run(str(app_dir / "cliapp.py"), "--ws-max-size", "1000", cwd=elsewhere) as running:  # noqa: SIM117
        with connect(running.ws("/echo"), open_timeout=10, max_size=None) as ws:
            ws.send("x" * 1000)
            assert ws.recv(timeout=10) == "x" * 1000
            ws.send("x" * 1001)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def client_seen(running: Running) -> str:
    """The client address the app sees for a request from 127.0.0.1 claiming to forward for 203.0.113.9."""
    connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)
    try:
        connection.request("GET", "/client", headers={"X-Forwarded-For": "203.0.113.9"})
        return str(json.loads(connection.getresponse().read())["client"])
    finally:
        connection.close()


PROXY_CASES = [
    ("uvicorn", (), "203.0.113.9"),  # uvicorn trusts proxy headers from 127.0.0.1 by default
    ("uvicorn", ("--no-proxy-headers",), "127.0.0.1"),
    ("uvicorn", ("--forwarded-allow-ips", "10.0.0.1"), "127.0.0.1"),
    ("granian", (), "127.0.0.1"),  # granian reads no proxy headers unless asked
    ("granian", ("--proxy-headers",), "203.0.113.9"),
    ("granian", ("--proxy-headers", "--forwarded-allow-ips", "10.0.0.1"), "127.0.0.1"),
]


@pytest.mark.parametrize(("server", "options", "client"), PROXY_CASES)
def test_proxy_headers(server: str, options: tuple[str, ...], client: str, app_dir: Path, elsewhere: Path) -> None:
    with scallion_run(str(app_dir / "cliapp.py"), "--server", server, *options, cwd=elsewhere) as running:
        assert client_seen(running) == client


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--ws-ping-interval", "5"), "--ws-ping-interval: uvicorn option(s) that granian has no equivalent for"),
        (("--ws", "wsproto", "--ws-max-size", "10"), "--ws, --ws-max-size: uvicorn option(s)"),
        (("--forwarded-allow-ips", "10.0.0.1"), "--forwarded-allow-ips needs --proxy-headers with --server granian"),
    ],
)
def test_granian_refuses_uvicorn_only_options(
    options: tuple[str, ...], message: str, app_dir: Path, elsewhere: Path
) -> None:
    result = scallion("run", str(app_dir / "cliapp.py"), "--server", "granian", *options, cwd=elsewhere)
    assert result.returncode == 2
    assert message in result.stderr.strip().splitlines()[-1], result.stderr


@pytest.mark.parametrize("value", ["0", "-1", "big"])
def test_ws_numbers_must_be_positive(value: str, app_dir: Path, elsewhere: Path) -> None:
    result = scallion("run", str(app_dir / "cliapp.py"), "--ws-ping-interval", value, cwd=elsewhere)
    assert result.returncode == 2
    assert "--ws-ping-interval" in result.stderr


# -- --broker, App.broker and the MemoryBroker warning --------------------------------------------------------
def test_app_broker_is_built_from_scallion_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    from scallion import App
    from scallion.pubsub import MemoryBroker, RedisBroker

    monkeypatch.delenv("SCALLION_BROKER", raising=False)
    app = App()
    assert type(app.broker) is MemoryBroker
    assert app.broker is app.broker  # built once
    for url in ["redis://127.0.0.1:1/0", "rediss://example.com:6380/1", "unix:///run/redis.sock"]:
        monkeypatch.setenv("SCALLION_BROKER", url)
        broker = App().broker
        assert type(broker) is RedisBroker and broker.url == url
    monkeypatch.setenv("SCALLION_BROKER", "amqp://127.0.0.1/")
    with pytest.raises(ValueError, match=r"SCALLION_BROKER='amqp://127.0.0.1/' is not a broker URL: expected redis://"):
        App().broker  # noqa: B018


def test_run_broker_sets_the_apps_broker(app_dir: Path, elsewhere: Path) -> None:
    """Nothing connects before the first publish or subscribe, so no Redis needs to listen."""
    url = "redis://127.0.0.1:1/3"
    with scallion_run(str(app_dir / "cliapp.py"), "--broker", url, "--workers", "2", cwd=elsewhere) as running:
        for _ in range(4):  # whichever worker answers
            status, _, body = running.get("/broker")
            assert (status, json.loads(body)) == (200, {"type": "RedisBroker", "url": url})
        assert "MemoryBroker" not in running.log()


def test_run_broker_with_an_unknown_scheme_exits_2(app_dir: Path, elsewhere: Path) -> None:
    result = scallion("run", str(app_dir / "cliapp.py"), "--broker", "http://127.0.0.1/", cwd=elsewhere)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("scallion: error: --broker: SCALLION_BROKER='http://127.0.0.1/' is not a broker URL")


WARNING = "MemoryBroker with --workers 2 splits pub/sub between workers: use --broker redis://..."


@pytest.mark.parametrize(
    ("target", "found"),
    [("cli_brokers.py", "cli_brokers.news"), ("cliapp.py", "app.broker")],
    ids=["module-level", "app.broker"],
)
def test_run_workers_with_a_memory_broker_warns(target: str, found: str, app_dir: Path, elsewhere: Path) -> None:
    with scallion_run(str(app_dir / target), "--workers", "2", cwd=elsewhere) as running:
        log = running.wait_for_log(WARNING)
    line = next(line for line in log.splitlines() if WARNING in line)
    assert line.startswith("WARNING:  scallion: ") and found in line, log


def test_run_one_worker_with_a_memory_broker_does_not_warn(app_dir: Path, elsewhere: Path) -> None:
    with scallion_run(str(app_dir / "cli_brokers.py"), cwd=elsewhere) as running:
        assert running.get("/hello")[0] == 200
        running.wait_for_log('"GET /hello HTTP/1.1" 200')
        assert "MemoryBroker" not in running.log()


