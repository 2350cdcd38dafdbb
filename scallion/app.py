"""The Emmett-style facade: ``App`` collects routes, websockets, middlewares and hooks; it is the ``Server`` of
``build_server(apply_middleware(*middlewares, wrap_routes(table))(not_found))``, compiled on first use."""

from __future__ import annotations

import inspect
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from .asgi import Ready, Server, handler_name, is_response, json_body, route_result, standard_not_found
from .context import current_request
from .handlers import ObjectHandler, SessionHandler, WebSocketHandler
from .middlewares import apply_middleware, wrap_routes
from .middlewares.origin import HostPolicy, OriginPolicy, host_refused, origin_refused, wrap_allowed_hosts
from .routing import Router, check_call, check_methods, check_row, check_unique, route_names
from .types import Handler, Hook, MiddlewareFactory, Request, Response, Scope

F = TypeVar("F", bound=Callable[..., Any])

if TYPE_CHECKING:
    from .pubsub import Broker

BROKER_ENV = "SCALLION_BROKER"
"""The environment variable (set by ``scallion run --broker URL``) that :attr:`App.broker` is built from."""
BROKER_SCHEMES = ("redis", "rediss", "unix")
"""The URL schemes of a ``SCALLION_BROKER`` URL: all are a :class:`~scallion.pubsub.RedisBroker`'s."""


def check_broker_url(url: str) -> str:
    """``url`` if a broker can be built from it (a ``redis://``, ``rediss://`` or ``unix://`` URL), else a
    ``ValueError`` saying what is expected."""
    scheme, sep, _ = url.partition("://")
    if not sep or scheme.lower() not in BROKER_SCHEMES:
        raise ValueError(
            f"{BROKER_ENV}={url!r} is not a broker URL: expected redis://host:port/db, rediss://... or "
            "unix:///path/to/redis.sock (a RedisBroker); leave it unset for a MemoryBroker"
        )
    return url


def broker_from_env() -> Broker:
    """The broker that ``SCALLION_BROKER`` describes: a :class:`~scallion.pubsub.RedisBroker` for its URL, a
    :class:`~scallion.pubsub.MemoryBroker` when it is unset or empty; ``ValueError`` for another scheme."""
    from .pubsub import MemoryBroker, RedisBroker

    url = os.environ.get(BROKER_ENV, "").strip()
    if not url:
        return MemoryBroker()
    return RedisBroker(check_broker_url(url))


_json_encode = msgspec.json.Encoder().encode


def to_response(result: Any, func: Callable[..., Any]) -> Response:
    """A route function's return value -> response dict: a response dict as is, ``str`` -> text/plain,
    ``bytes`` -> application/octet-stream, ``None`` -> 204, anything else -> JSON (msgspec)."""
    if is_response(result):
        return result  # type: ignore[no-any-return]
    kind = type(result)
    if kind is str:
        return {
            "status": 200,
            "body": result.encode(),
            "headers": {"content-type": "text/plain; charset=utf-8"},
        }
    if kind is bytes:
        return {"status": 200, "body": result, "headers": {"content-type": "application/octet-stream"}}
    if result is None:
        return {"status": 204, "body": b""}
    return {"status": 200, "body": json_body(result, func), "headers": {"content-type": "application/json"}}


def _endpoint(func: Callable[..., Awaitable[Any]], names: list[str], app: App) -> Handler:
    """Wrap an App route function: set ``request``, pass route values by name, convert the result. With no
    middleware around the routes (``app.bare``), the result is :func:`~scallion.asgi.route_result`'s: a ``str``,
    ``bytes``, ``None`` or JSON result becomes a :class:`~scallion.asgi.Ready` response, since nobody can look at
    a response dict. The endpoint of a route without ``{params}`` carries the function as
    ``scallion_route_function``: a server serving the route without the chain calls it itself
    (:func:`~scallion.asgi.direct_routes`)."""

    async def endpoint(scope: dict[str, Any], *args: Any) -> Response | Ready:
        token = current_request.set(scope)
        try:
            result = await (func(**dict(zip(names, args, strict=True))) if args else func())
        finally:
            current_request.reset(token)
        if app.bare:
            return route_result(result, func)
        if type(result) is str:
            return {"status": 200, "body": result.encode(), "headers": {"content-type": "text/plain; charset=utf-8"}}
        return to_response(result, func)

    endpoint.__qualname__ = getattr(func, "__qualname__", "endpoint")
    endpoint.__module__ = getattr(func, "__module__", __name__)
    endpoint.func = func  # type: ignore[attr-defined]
    endpoint.scallion_route_function = None if names else func  # type: ignore[attr-defined]
    return endpoint


class App(Server):
    """An ASGI 3 application built from decorators: ``@app.route``, ``@app.websocket``, ``@app.on_start``,
    ``@app.on_stop`` and ``app.use(middleware, ...)``. Options are those of :func:`~scallion.build_server`.

    An ``App`` is the :class:`~scallion.asgi.Server` that ``build_server`` makes, whose handler is compiled from
    the declarations on first use: ``apply_middleware(*middlewares, wrap_routes(table))(not_found)``.

    Secure by default (docs/security.md): a websocket handshake whose ``Origin`` is neither the server's own
    (its host and port are the ``Host`` header's) nor in ``allowed_origins`` (``"https://app.example.com"``,
    ``"https://*.example.com"``; ``"*"`` allows any, unsafely) gets 403 before any handler runs; one without an
    ``Origin`` (not a browser) is allowed. ``allowed_hosts`` (``["example.com", "*.example.com"]``; None: any)
    serves only requests addressed to those hosts: others get 400 (HTTP) or 403 (websocket handshakes)."""

    def __init__(
        self,
        *,
        not_found: Handler = standard_not_found,
        allowed_origins: str | Iterable[str] = (),
        allowed_hosts: str | Iterable[str] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(self._compile_then_handle, self._start, self._stop, **options)
        self.origins = OriginPolicy(allowed_origins)
        """Which ``Origin`` headers may open a websocket."""
        hosts = None if allowed_hosts is None else HostPolicy(allowed_hosts)
        self.hosts = None if hosts is None or hosts.any_host else hosts
        """Which ``Host`` headers are served (None: any)."""
        self.not_found = not_found
        self.table: list[tuple[str, list[str], Handler]] = []
        self.middlewares: list[MiddlewareFactory] = []
        self.start_hooks: list[Callable[[], Any]] = []
        self.stop_hooks: list[Callable[[], Any]] = []
        self.compiled = False
        self.bare = False
        """True once compiled with no middleware around the routes: route results are sent without response dicts."""

    # -- declaring ------------------------------------------------------------------------------------
    def route(self, path: str | None = None, methods: Sequence[str] = ("GET",)) -> Callable[[F], F]:
        """Register an HTTP route; the path defaults to ``"/" + function name``. The function takes the
        route's ``{params}`` by name and returns a response dict, ``str``, ``bytes``, ``None`` or JSON data.
        A mistake (methods not a list of method names, a ``{param}`` the function does not take, a path and
        method already routed) is a ``ValueError`` here, at declaration."""

        def decorate(func: F) -> F:
            if not inspect.iscoroutinefunction(func):
                hint = (
                    "; register a websocket handler with @app.websocket"
                    if isinstance(func, SessionHandler) or inspect.isasyncgenfunction(func)
                    else ""
                )
                raise TypeError(f"@app.route needs an async def function, not {func!r}{hint}")
            route = path if path is not None else "/" + func.__name__
            listed = check_methods(route, methods, func)
            names = route_names(route, func)
            check_call(route, listed, func, [], [], names)
            self._add(route, listed, _endpoint(func, names, self))
            return func

        return decorate

    def websocket(
        self,
        path: str | None = None,
        *,
        on_connect: Hook | None = None,
        on_disconnect: Hook | None = None,
        on_close: Hook | None = None,
    ) -> Callable[[F], F]:
        """Register a websocket route (default path ``"/" + function name``). An async generator (or an
        ``@websocket`` handler) gets ``(scope, receiver, **params)``; a coroutine function is Emmett style and
        uses the ``websocket`` object. A ``{param}`` the function does not take is a ``ValueError`` here."""

        def decorate(func: F) -> F:
            handler: SessionHandler
            if isinstance(func, WebSocketHandler):
                handler = func.with_hooks(on_connect, on_disconnect, on_close)
            elif inspect.isasyncgenfunction(func):
                handler = WebSocketHandler(func, on_connect, on_disconnect, on_close)
            elif inspect.iscoroutinefunction(func):
                handler = ObjectHandler(func, on_connect, on_disconnect, on_close)
            else:
                raise TypeError(f"@app.websocket needs an async generator or async def function, not {func!r}")
            route = path if path is not None else "/" + getattr(func, "__name__", "websocket")
            names = route_names(route, func)
            self._add(route, ["WS"], handler.by_name(names) if names else handler)
            return func

        return decorate

    def use(self, *middlewares: MiddlewareFactory) -> None:
        """Add middlewares (such as ``wrap_cors(...)``); they run in order, before routing."""
        self._check_open()
        self.middlewares.extend(middlewares)

    def on_start(self, func: F) -> F:
        """Run ``func()`` at startup; a returned dict is merged into ``request["config"]``."""
        self._check_open()
        self.start_hooks.append(func)
        return func

    def on_stop(self, func: F) -> F:
        """Run ``func()`` at shutdown, after open websockets were closed with 1001."""
        self._check_open()
        self.stop_hooks.append(func)
        return func

    def _add(self, path: str, methods: list[str], handler: Handler) -> None:
        self._check_open()
        row = check_row((path, methods, handler))  # a bad route fails here, at declaration, leaving the app as is
        check_unique([*self.table, row])
        self.table.append(row)

    def _check_open(self) -> None:
        if self.compiled:
            raise RuntimeError("the App is already serving; declare routes, middlewares and hooks before")

    @cached_property
    def broker(self) -> Broker:
        """The app's default broker, built on first use from ``SCALLION_BROKER`` (``scallion run --broker URL``):
        a :class:`~scallion.pubsub.RedisBroker` for a ``redis://``, ``rediss://`` or ``unix://`` URL, a
        :class:`~scallion.pubsub.MemoryBroker` when it is unset. Another scheme is a ``ValueError``."""
        return broker_from_env()

    # -- serving --------------------------------------------------------------------------------------
    def build(self) -> App:
        """Compile the routes and middlewares into the handler (done once, on first use); returns the app."""
        if not self.compiled:
            # The host check is in the chain only when there is one: the default HTTP path pays nothing for it.
            checks = [] if self.hosts is None else [wrap_allowed_hosts(self.hosts)]
            self.handler = apply_middleware(*checks, *self.middlewares, wrap_routes(self.table))(self.not_found)
            self.bare = not checks and not self.middlewares
            self.compiled = True
        return self

    def screen(self, request: Request) -> Response | None:
        """Refuse a websocket handshake for a host not in ``allowed_hosts`` or from an origin that is not
        allowed (403), before any handler runs."""
        refusal = super().screen(request)
        if refusal is not None:
            return refusal
        headers = request["headers"]
        if self.hosts is not None and not self.hosts.permits(headers.get("host")):
            return host_refused("WS")
        if not self.origins.permits(headers):
            return origin_refused()
        return None

    def _compile_then_handle(self, request: dict[str, Any]) -> Awaitable[Any]:
        return self.build().handler(request)

    async def _start(self, scope: Scope) -> dict[str, Any]:
        config: dict[str, Any] = {}
        for hook in self.start_hooks:
            result = hook()
            if inspect.isawaitable(result):
                result = await result
            if isinstance(result, dict):
                config.update(result)
        return config

    async def _stop(self, scope: Scope) -> None:
        for hook in self.stop_hooks:
            result = hook()
            if inspect.isawaitable(result):
                await result

    def routes(self) -> list[tuple[str, list[str], str]]:
        """``(path, methods, handler name)`` for every route, websockets included."""
        return [(path, methods, handler_name(getattr(h, "func", h))) for path, methods, h in Router(self.table).table()]

    def asyncapi(self, path: str = "/asyncapi.json", title: str | None = None, version: str | None = None) -> None:
        """Serve the AsyncAPI 3.0 document of this app's websocket routes (:mod:`scallion.asyncapi`) at ``path``."""
        from .asyncapi import asyncapi_document

        async def asyncapi_json() -> Response:
            body = _json_encode(asyncapi_document(self, title, version))
            return {"status": 200, "body": body, "headers": {"content-type": "application/json"}}

        self.route(path)(asyncapi_json)
