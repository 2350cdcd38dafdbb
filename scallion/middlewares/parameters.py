"""``wrap_parameters``: query string and form fields (urlencoded or multipart) as
:class:`~scallion.datastructures.QueryParams`, uploaded files as :class:`~scallion.uploads.UploadFile`."""

from __future__ import annotations

from typing import Any, overload

from ..datastructures import QueryParams, parse_query
from ..errors import BadRequest
from ..response import respond400
from ..types import Handler, Middleware, MiddlewareFactory, Request
from ..uploads import (
    MAX_FIELD_SIZE,
    MAX_PARTS,
    MAX_SPOOL_SIZE,
    UploadFiles,
    close_files,
    close_files_when_done,
    is_multipart,
    parse_multipart,
)

FORM = "application/x-www-form-urlencoded"


@overload
def wrap_parameters(next_middleware: Middleware) -> Middleware: ...


@overload
def wrap_parameters(
    next_middleware: None = None,
    *,
    max_parts: int = MAX_PARTS,
    max_field_size: int = MAX_FIELD_SIZE,
    max_spool_size: int = MAX_SPOOL_SIZE,
) -> MiddlewareFactory: ...


def wrap_parameters(
    next_middleware: Middleware | None = None,
    *,
    max_parts: int = MAX_PARTS,
    max_field_size: int = MAX_FIELD_SIZE,
    max_spool_size: int = MAX_SPOOL_SIZE,
) -> Middleware | MiddlewareFactory:
    """Set ``request["query_params"]`` (from the query string), ``request["form_params"]`` (from an
    ``application/x-www-form-urlencoded`` or ``multipart/form-data`` body), ``request["params"]`` (both; form
    fields win) and ``request["files"]`` (the uploaded files of a multipart body).

    The first three are :class:`~scallion.datastructures.QueryParams`: one value -> ``str``, a repeated name ->
    ``list[str]``, a missing name reads as ``None``; all decoded as UTF-8. ``files`` is an
    :class:`~scallion.uploads.UploadFiles` of :class:`~scallion.uploads.UploadFile` by field name (a repeated
    name -> ``list``, missing -> ``None``), closed when the handler returns (when the request ends, for a
    response with a ``stream``). Websockets get them too (``form_params``
    and ``files`` are always empty there).

    A malformed multipart body, or one over a limit, is answered with ``400 Bad Request: <reason>`` and the
    handler is not called. Used bare (``wrap_parameters``) the limits are the defaults of
    :mod:`scallion.uploads`; ``wrap_parameters(max_parts=..., max_field_size=..., max_spool_size=...)`` makes a
    middleware with others.
    """
    if next_middleware is None:
        for name, value in [
            ("max_parts", max_parts),
            ("max_field_size", max_field_size),
            ("max_spool_size", max_spool_size),
        ]:
            if type(value) is not int or value <= 0:
                raise ValueError(f"wrap_parameters option {name} must be a positive int, not {value!r}")

        def configured(next_middleware: Middleware) -> Middleware:
            return _parameters(next_middleware, max_parts, max_field_size, max_spool_size)

        return configured
    return _parameters(next_middleware, max_parts, max_field_size, max_spool_size)


def _parameters(next_middleware: Middleware, max_parts: int, max_field_size: int, max_spool_size: int) -> Middleware:
    async def parameters(handler: Handler, request: Request) -> Any:
        query_string = request.get("query_string")
        query = parse_query(query_string.decode("utf-8", "replace")) if query_string else QueryParams()
        body = request.get("body")
        files = None
        if "files" in request:  # parsed already (another wrap_parameters, request.files): its owner closes them
            form = request["form_params"]
        elif not body:
            form = QueryParams()
        else:
            content_type = request["headers"].get("content-type", "")
            if content_type.partition(";")[0].strip().lower() == FORM:
                form = parse_query(body.decode("utf-8", "replace"))
            elif is_multipart(content_type):
                try:
                    form, files = parse_multipart(
                        body,
                        content_type,
                        max_parts=max_parts,
                        max_field_size=max_field_size,
                        max_spool_size=max_spool_size,
                    )
                except BadRequest as exc:
                    return respond400(f"Bad Request: {exc}")
            else:
                form = QueryParams()
        params = QueryParams(query)
        if form:
            params.update(form)
        request["query_params"] = query
        request["form_params"] = form
        request["params"] = params
        if files is None:
            if "files" not in request:
                request["files"] = UploadFiles()
            return await next_middleware(handler, request)
        request["files"] = files
        if not files:
            return await next_middleware(handler, request)
        response: Any = None
        try:
            response = await next_middleware(handler, request)
            return response
        finally:
            if isinstance(response, dict) and "stream" in response:
                close_files_when_done(files)  # the stream may still read them
            else:
                close_files(files)

    return parameters
