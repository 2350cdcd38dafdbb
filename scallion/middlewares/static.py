"""``wrap_static``: serve the files under a directory, with caching validators and no way out of it."""

from __future__ import annotations

import os
import stat
from email.utils import formatdate, parsedate_to_datetime
from typing import Any
from urllib.parse import unquote

from ..response import filestream, redirect, respond404
from ..types import Handler, Middleware, MiddlewareFactory, Request, Response
from .content_type import OCTET_STREAM, content_type_table, guess_content_type

INDEX = "index.html"
_WINDOWS = os.name == "nt"


def _unsafe(relative: str) -> bool:
    """True when a path below the mount point (``""`` or starting with ``/``, already %-decoded once by the
    server) could name something outside the root, in any encoding: ``..``/``.`` segments, ``//`` (an
    absolute path), backslashes, NUL bytes, drive letters, and the same after decoding leftover %-escapes
    (double encoding)."""
    for _ in range(3):
        if "\x00" in relative or "\\" in relative or "//" in relative:
            return True
        if "/." in relative or _WINDOWS:
            for segment in relative.split("/"):
                if segment in ("..", ".") or (_WINDOWS and segment and os.path.splitdrive(segment)[0]):
                    return True
        if "%" not in relative:
            return False
        decoded = unquote(relative)
        if decoded == relative:
            return False
        relative = decoded
    return True


def _etag(info: os.stat_result) -> str:
    return f'"{info.st_mtime_ns:x}-{info.st_size:x}"'


def _etag_matches(header: str, etag: str) -> bool:
    """``If-None-Match`` uses the weak comparison: ``W/`` prefixes are ignored; ``*`` matches anything."""
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


def _not_modified_since(header: str, mtime: float) -> bool:
    try:
        since = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return False
    return since.tzinfo is not None and int(mtime) <= since.timestamp()


def wrap_static(
    root: str | os.PathLike[str], prefix: str = "/", *, stream_threshold: int = 256 * 1024
) -> MiddlewareFactory:
    """Serve the files under ``root`` at URL ``prefix`` for ``GET`` and ``HEAD``.

    Responses carry ``ETag`` (strong, from mtime and size), ``Last-Modified``, ``Content-Length`` and a
    content type; ``If-None-Match`` / ``If-Modified-Since`` give ``304``. Files bigger than
    ``stream_threshold`` bytes are streamed. A directory serves its ``index.html`` (``/dir`` redirects to
    ``/dir/`` first). Paths that could leave ``root`` (``..`` in any encoding, backslashes, NUL bytes,
    absolute paths, symlinks pointing outside) get ``404``. Anything else not found falls through to the
    next middleware, so routes keep working under the same prefix.
    """
    base = os.path.realpath(root)
    if not os.path.isdir(base):
        raise NotADirectoryError(f"wrap_static: {base!r} is not a directory")
    inside = base if base.endswith(os.sep) else base + os.sep
    joinable = base.rstrip("/")  # + relative (which starts with "/") names the file
    mount = "/" + prefix.strip("/")
    mount = "" if mount == "/" else mount
    types = content_type_table()

    def serve(request: Request, path: str, info: os.stat_result) -> Response:
        etag = _etag(info)
        headers = {
            "content-type": guess_content_type(path, types) or OCTET_STREAM,
            "content-length": str(info.st_size),
            "etag": etag,
            "last-modified": formatdate(info.st_mtime, usegmt=True),
        }
        request_headers = request["headers"]
        if_none_match = request_headers.get("if-none-match")
        if if_none_match is not None:
            fresh = _etag_matches(if_none_match, etag)
        else:
            since = request_headers.get("if-modified-since")
            fresh = since is not None and _not_modified_since(since, info.st_mtime)
        if fresh:
            del headers["content-type"]
            return {"status": 304, "headers": headers}
        if request["method"] == "HEAD":
            return {"status": 200, "body": b"", "headers": headers}
        if info.st_size > stream_threshold:
            return filestream(path, headers=headers)
        with open(path, "rb") as file:
            return {"status": 200, "body": file.read(), "headers": headers}

    def wrap(next_middleware: Middleware) -> Middleware:
        async def static(handler: Handler, request: Request) -> Any:
            method = request["method"]
            path: str = request["path"]
            if (method != "GET" and method != "HEAD") or not path.startswith(mount):
                return await next_middleware(handler, request)
            relative = path[len(mount) :]
            if relative and relative[0] != "/":  # "/static2" is not under "/static"
                return await next_middleware(handler, request)
            if _unsafe(relative):
                return respond404()
            candidate = joinable + relative if relative else base
            try:
                info = os.stat(candidate)
                if stat.S_ISDIR(info.st_mode):
                    index = candidate.rstrip("/") + "/" + INDEX
                    info = os.stat(index)
                    if not relative.endswith("/"):
                        query = request.get("query_string") or b""
                        target = path + "/" + ("?" + query.decode("latin-1") if query else "")
                        return redirect(target, status=308)
                    candidate = index
            except (OSError, ValueError):
                return await next_middleware(handler, request)
            if not stat.S_ISREG(info.st_mode):
                return await next_middleware(handler, request)
            real = os.path.realpath(candidate)
            if not real.startswith(inside):
                return respond404()
            try:
                return serve(request, real, info)
            except OSError:
                return await next_middleware(handler, request)

        return static

    return wrap
