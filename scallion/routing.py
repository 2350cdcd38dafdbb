"""Routing tables compiled once: static paths in a dict, ``{param}`` paths in one combined regex.

A table is a list of ``(path, methods, handler)``. ``{name}`` matches one path segment, ``{name:int}``,
``{name:float}``, ``{name:uuid}`` convert it, ``{name:path}`` matches the rest of the path including ``/``.
Method ``"WS"`` routes websockets; ``HEAD`` is served by ``GET`` routes.

Trailing slashes are significant: ``/a`` and ``/a/`` are different paths. An HTTP request for one that only
exists as the other gets a ``308`` redirect to it, keeping the query string; websockets are never redirected.

Mistakes are caught when the table is compiled, each as a ``ValueError`` naming the route and the handler and
saying how to fix it: a malformed path or converter, methods that are not a list of known method names, a
handler that cannot take the route's values (passed by position after the request, or the scope and receiver
of an ``@websocket`` handler), two handlers for one path and method, an HTTP handler under ``"WS"`` or a
websocket handler under an HTTP method. An undecorated async generator function under ``"WS"`` is wrapped as
``@websocket`` would.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .asgi import handler_name
from .handlers import SessionHandler, WebSocketHandler
from .types import Handler

CONVERTERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "str": (r"[^/]+", str),
    "int": (r"-?[0-9]+", int),
    "float": (r"-?[0-9]+(?:\.[0-9]+)?", float),
    "uuid": (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", uuid.UUID),
    "path": (r".*", str),
}
"""Placeholder types: ``{name:type}`` -> (regex, converter)."""

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "WS")
"""The method names a route may list (any case): the HTTP methods, and ``"WS"`` for websockets."""

_PLACEHOLDER = re.compile(r"\{([^{}:]*)(?::([^{}]*))?\}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass
class Route:
    """One path pattern with the handler for each of its methods."""

    path: str
    handlers: dict[str, Handler] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    converters: list[Callable[[str], Any]] = field(default_factory=list)
    regex: str = ""

    @property
    def dynamic(self) -> bool:
        """True when the path has ``{param}`` placeholders."""
        return bool(self.names)

    def convert(self, values: Sequence[str]) -> tuple[Any, ...]:
        """Placeholder strings -> converted values."""
        return tuple(convert(value) for convert, value in zip(self.converters, values, strict=True))


@dataclass
class Match:
    """A routed request: the handler, its positional route values, and the same by name."""

    handler: Handler
    args: tuple[Any, ...]
    params: dict[str, Any]


@dataclass
class Mismatch:
    """The path exists but not for this method (``allowed``), or exists only with/without a trailing slash."""

    allowed: set[str]
    redirect: str | None = None


def _compile(path: str, handler: Any = None) -> Route:
    owner = "" if handler is None else f" (handler {handler_name(handler)})"
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"bad route {path!r}{owner}: a path must be a str starting with '/'")
    route = Route(path)
    parts: list[str] = []
    position = 0
    for placeholder in _PLACEHOLDER.finditer(path):
        name, kind = placeholder.group(1), placeholder.group(2) or "str"
        if not _IDENTIFIER.match(name):
            raise ValueError(f"bad route {path!r}{owner}: {{{name}}} is not a valid parameter name")
        if name in route.names:
            raise ValueError(f"bad route {path!r}{owner}: parameter {name!r} appears twice")
        if kind not in CONVERTERS:
            raise ValueError(f"bad route {path!r}{owner}: unknown type {kind!r} (known: {', '.join(CONVERTERS)})")
        pattern, convert = CONVERTERS[kind]
        parts.append(re.escape(path[position : placeholder.start()]))
        parts.append(f"({pattern})")
        route.names.append(name)
        route.converters.append(convert)
        position = placeholder.end()
    leftover = _PLACEHOLDER.sub("", path)
    if "{" in leftover or "}" in leftover:
        raise ValueError(f"bad route {path!r}{owner}: unbalanced braces")
    parts.append(re.escape(path[position:]))
    route.regex = "".join(parts)
    return route


@functools.lru_cache(maxsize=4096)
def _regex(path: str) -> str:
    """The regex of a well-formed path (an ``App`` checks its whole table on each declaration)."""
    return _compile(path).regex


def route_names(path: str, handler: Any = None) -> list[str]:
    """The ``{param}`` names of ``path``, in order (``ValueError`` for a malformed path, naming ``handler``)."""
    return _compile(path, handler).names


def _where(path: str, methods: Sequence[str] | None, handler: Any) -> str:
    listed = f" {'/'.join(methods)}" if methods else ""
    return f"route {path!r}{listed} (handler {handler_name(handler)})"


def _as_list(names: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{name}"' for name in names) + "]"


def check_methods(path: str, methods: Any, handler: Any) -> list[str]:
    """``methods`` as upper-case names: a list (or tuple, set) of known method names, each once."""
    where = _where(path, None, handler)
    if isinstance(methods, str):
        hint = _as_list([m for m in re.split(r"[\s,]+", methods.upper()) if m] or ["GET"])
        raise ValueError(f"{where}: methods must be a list of str such as {hint}, not the str {methods!r}")
    if not isinstance(methods, list | tuple | set | frozenset) or not all(isinstance(m, str) for m in methods):
        raise ValueError(f'{where}: methods must be a list of str such as ["GET"], not {methods!r}')
    if not methods:
        raise ValueError(f'{where}: no methods; list the ones it serves, such as ["GET"] (or ["WS"])')
    upper = [method.upper() for method in methods]
    for method in upper:
        if method not in METHODS:
            close = difflib.get_close_matches(method, METHODS, n=1)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{where}: unknown method {method!r}{guess}; known: {', '.join(METHODS)} (WS: websockets)")
        if upper.count(method) > 1:
            raise ValueError(f"{where}: {method} is listed twice")
    return upper


def _signature(name: str, signature: inspect.Signature) -> str:
    """``name(a, b=1, *args)``: the signature without annotations, as a user wrote the call."""
    bare = [parameter.replace(annotation=inspect.Parameter.empty) for parameter in signature.parameters.values()]
    return f"{name}{signature.replace(parameters=bare, return_annotation=inspect.Signature.empty)}"


def check_call(
    path: str,
    methods: Sequence[str],
    func: Callable[..., Any],
    leading: Sequence[str],
    by_position: Sequence[str],
    by_name: Sequence[str],
) -> None:
    """Check that the route can call ``func``: ``leading`` arguments (``request``, or ``scope, receiver``), then
    the route values ``by_position`` or ``by_name`` (labels). A ``ValueError`` says what does not fit and how to
    fix it. A callable whose signature Python cannot tell is left to fail when called."""
    try:
        signature = inspect.signature(func, follow_wrapped=False)
    except (TypeError, ValueError):
        return
    where = _where(path, methods, func)
    described = _signature(getattr(func, "__name__", "handler"), signature)
    parameters = signature.parameters.values()
    kinds = {parameter.kind for parameter in parameters}
    positional = [*leading, *by_position]
    call = f"{getattr(func, '__name__', 'handler')}({', '.join([*positional, *(f'{n}=...' for n in by_name)])})"
    if by_name and inspect.Parameter.VAR_KEYWORD not in kinds:
        keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        accepted = {parameter.name for parameter in parameters if parameter.kind in keyword}
        for missing in (name for name in by_name if name not in accepted):
            raise ValueError(
                f"{where}: the path's {{{missing}}} is not a parameter of {described} (route values are passed "
                f"by name); rename the parameter or the placeholder so that they match, or accept **kwargs"
            )
    if inspect.Parameter.VAR_POSITIONAL not in kinds:
        ordered = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        room = sum(parameter.kind in ordered for parameter in parameters)
        if room < len(positional):
            after = f" after the {' and '.join(leading)}" if leading else ""
            raise ValueError(
                f"{where}: {described} takes {room} positional argument{'s' * (room != 1)}, but the route calls "
                f"it as {call} (route values are passed by position{after}); add a parameter for each {{param}}, "
                f"or accept *args"
            )
    try:
        signature.bind(*positional, **dict.fromkeys(by_name))
    except TypeError as exc:
        raise ValueError(
            f"{where}: {described} cannot be called as {call}: {exc}; give its other parameters defaults, or add "
            f"them to the path as {{param}}"
        ) from None


def check_handler(path: str, methods: Sequence[str], handler: Any, names: Sequence[str]) -> Handler:
    """The handler to route ``methods`` of ``path`` to: a websocket handler under ``"WS"`` (an async generator
    function is wrapped as ``@websocket`` would), an HTTP one otherwise, callable with the route's values."""
    if not callable(handler):
        raise ValueError(f"bad route {path!r}: handler {handler!r} is not callable")
    where = _where(path, methods, handler)
    name = handler_name(handler)
    if "WS" in methods:
        if inspect.isasyncgenfunction(handler):
            handler = WebSocketHandler(handler)  # "an async generator in a WS route is treated as @websocket"
        if not isinstance(handler, SessionHandler):
            raise ValueError(
                f"{where}: {name} is not a websocket handler (an HTTP response would answer the handshake); "
                f"decorate it with @websocket, or register it with @app.websocket"
            )
        if len(methods) > 1:
            raise ValueError(f'{where}: a websocket handler serves only ["WS"]; give the HTTP methods their own row')
        func, leading, by_position, by_name = handler.calls(names)
    elif isinstance(handler, SessionHandler) or inspect.isasyncgenfunction(handler):
        kind = "an async generator function" if inspect.isasyncgenfunction(handler) else "a websocket handler"
        raise ValueError(f'{where}: {name} is {kind}, which cannot answer HTTP; route it under ["WS"]')
    else:
        func, leading, by_position, by_name = handler, ["request"], list(names), []
    check_call(path, methods, func, leading, by_position, by_name)
    return handler  # type: ignore[no-any-return]


Row = tuple[str, list[str], Handler]
"""A checked routing-table row: ``(path, upper-case methods, handler as routed)``."""


def check_row(entry: Any) -> Row:
    """One ``(path, methods, handler)`` row, checked on its own (see the module docstring); the methods come
    back upper-cased and an undecorated async generator under ``"WS"`` wrapped as ``@websocket``."""
    if not isinstance(entry, tuple | list) or len(entry) != 3:
        raise ValueError(f"bad route {entry!r}: expected (path, methods, handler)")
    path, methods, handler = entry
    methods = check_methods(path, methods, handler)
    return path, methods, check_handler(path, methods, handler, route_names(path, handler))


def check_unique(rows: Iterable[Row]) -> None:
    """Refuse two handlers for one method of one path (or of paths that match the same requests, such as
    ``/u/{id}`` and ``/u/{name}``): a ``ValueError`` naming both."""
    owners: dict[tuple[str, str], tuple[str, Handler]] = {}  # (regex, method) -> (path, handler)
    for path, methods, handler in rows:
        regex = _regex(path)
        for method in methods:
            first = owners.get((regex, method))
            if first is not None:
                same = "" if first[0] == path else f" (which matches the same paths as {first[0]!r})"
                raise ValueError(
                    f"route {path!r}{same} has two {method} handlers: {handler_name(first[1])} and "
                    f"{handler_name(handler)}; remove one, or give it another path or method"
                )
            owners[regex, method] = (path, handler)


class Router:
    """A compiled routing table: ``match(path, method)`` -> :class:`Match`, :class:`Mismatch` or ``None``.
    Every row is checked (:func:`check_row`, :func:`check_unique`): a mistake is a ``ValueError`` here."""

    def __init__(self, table: Iterable[tuple[str, Sequence[str], Handler]]) -> None:
        rows = [check_row(entry) for entry in table]
        check_unique(rows)
        routes: dict[str, Route] = {}
        for path, methods, handler in rows:
            route = routes.get(path) or routes.setdefault(path, _compile(path))
            for method in methods:
                route.handlers[method] = handler
        self.routes = list(routes.values())
        self.static = {
            r.path: {method: Match(handler, (), {}) for method, handler in r.handlers.items()}
            for r in self.routes
            if not r.dynamic
        }
        self.dynamic = [r for r in self.routes if r.dynamic]
        groups: list[str] = []
        self._slots: dict[str, tuple[Route, int]] = {}
        index = 1
        for number, route in enumerate(self.dynamic):
            groups.append(f"(?P<r{number}>{route.regex})")
            self._slots[f"r{number}"] = (route, index)
            index += 1 + len(route.names)
        self._combined = re.compile("|".join(groups)) if groups else None
        self._singles = [(re.compile(r.regex), r) for r in self.dynamic]

    def match(self, path: str, method: str, slash_redirect: bool = True) -> Match | Mismatch | None:
        """Find the handler for ``method`` on ``path`` (trying the other trailing-slash form on a miss)."""
        matches = self.static.get(path)
        if matches is not None:
            match = matches.get(method) or (matches.get("GET") if method == "HEAD" else None)
            if match is not None:
                return match
        elif self._combined is not None:
            found = self._combined.fullmatch(path)
            if found is not None:
                route, first = self._slots[found.lastgroup or ""]
                handler = route.handlers.get(method) or (route.handlers.get("GET") if method == "HEAD" else None)
                if handler is not None:
                    args = route.convert(found.groups()[first : first + len(route.names)])
                    return Match(handler, args, dict(zip(route.names, args, strict=True)))
        return self._slow_match(path, method, slash_redirect)

    def _slow_match(self, path: str, method: str, slash_redirect: bool) -> Match | Mismatch | None:
        allowed: set[str] = set()
        if path in self.static:
            allowed.update(self.static[path])
        for regex, route in self._singles:
            found = regex.fullmatch(path)
            if found is None:
                continue
            handler = route.handlers.get(method) or (route.handlers.get("GET") if method == "HEAD" else None)
            if handler is not None:
                args = route.convert(found.groups())
                return Match(handler, args, dict(zip(route.names, args, strict=True)))
            allowed.update(route.handlers)
        if allowed:
            return Mismatch(allowed)
        if slash_redirect and method != "WS" and path != "/":
            other = path[:-1] if path.endswith("/") else path + "/"
            if isinstance(self.match(other, method, slash_redirect=False), Match):
                return Mismatch(set(), redirect=other)
        return None

    def table(self) -> list[tuple[str, list[str], Handler]]:
        """``(path, methods, handler)`` rows, one per handler, in definition order."""
        rows: list[tuple[str, list[str], Handler]] = []
        for route in self.routes:
            by_handler: dict[int, tuple[Handler, list[str]]] = {}
            for method, handler in route.handlers.items():
                by_handler.setdefault(id(handler), (handler, []))[1].append(method)
            rows.extend((route.path, methods, handler) for handler, methods in by_handler.values())
        return rows
