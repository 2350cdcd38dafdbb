"""scallion's logging: what its levels mean, the rate limit on lines a client causes, and the logging
configuration ``scallion run`` gives uvicorn and granian.

Levels. Everything goes through the ``scallion`` logger and its children:

- ERROR, with the traceback: a bug on the server side (a handler's or hook's exception, a handler that returns
  something that is not a response, a server that breaks the ASGI protocol).
- WARNING: something the operator should see once (websockets still open after the shutdown timeout).
- INFO on ``scallion.client``: a client misbehaving (bad JSON 1007, a message over ``max_message_size`` 1009,
  over the message rate or the read-ahead 1008, idle 1001, a malformed HTTP request 400). A client controls how
  often these happen, so :data:`client_log` rate-limits them (:class:`ClientLog`).

``scallion run`` configures these loggers (:func:`uvicorn_log_config`, :func:`granian_log_config`): scallion's
lines look like the server's own, with the logger's name (``INFO:     scallion.client: closing websocket /json
with 1007: ...`` on uvicorn), at the level of ``--log-level``.
"""

from __future__ import annotations

import copy
import logging
import time
import weakref
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger("scallion")
"""The logger of server-side bugs and of the operator's lines."""

CLIENT_LOGGER = "scallion.client"
"""The logger of the lines about misbehaving clients (INFO, rate-limited)."""

LEVELS: dict[str, int] = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": 5,  # uvicorn's TRACE
}
"""The ``--log-level`` names (uvicorn's) and their levels."""

SPURIOUS_HANDSHAKE_ERROR = "ASGI callable returned without completing handshake."
"""What uvicorn's websockets-sansio implementation logs (as ERROR) after every handshake that the app answered
with an HTTP response through the denial extension (``ws_deny``, a 404 for a path without a websocket route):
it does not count that response as completing the handshake, as its wsproto implementation does."""


class _Window:
    """Lines let through in the current window of ``ClientLog.interval`` seconds, for one key."""

    __slots__ = ("lines", "start")

    def __init__(self, now: float) -> None:
        self.start = now
        self.lines = 0

    def room(self, now: float, interval: float, most: int) -> bool:
        """True if another line fits (starting a new window when the old one is over)."""
        if now - self.start >= interval:
            self.start = now
            self.lines = 0
        return self.lines < most


class ClientLog:
    """INFO lines about misbehaving clients, rate-limited so that no client can flood the log.

    In each window of ``interval`` seconds a line is written only if its connection has written fewer than
    ``per_connection`` lines, its client's address fewer than ``per_client`` and the whole process fewer than
    ``overall``; the others are counted, and the next line written says how many were suppressed since the
    previous one. Addresses are remembered for at most ``max_clients`` clients (the stalest are forgotten)."""

    def __init__(
        self,
        name: str = CLIENT_LOGGER,
        *,
        interval: float = 5.0,
        per_connection: int = 1,
        per_client: int = 5,
        overall: int = 50,
        max_clients: int = 10_000,
    ) -> None:
        self.logger = logging.getLogger(name)
        self.interval = interval
        self.per_connection = per_connection
        self.per_client = per_client
        self.overall = overall
        self.max_clients = max_clients
        self.suppressed = 0
        """Lines suppressed since the last one written."""
        self._connections: weakref.WeakKeyDictionary[object, _Window] = weakref.WeakKeyDictionary()
        self._clients: dict[str, _Window] = {}
        self._all = _Window(time.monotonic())

    def info(self, scope: Mapping[str, Any], connection: object | None, message: str, *args: object) -> None:
        """Log ``message % args`` at INFO for the client of ``scope`` (and ``connection``, a websocket
        connection; None for an HTTP request), unless that client or connection is over its share."""
        if not self.logger.isEnabledFor(logging.INFO):
            return
        now = time.monotonic()
        interval = self.interval
        windows = [(self._all, self.overall)]
        client = scope.get("client")
        host = str(client[0]) if isinstance(client, (list, tuple)) and client else None
        if host is not None:
            windows.append((self._client_window(host, now), self.per_client))
        if connection is not None:
            window = self._connections.get(connection)
            if window is None:
                window = self._connections[connection] = _Window(now)
            windows.append((window, self.per_connection))
        if not all([window.room(now, interval, most) for window, most in windows]):
            self.suppressed += 1
            return
        for window, _ in windows:
            window.lines += 1
        if self.suppressed:
            message += " (%d similar line(s) about clients suppressed since the previous one)"
            args = (*args, self.suppressed)
            self.suppressed = 0
        self.logger.info(message, *args)

    def _client_window(self, host: str, now: float) -> _Window:
        window = self._clients.get(host)
        if window is None:
            if len(self._clients) >= self.max_clients:
                self._forget(now)
            window = self._clients[host] = _Window(now)
        return window

    def _forget(self, now: float) -> None:
        """Forget the clients whose window is over; if none is, the oldest half."""
        stale = [host for host, window in self._clients.items() if now - window.start >= self.interval]
        for host in stale or list(self._clients)[: len(self._clients) // 2 + 1]:
            del self._clients[host]


client_log = ClientLog()
"""The process's :class:`ClientLog`, used by the connection core and the HTTP core."""


class SpuriousHandshakeErrorFilter(logging.Filter):
    """Drops uvicorn websockets-sansio's :data:`SPURIOUS_HANDSHAKE_ERROR` line: ``scallion run`` puts it on
    the ``uvicorn.error`` logger when it serves a scallion app, which always completes the handshake (accept,
    close or an HTTP response)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False (drop) for that one line of that one implementation."""
        return not (record.msg == SPURIOUS_HANDSHAKE_ERROR and record.pathname.endswith("websockets_sansio_impl.py"))


def level_of(name: str | None) -> int:
    """The level of a ``--log-level`` name (None: INFO)."""
    return LEVELS[name or "info"]


def uvicorn_log_config(level: str | None, *, scallion_app: bool) -> dict[str, Any]:
    """uvicorn's logging configuration plus scallion's loggers, formatted as uvicorn's own lines
    (``LEVEL:    name: message``) at ``level``; for a scallion app, with :class:`SpuriousHandshakeErrorFilter`."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["scallion"] = {
        "()": "uvicorn.logging.DefaultFormatter",
        "fmt": "%(levelprefix)s %(name)s: %(message)s",
        "use_colors": None,
    }
    config["handlers"]["scallion"] = {
        "formatter": "scallion",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["scallion"] = {"handlers": ["scallion"], "level": level_of(level), "propagate": False}
    if scallion_app:
        config.setdefault("filters", {})["scallion_handshake"] = {"()": f"{__name__}.SpuriousHandshakeErrorFilter"}
        config["loggers"]["uvicorn.error"]["filters"] = ["scallion_handshake"]
    return config


def granian_log_config(level: str | None) -> dict[str, Any]:
    """granian's logging configuration plus scallion's loggers, formatted as granian's own lines
    (``[LEVEL] name: message``) at ``level`` (granian's ``log_dictconfig``, which replaces whole sections)."""
    from granian.log import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["scallion"] = {"()": "logging.Formatter", "fmt": "[%(levelname)s] %(name)s: %(message)s"}
    config["handlers"]["scallion"] = {
        "formatter": "scallion",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stdout",
    }
    config["loggers"]["scallion"] = {"handlers": ["scallion"], "level": level_of(level), "propagate": False}
    return config


__all__ = [
    "CLIENT_LOGGER",
    "ClientLog",
    "SpuriousHandshakeErrorFilter",
    "client_log",
    "granian_log_config",
    "logger",
    "uvicorn_log_config",
]
