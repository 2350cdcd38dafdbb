"""Starting and stopping the servers under test, pinned to a core, and reading their memory."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


@dataclass(frozen=True)
class ServerKind:
    """How to run an application with one server: uvicorn (a websockets implementation) or granian."""

    name: str
    program: str  # "uvicorn" or "granian"
    option: str  # uvicorn: the --ws implementation; granian: the --interface

    def command(self, target: str, port: int) -> list[str]:
        """The command line serving ``target`` (``module:attribute``) on ``port``: 1 worker, uvloop, no access
        log, warnings and errors only."""
        if self.program == "uvicorn":
            return [
                sys.executable, "-m", "uvicorn", target, "--host", HOST, "--port", str(port),
                "--loop", "uvloop", "--http", "httptools", "--ws", self.option,
                "--no-access-log", "--log-level", "warning",
            ]  # fmt: skip
        return [
            sys.executable, "-m", "granian", "--interface", self.option, "--host", HOST, "--port", str(port),
            "--loop", "uvloop", "--workers", "1", "--no-access-log", "--log-level", "warning", target,
        ]  # fmt: skip


SERVERS = {
    "uvicorn-sansio": ServerKind("uvicorn-sansio", "uvicorn", "websockets-sansio"),
    "uvicorn-wsproto": ServerKind("uvicorn-wsproto", "uvicorn", "wsproto"),
    "granian": ServerKind("granian", "granian", "asgi"),
    "granian-rsgi": ServerKind("granian-rsgi", "granian", "rsgi"),
}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def pinned(command: list[str], core: int | None) -> list[str]:
    """``command`` under ``taskset -c core`` (unchanged when ``core`` is None)."""
    return command if core is None else ["taskset", "-c", str(core), *command]


def cores_to_pin() -> tuple[int | None, int | None]:
    """(server core, load-generator core): 0 and 1 on a machine with 2+ usable cores, else no pinning."""
    usable = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(usable) >= 2:
        return usable[0], usable[1]
    return None, None


def raise_open_files_limit(wanted: int) -> int:
    """Raise this process's (and so its children's) open-file limit towards ``wanted``; returns the limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found.extend(int(child) for child in task.read_text().split())
    return found


def rss_tree(pid: int) -> int:
    """Resident memory in bytes of ``pid`` and all its descendants (granian serves from a child process)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
        stack.extend(_children(current))
    return total


class RunningServer:
    """A server process for the duration of a ``with`` block; its stderr is kept for the report."""

    def __init__(self, kind: ServerKind, target: str, core: int | None, startup_timeout: float = 30.0) -> None:
        self.kind = kind
        self.target = target
        self.core = core
        self.port = free_port()
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="bench-server-", suffix=".log", delete=False)  # noqa: SIM115

    @property
    def url(self) -> str:
        """``host:port``."""
        return f"{HOST}:{self.port}"

    def __enter__(self) -> RunningServer:
        command = pinned(self.kind.command(self.target, self.port), self.core)
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind.name} exited at startup:\n{self.output()[-3000:]}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.kind.name} did not listen within {self.startup_timeout}s:\n{self.output()}")

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """SIGINT (a graceful stop for both servers), then SIGKILL after 10 s; only our own process."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def rss(self) -> int:
        """The server's resident memory (with its worker processes), in bytes."""
        assert self.process is not None
        return rss_tree(self.process.pid)

    def output(self) -> str:
        """What the server printed so far."""
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def discard_log(self) -> None:
        """Remove the log file."""
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)
