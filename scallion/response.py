"""Response constructors: plain dicts for HTTP responses and websocket messages."""

from __future__ import annotations

import mimetypes
import os
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from .types import Response

_json_encode = msgspec.json.Encoder().encode

TEXT = "text/plain; charset=utf-8"
HTML = "text/html; charset=utf-8"
JSON = "application/json"


def _with(headers: dict[str, str] | None, content_type: str) -> dict[str, str]:
    if not headers:
        return {"content-type": content_type}
    merged = {"content-type": content_type}
    merged.update({k.lower(): v for k, v in headers.items()})
    return merged


def text(body: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A ``text/plain`` response."""
    if headers is None:  # the common case, without a call
        return {"status": status, "body": body.encode(), "headers": {"content-type": TEXT}}
    return {"status": status, "body": body.encode(), "headers": _with(headers, TEXT)}


def html(body: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A ``text/html`` response."""
    if headers is None:
        return {"status": status, "body": body.encode(), "headers": {"content-type": HTML}}
    return {"status": status, "body": body.encode(), "headers": _with(headers, HTML)}


def json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """An ``application/json`` response; ``data`` is anything msgspec can encode."""
    if headers is None:
        return {"status": status, "body": _json_encode(data), "headers": {"content-type": JSON}}
    return {"status": status, "body": _json_encode(data), "headers": _with(headers, JSON)}


def redirect(location: str, status: int = 307, headers: dict[str, str] | None = None) -> Response:
    """A redirect (``307 Temporary Redirect`` unless ``status`` says otherwise)."""
    merged = _with(headers, TEXT)
    merged["location"] = location
    return {"status": status, "body": b"", "headers": merged}


def respond404(message: str = "Not Found") -> Response:
    """A plain ``404 Not Found``."""
    return text(message, 404)


def respond400(message: str = "Bad Request") -> Response:
    """A plain ``400 Bad Request``."""
    return text(message, 400)


async def _file_chunks(path: str, chunk_size: int) -> AsyncIterator[bytes]:
    with open(path, "rb") as file:
        while chunk := file.read(chunk_size):
            yield chunk


def filestream(
    path: str | os.PathLike[str],
    status: int = 200,
    headers: dict[str, str] | None = None,
    chunk_size: int = 64 * 1024,
) -> Response:
    """Stream a file in chunks; the content type is guessed from its name, its length sent up front."""
    name = os.fspath(path)
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    merged = _with(headers, content_type)
    merged.setdefault("content-length", str(os.path.getsize(name)))
    return {"status": status, "headers": merged, "stream": _file_chunks(name, chunk_size)}


class _Built:
    """The message :func:`ws_send` built last. The connection core sends a yielded message that is this very
    dict without checking it again (it was checked here); any other yielded value is checked in full."""

    __slots__ = ("message",)

    def __init__(self) -> None:
        self.message: dict[str, Any] | None = None


built = _Built()


def ws_send(data: str | bytes) -> dict[str, Any]:
    """A websocket message to send: ``{"type": "websocket.send", "text"|"bytes": data}``."""
    message: dict[str, Any]
    if type(data) is str:
        built.message = message = {"type": "websocket.send", "text": data}
        return message
    if type(data) is bytes:
        built.message = message = {"type": "websocket.send", "bytes": data}
        return message
    if isinstance(data, (str, bytes)):
        key = "text" if isinstance(data, str) else "bytes"
        return {"type": "websocket.send", key: data}
    raise TypeError(f"ws_send takes str or bytes, not {type(data).__name__}")


def check_close_code(code: object) -> int:
    """``code`` if a server may send it in a close frame (RFC 6455 7.4: 1000-1003, 1007-1014, 3000-4999);
    otherwise a ``ValueError`` saying which codes are allowed."""
    if type(code) is int and (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999):
        return code
    raise ValueError(
        f"{code!r} is not a close code a server may send: use 1000-1003 or 1007-1014 (RFC 6455), or 3000-4999 "
        "for your application's own (1004-1006 and 1015 are reserved and never sent)"
    )


def ws_close(code: int = 1000, reason: str = "") -> dict[str, Any]:
    """Close the websocket with ``code`` (and ``reason``); nothing can be sent after it. A code that may not be sent
    (see :func:`check_close_code`) is a ``ValueError`` here, where it is written."""
    check_close_code(code)
    if reason:
        return {"type": "websocket.close", "code": code, "reason": reason}
    return {"type": "websocket.close", "code": code}


def ws_accept(subprotocol: str | None = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Accept the handshake (from ``on_connect``), optionally choosing a subprotocol."""
    message: dict[str, Any] = {"type": "websocket.accept", "subprotocol": subprotocol}
    if headers:
        message["headers"] = headers
    return message


def ws_deny(status: int = 403, body: bytes | str = b"", headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Refuse the handshake (from ``on_connect``) with an HTTP response."""
    return {
        "type": "websocket.http.response",
        "status": status,
        "body": body.encode() if isinstance(body, str) else body,
        "headers": headers or {},
    }
