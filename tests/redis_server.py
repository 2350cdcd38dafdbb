"""A throwaway Redis server for the pub/sub tests: ``redis-server`` on a free port of 127.0.0.1, no persistence
(or, with ``persist=True``, an append-only file fsynced on every write, so a restart keeps everything),
stopped by PID. ``make test`` installs redis-server (Debian) when it is missing.

For the outage tests a server can be paused (SIGSTOP: connections are accepted by the kernel but nothing is
answered), killed, and started again on the same port; ``accepting_at`` is when its port first accepted a
connection (``time.monotonic()``, looked at every millisecond), the moment a client could reconnect."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from servers import free_port


@dataclass
class RedisServer:
    """One ``redis-server`` process."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    accepting_at: float = 0.0
    """``time.monotonic()`` when the port first accepted a connection."""
    persist: bool = False
    """Whether it keeps its data across a restart (append-only file in its directory)."""

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:port/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def pause(self) -> None:
        """Freeze it (SIGSTOP): it answers nothing, while its open connections stay up."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server run again (SIGCONT)."""
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Terminate it (by PID) and wait; a paused server is killed."""
        if self.process.poll() is None:
            self.process.terminate()
            self.resume()  # a stopped process acts on SIGTERM once it runs again
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> RedisServer:
        """Stop it and start a new Redis on the same port (empty, unless it persists); returns the new server."""
        self.stop()
        return start_redis(self.log_path.parent, port=self.port, persist=self.persist)


def start_redis(workdir: Path, port: int | None = None, timeout: float = 20.0, persist: bool = False) -> RedisServer:
    """Start redis-server and wait until it accepts connections."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: `make test` installs it (apt-get install redis-server)")
    port = port or free_port()
    log_path = workdir / f"redis-{port}.log"
    durability = ["--appendonly", "yes", "--appendfsync", "always"] if persist else ["--appendonly", "no"]
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", *durability,
               "--dir", str(workdir), "--logfile", ""]  # fmt: skip
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    server = RedisServer(port, process, log_path, persist=persist)
    try:
        server.accepting_at = _wait_accepting(server, timeout)
        if persist:
            _wait_loaded(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_accepting(server: RedisServer, timeout: float) -> float:
    """Poll a TCP connect every millisecond until the port accepts; when it did. Fails early if Redis exits."""
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {server.process.returncode}:\n{server.log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.1):
                return time.monotonic()
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Redis is not listening on {server.port} after {timeout}s") from None
            time.sleep(0.001)  # poll interval between connection attempts, not synchronisation


def _wait_loaded(server: RedisServer, timeout: float) -> None:
    """Poll PING every millisecond while Redis answers that it is loading its append-only file."""
    import redis

    client = redis.Redis.from_url(server.url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                client.ping()
                return
            except redis.exceptions.BusyLoadingError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Redis on {server.port} is still loading after {timeout}s") from None
                time.sleep(0.001)  # poll interval, not synchronisation
    finally:
        client.close()
