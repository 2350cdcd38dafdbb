"""``wrap_parameters``: query string and urlencoded form fields as :class:`~scallion.datastructures.QueryParams`."""

from __future__ import annotations

from typing import Any

from ..datastructures import QueryParams, parse_query
from ..types import Handler, Middleware, Request

FORM = "application/x-www-form-urlencoded"


def wrap_parameters(next_middleware: Middleware) -> Middleware:
    """Set ``request["query_params"]`` (from the query string), ``request["form_params"]`` (from an
    ``application/x-www-form-urlencoded`` body) and ``request["params"]`` (both; form fields win).

    Each is a :class:`~scallion.datastructures.QueryParams`: one value -> ``str``, a repeated name ->
    ``list[str]``, a missing name reads as ``None``. Both are decoded as UTF-8. Websockets get them too
    (``form_params`` is always empty there).
    """

    async def parameters(handler: Handler, request: Request) -> Any:
        query_string = request.get("query_string")
        query = parse_query(query_string.decode("utf-8", "replace")) if query_string else QueryParams()
        body = request.get("body")
        if body and request["headers"].get("content-type", "").partition(";")[0].strip().lower() == FORM:
            form = parse_query(body.decode("utf-8", "replace"))
            params = QueryParams(query)
            params.update(form)
        else:
            form = QueryParams()
            params = QueryParams(query)
        request["query_params"] = query
        request["form_params"] = form
        request["params"] = params
        return await next_middleware(handler, request)

    return parameters
