"""Routing tables compiled once: static paths in a dict, ``{param}`` paths in one combined regex.

A table is a list of ``(path, methods, handler)``. ``{name}`` matches one path segment, ``{name:int}``,
``{name:float}``, ``{name:uuid}`` convert it, ``{name:path}`` matches the rest of the path including ``/``.
Method ``"WS"`` routes websockets; ``HEAD`` is served by ``GET`` routes.

Trailing slashes are significant: ``/a`` and ``/a/`` are different paths. An HTTP request for one that only
exists as the other gets a ``308`` redirect to it, keeping the query string; websockets are never redirected.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .types import Handler

CONVERTERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "str": (r"[^/]+", str),
    "int": (r"-?[0-9]+", int),
    "float": (r"-?[0-9]+(?:\.[0-9]+)?", float),
    "uuid": (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", uuid.UUID),
    "path": (r".*", str),
}
"""Placeholder types: ``{name:type}`` -> (regex, converter)."""

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


def _compile(path: str) -> Route:
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"bad route {path!r}: a path must be a str starting with '/'")
    route = Route(path)
    parts: list[str] = []
    position = 0
    for placeholder in _PLACEHOLDER.finditer(path):
        name, kind = placeholder.group(1), placeholder.group(2) or "str"
        if not _IDENTIFIER.match(name):
            raise ValueError(f"bad route {path!r}: {{{name}}} is not a valid parameter name")
        if name in route.names:
            raise ValueError(f"bad route {path!r}: parameter {name!r} appears twice")
        if kind not in CONVERTERS:
            raise ValueError(f"bad route {path!r}: unknown type {kind!r} (known: {', '.join(CONVERTERS)})")
        pattern, convert = CONVERTERS[kind]
        parts.append(re.escape(path[position : placeholder.start()]))
        parts.append(f"({pattern})")
        route.names.append(name)
        route.converters.append(convert)
        position = placeholder.end()
    leftover = _PLACEHOLDER.sub("", path)
    if "{" in leftover or "}" in leftover:
        raise ValueError(f"bad route {path!r}: unbalanced braces")
    parts.append(re.escape(path[position:]))
    route.regex = "".join(parts)
    return route


class Router:
    """A compiled routing table: ``match(path, method)`` -> :class:`Match`, :class:`Mismatch` or ``None``."""

    def __init__(self, table: Iterable[tuple[str, Sequence[str], Handler]]) -> None:
        routes: dict[str, Route] = {}
        for entry in table:
            if not isinstance(entry, tuple | list) or len(entry) != 3:
                raise ValueError(f"bad route {entry!r}: expected (path, methods, handler)")
            path, methods, handler = entry
            if isinstance(methods, str) or not all(isinstance(m, str) for m in methods):
                raise ValueError(f"bad route {path!r}: methods must be a list of str such as ['GET'], not {methods!r}")
            if not callable(handler):
                raise ValueError(f"bad route {path!r}: handler {handler!r} is not callable")
            route = routes.get(path) or routes.setdefault(path, _compile(path))
            for method in methods:
                route.handlers[method.upper()] = handler
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
