"""A side channel for the real-server tests: the apps record lifecycle events (hooks ran, a handler's
``finally`` ran, the ASGI call returned) as lines ``"<time.time()> <name>"`` in one file per connection key,
under the directory ``$SCALLION_TEST_EVENTS``. The key is the ``key`` query parameter of the connection."""

import os
import re
import time
from urllib.parse import parse_qs

EVENTS_DIR = os.environ.get("SCALLION_TEST_EVENTS", "")
_KEY = re.compile(r"^[0-9a-f]{8,64}$")


def key_of(scope):
    """The ``key`` query parameter of a scope (None when absent or not a hex key)."""
    query = scope.get("query_string", b"").decode("latin-1")
    key = parse_qs(query).get("key", [None])[0]
    return key if key and _KEY.match(key) else None


def record(key, name):
    """Append event ``name`` for connection ``key``."""
    if key and EVENTS_DIR:
        with open(os.path.join(EVENTS_DIR, key), "a") as file:
            file.write(f"{time.time():.6f} {name}\n")


async def on_disconnect(scope):
    record(key_of(scope), "on_disconnect")


async def on_close(scope):
    record(key_of(scope), "on_close")


HOOKS = {"on_disconnect": on_disconnect, "on_close": on_close}


def recording(app):
    """Wrap an ASGI app: record ``done`` when it returns from a websocket connection."""

    async def recorded(scope, receive, send):
        try:
            await app(scope, receive, send)
        finally:
            if scope["type"] == "websocket":
                record(key_of(scope), "done")

    return recorded
