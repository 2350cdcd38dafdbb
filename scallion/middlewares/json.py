"""``wrap_json``: decode a JSON request body into ``request["json"]``."""

from __future__ import annotations

from typing import Any

import msgspec

from ..response import respond400
from ..types import Handler, Middleware, Request

_decode = msgspec.json.Decoder().decode


def is_json(content_type: str) -> bool:
    """True for ``application/json`` and ``application/*+json`` (parameters such as charset ignored)."""
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def wrap_json(next_middleware: Middleware) -> Middleware:
    """Decode the body of ``application/json`` (or ``+json``) requests into ``request["json"]``.

    ``request["json"]`` is ``None`` when there is no JSON body (another content type, or an empty body).
    A malformed (or too deeply nested) body is answered with ``400 Bad Request`` and the handler is not called.
    """

    async def json_body(handler: Handler, request: Request) -> Any:
        body = request.get("body")
        if body and is_json(request["headers"].get("content-type", "")):
            try:
                request["json"] = _decode(body)
            except msgspec.DecodeError as exc:
                return respond400(f"Bad Request: malformed JSON body ({exc})")
            except RecursionError:
                return respond400("Bad Request: JSON body nested too deeply")
        else:
            request["json"] = None
        return await next_middleware(handler, request)

    return json_body
