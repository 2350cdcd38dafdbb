"""Context-local objects: the ``request`` being handled and the ``websocket`` being served.

Each ASGI request runs in its own task, so a :class:`~contextvars.ContextVar` per kind gives every handler
its own current object. Reading an attribute outside a handler raises :class:`OutsideHandler`, a clear
``RuntimeError`` that is also an ``AttributeError`` (so ``hasattr`` is False and introspection works).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from .datastructures import QueryParams, ScopeView, parse_query
from .errors import decode_json
from .types import Request as RequestDict
from .uploads import UploadFiles, close_files_when_done, is_multipart, parse_multipart

if TYPE_CHECKING:
    from .connection import Connection

current_request: ContextVar[RequestDict] = ContextVar("scallion.request")
"""The request dict an App route is handling; its :class:`Request` view is made on first use."""
VIEW = "scallion.request"
"""The key under which the request dict keeps its :class:`Request` view, once made."""
current_websocket: ContextVar[Connection] = ContextVar("scallion.websocket")
current_methods: tuple[ContextVar[Any], ...] = tuple(
    ContextVar(f"scallion.websocket.{name}") for name in ("send", "receive", "send_json", "receive_json")
)
"""The current connection's bound ``send``, ``receive``, ``send_json`` and ``receive_json``, in that order, set with
``current_websocket``: the ``websocket`` object reads them without a Python frame (scallion/handlers.py)."""


class Request(ScopeView):
    """The HTTP request being handled, as attributes over the request dict."""

    def __init__(self, scope: RequestDict) -> None:
        self.scope = scope

    @property
    def method(self) -> str:
        """``GET``, ``POST``, ..."""
        return str(self.scope["method"])

    @property
    def body(self) -> bytes:
        """The raw body."""
        return bytes(self.scope.get("body", b""))

    @property
    def body_params(self) -> QueryParams:
        """Form fields of an urlencoded or ``multipart/form-data`` body (``form_params`` if ``wrap_parameters``
        ran); missing names read as ``None``. A malformed multipart body raises
        :class:`~scallion.errors.BadRequest`: uncaught, the client gets 400."""
        form = self.scope.get("form_params")
        if isinstance(form, QueryParams):
            return form
        content_type = self.headers.get("content-type", "")
        if content_type.startswith("application/x-www-form-urlencoded"):
            return parse_query(self.body)
        if is_multipart(content_type):
            return self._multipart(content_type)[0]
        return QueryParams()

    @property
    def files(self) -> UploadFiles:
        """The uploaded files of a ``multipart/form-data`` body by field name: :class:`~scallion.uploads.UploadFile`
        (a repeated name -> ``list``, a missing name reads as ``None``); empty for other bodies. Parsed once
        (with ``body_params``) and closed when the request ends. A malformed body raises
        :class:`~scallion.errors.BadRequest` (400)."""
        files = self.scope.get("files")
        if isinstance(files, UploadFiles):
            return files
        content_type = self.headers.get("content-type", "")
        return self._multipart(content_type)[1] if is_multipart(content_type) else UploadFiles()

    def _multipart(self, content_type: str) -> tuple[QueryParams, UploadFiles]:
        """Parse the multipart body once: cached as ``form_params`` and ``files`` on the request dict."""
        form, files = parse_multipart(self.body, content_type)
        self.scope["form_params"] = form
        self.scope["files"] = files
        close_files_when_done(files)
        return form, files

    async def json(self) -> Any:
        """The body decoded as JSON (``json`` if ``wrap_json`` ran). A malformed or too deeply nested body raises
        :class:`~scallion.errors.InvalidJSON` (a ``msgspec.DecodeError``): uncaught, the client gets 400."""
        if "json" in self.scope:
            return self.scope["json"]
        return decode_json(self.body)

    def __getitem__(self, key: str) -> Any:
        return self.scope[key]


if TYPE_CHECKING:
    _RequestView = Request  # type checkers see every Request attribute on `request`, typed
else:
    _RequestView = object


class OutsideHandler(RuntimeError, AttributeError):
    """``request.x`` or ``websocket.x`` read outside a handler. A ``RuntimeError`` (what callers catch) and an
    ``AttributeError`` (what ``hasattr``, ``inspect`` and ``copy`` expect of a missing attribute)."""


class _RequestProxy(_RequestView):
    """The ``request`` object: attribute access reads the current HTTP request."""

    __slots__ = ()

    def __init__(self) -> None:
        """The one proxy, :data:`request`; it holds nothing."""

    if not TYPE_CHECKING:  # type checkers see the typed attributes of the view instead, and report unknown ones

        def __getattribute__(self, name: str) -> Any:
            scope = current_request.get(None)
            if scope is None:
                if name[:2] == "__":  # isinstance(), copy, inspect... see the proxy itself
                    return object.__getattribute__(self, name)
                raise OutsideHandler(f"request.{name} is only available while an App handles an HTTP request")
            view = scope.get(VIEW)
            if view is None:
                view = scope[VIEW] = Request(scope)
            return getattr(view, name)

    def __getitem__(self, key: str) -> Any:
        return request.scope[key]

    def __copy__(self) -> _RequestProxy:
        return self  # the one proxy

    def __deepcopy__(self, memo: dict[int, Any]) -> _RequestProxy:
        return self

    def __repr__(self) -> str:
        scope = current_request.get(None)
        return f"<request {scope['method']} {scope['path']}>" if scope else "<request (none)>"


request = _RequestProxy()
"""The HTTP request being handled by an ``App`` route (``method``, ``path``, ``headers``, ``cookies``,
``query_params``, ``body_params``, ``files``, ``await request.json()``)."""
