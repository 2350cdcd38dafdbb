"""scallion: a websocket-first, data-driven ASGI web framework."""

from .app import App
from .asgi import build_server, standard_not_found
from .connection import Connection, InvalidMessage, WebSocketClosedError, WebSocketDisconnect
from .context import request
from .handlers import websocket
from .response import ws_accept, ws_close, ws_deny, ws_send
from .uploads import UploadFile

__all__ = [
    "App",
    "Connection",
    "InvalidMessage",
    "UploadFile",
    "WebSocketClosedError",
    "WebSocketDisconnect",
    "build_server",
    "request",
    "standard_not_found",
    "websocket",
    "ws_accept",
    "ws_close",
    "ws_deny",
    "ws_send",
]
__version__ = "0.1.0"
