"""A throwaway Redis server for the pub/sub tests: ``redis-server`` on a free port of 127.0.0.1, no persistence,
stopped by PID. ``make test`` installs redis-server (Debian) when it is missing."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from servers import free_port, wait_for_port


@dataclass
class RedisServer:
    """One ``redis-server`` process."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:port/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """Terminate it (by PID) and wait."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_redis(workdir: Path, port: int | None = None) -> RedisServer:
    """Start redis-server and wait until it accepts connections."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: `make test` installs it (apt-get install redis-server)")
    port = port or free_port()
    log_path = workdir / f"redis-{port}.log"
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(workdir), "--logfile", ""]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    server = RedisServer(port, process, log_path)
    try:
        wait_for_port(port, process, log_path)
    except BaseException:
        server.stop()
        raise
    return server
