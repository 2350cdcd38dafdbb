"""``wrap_content_type``: give responses without a ``content-type`` one guessed from the request path."""

from __future__ import annotations

import mimetypes
from collections.abc import Iterable, Mapping
from typing import Any, overload

from ..types import Handler, Middleware, MiddlewareFactory, Request

OCTET_STREAM = "application/octet-stream"
_COMPRESSED = {
    ".gz": "application/gzip",
    ".tgz": "application/gzip",
    ".bz2": "application/x-bzip2",
    ".xz": "application/x-xz",
    ".br": "application/x-brotli",
    ".zst": "application/zstd",
}
"""Extensions ``mimetypes`` reports as an *encoding* rather than a type; served as themselves."""
_NO_BODY = frozenset({204, 304})

ExtraTypes = Mapping[str, str | Iterable[str]]
"""``{".ext": "type/subtype"}``, or shallot's ``{"type/subtype": [".ext", ...]}``."""


def content_type_table(additional: ExtraTypes | None = None) -> dict[str, str]:
    """``{".ext": content type}`` from :mod:`mimetypes` (strict types) plus ``additional``, made once."""
    if not mimetypes.inited:
        mimetypes.init()
    table = {**_COMPRESSED, **mimetypes.types_map}
    for key, value in (additional or {}).items():
        if isinstance(value, str):
            table["." + key.lstrip(".").lower()] = value
        else:  # shallot's form: content type -> extensions
            for extension in value:
                table["." + extension.lstrip(".").lower()] = key
    return table


def guess_content_type(path: str, table: Mapping[str, str]) -> str | None:
    """The content type for ``path``'s extension (looked up as is, then lower-cased), or ``None``."""
    dot = path.rfind(".")
    if dot <= path.rfind("/"):
        return None
    extension = path[dot:]
    return table.get(extension) or table.get(extension.lower())


def _has_content_type(headers: Mapping[str, Any]) -> bool:
    return "content-type" in headers or any(key.lower() == "content-type" for key in headers)


def _factory(additional: ExtraTypes | None, default: str | None) -> MiddlewareFactory:
    table = content_type_table(additional)

    def wrap(next_middleware: Middleware) -> Middleware:
        async def content_type(handler: Handler, request: Request) -> Any:
            response = await next_middleware(handler, request)
            if type(response) is not dict:
                return response
            headers = response.get("headers") or {}
            if _has_content_type(headers) or response.get("status") in _NO_BODY:
                return response
            guessed = guess_content_type(request["path"], table)
            if guessed is None:
                if default is None or not (response.get("body") or response.get("stream") is not None):
                    return response
                guessed = default
            return {**response, "headers": {**headers, "content-type": guessed}}

        return content_type

    return wrap


@overload
def wrap_content_type(next_middleware: Middleware, /) -> Middleware: ...


@overload
def wrap_content_type(
    additional_content_types: ExtraTypes | None = None, *, default_content_type: str | None = OCTET_STREAM
) -> MiddlewareFactory: ...


def wrap_content_type(additional_content_types: Any = None, *, default_content_type: str | None = OCTET_STREAM) -> Any:
    """Add a ``content-type`` to responses that have none, guessed from the request path's extension.

    Use it as is (``apply_middleware(wrap_content_type)``) or configured:
    ``wrap_content_type(additional_content_types={".foo": "x/foo"})`` (shallot's ``{"x/foo": [".foo"]}``
    works too). A response with a body whose type cannot be guessed gets ``default_content_type`` (``None``:
    leave it without); 204/304 responses and responses that already have a content type are left alone.
    """
    if callable(additional_content_types):  # used directly as a middleware factory
        return _factory(None, OCTET_STREAM)(additional_content_types)
    return _factory(additional_content_types, default_content_type)
