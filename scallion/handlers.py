"""The two websocket handler styles, as thin adapters over :class:`~scallion.connection.Connection`.

* Seed 000 (shallot): ``@websocket`` turns ``async def h(scope, receiver, *params)``, an async generator that
  yields ``ws_send(...)``/``ws_close(...)`` dicts, into a handler. ``receiver`` is the connection itself: an
  async iterator of ``str``/``bytes`` that ends when the client leaves. A plain coroutine ``h(scope, receiver)``
  is allowed too. The connection core drives the generator.
* Seed 003 (Emmett): a coroutine function with no ``scope`` that talks to the context-local ``websocket``.

``websocket`` itself is both: calling it decorates, reading an attribute gives the current connection.
Outside a connection, reading an attribute raises :class:`~scallion.context.OutsideHandler` (a ``RuntimeError``
and an ``AttributeError``: ``hasattr`` is False, ``inspect.signature(websocket)`` describes the decorator).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Awaitable, Callable, Sequence
from types import AsyncGeneratorType
from typing import TYPE_CHECKING, Any, overload

from .asgi import handler_name
from .connection import Connection
from .context import OutsideHandler, current_methods, current_websocket
from .types import Hook, Request


class Hooks:
    """``on_connect``/``on_disconnect``/``on_close`` plus a name for log lines."""

    __slots__ = ("name", "on_close", "on_connect", "on_disconnect")

    def __init__(self, name: str, on_connect: Hook | None, on_disconnect: Hook | None, on_close: Hook | None):
        self.name = name
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.on_close = on_close


class _Session:
    """One connection's session: the handler's hooks and the call that runs its body."""

    __slots__ = ("args", "handler", "kwargs", "name", "on_close", "on_connect", "on_disconnect", "scope")

    def __init__(self, handler: Any, scope: Request, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        hooks: Hooks = handler.hooks
        self.name = hooks.name
        self.on_connect = hooks.on_connect
        self.on_disconnect = hooks.on_disconnect
        self.on_close = hooks.on_close
        self.handler = handler
        self.scope = scope
        self.args = args
        self.kwargs = kwargs

    @property
    def accepts(self) -> bool:
        """True when the handshake is accepted before the body runs (seed-000 handlers)."""
        return bool(self.handler.accepts)

    def run(self, connection: Connection) -> Awaitable[None] | AsyncGeneratorType[Any, None]:
        """The handler body on ``connection``, returned (not awaited), so that the connection core drives it
        directly: every coroutine between the server and the handler costs on every message."""
        return self.handler.body(connection, self)  # type: ignore[no-any-return]


class SessionHandler:
    """A websocket handler: ``await handler(scope, *route_values)`` gives the session the connection core serves.

    Routing tables pass route values by position; :meth:`by_name` makes the copy that ``App`` registers, which
    passes them to the function by name."""

    func: Callable[..., Any]
    hooks: Hooks
    names: tuple[str, ...] = ()
    """The route's ``{param}`` names when values are passed by name (``App``); empty: by position."""
    leading: tuple[str, ...] = ()
    """What the function gets before the route values (for error messages): ``("scope", "receiver")``."""
    accepts = False

    async def __call__(self, scope: Request, *args: Any, **kwargs: Any) -> _Session:
        if self.names:
            return _Session(self, scope, (), dict(zip(self.names, args, strict=True)))
        return _Session(self, scope, args, kwargs)

    def by_name(self, names: Sequence[str]) -> SessionHandler:
        """A copy that passes the route values ``names`` to the function by name."""
        named = copy.copy(self)
        named.names = tuple(names)
        return named

    def calls(self, names: Sequence[str]) -> tuple[Callable[..., Any], list[str], list[str], list[str]]:
        """How the function is called on a route with these ``{param}`` names, for checking its signature at
        declaration: ``(function, leading arguments, route values by position, route values by name)``."""
        if self.names:
            return self.func, [*self.leading], [], list(names)
        return self.func, [*self.leading], list(names), []

    def body(self, connection: Connection, session: _Session) -> Awaitable[None] | AsyncGeneratorType[Any, None]:
        """The handler body on ``connection`` (an async generator or a coroutine)."""
        raise NotImplementedError


class WebSocketHandler(SessionHandler):
    """A seed-000 websocket handler (made by ``@websocket``); call it with ``(scope, *route_params)``."""

    leading = ("scope", "receiver")

    def __init__(
        self,
        func: Callable[..., Any],
        on_connect: Hook | None = None,
        on_disconnect: Hook | None = None,
        on_close: Hook | None = None,
    ) -> None:
        if not (inspect.isasyncgenfunction(func) or inspect.iscoroutinefunction(func)):
            raise TypeError(f"@websocket needs an async generator or coroutine function, not {func!r}")
        self.func = func
        self.hooks = Hooks(handler_name(func), on_connect, on_disconnect, on_close)
        self.__name__ = getattr(func, "__name__", "websocket")
        self.__qualname__ = getattr(func, "__qualname__", self.__name__)
        self.__doc__ = func.__doc__

    def with_hooks(
        self, on_connect: Hook | None, on_disconnect: Hook | None, on_close: Hook | None
    ) -> WebSocketHandler:
        """A copy whose hooks are replaced where a new one is given."""
        hooks = self.hooks
        return WebSocketHandler(
            self.func,
            on_connect or hooks.on_connect,
            on_disconnect or hooks.on_disconnect,
            on_close or hooks.on_close,
        )

    accepts = True
    """The handshake is accepted before the body runs (unless ``on_connect`` decided otherwise)."""

    def body(self, connection: Connection, session: _Session) -> Awaitable[None] | AsyncGeneratorType[Any, None]:
        """The async generator (or coroutine) of ``func(scope, receiver, *params)``; the connection core drives
        a generator and awaits a coroutine."""
        return self.func(session.scope, connection, *session.args, **session.kwargs)  # type: ignore[no-any-return]


class ObjectHandler(SessionHandler):
    """An Emmett-style websocket handler: ``async def h(**route_params)`` using the ``websocket`` object.

    The handshake is accepted by the first ``websocket.receive()``/``send()`` (or an explicit ``accept()``).
    """

    def __init__(
        self,
        func: Callable[..., Awaitable[Any]],
        on_connect: Hook | None = None,
        on_disconnect: Hook | None = None,
        on_close: Hook | None = None,
    ) -> None:
        self.func = func
        self.hooks = Hooks(handler_name(func), on_connect, on_disconnect, on_close)
        self.__name__ = getattr(func, "__name__", "websocket")

    accepts = False
    """The handshake is accepted by the first receive/send (or an explicit ``accept()``)."""

    def body(self, connection: Connection, session: _Session) -> Awaitable[None]:
        """The coroutine; the connection core closes the socket with 1000 when it returns."""
        return self.func(*session.args, **session.kwargs)  # type: ignore[no-any-return]


class _Decorator:
    """``@websocket(on_connect=..., ...)``: decorates a seed-000 handler with its hooks. Awaiting it is the mistake
    ``await websocket.receive()`` outside a connection, and says so."""

    def __init__(self, on_connect: Hook | None, on_disconnect: Hook | None, on_close: Hook | None) -> None:
        self.hooks = (on_connect, on_disconnect, on_close)

    def __call__(self, function: Callable[..., Any]) -> WebSocketHandler:
        return WebSocketHandler(function, *self.hooks)

    def __await__(self) -> Any:
        raise OutsideHandler(
            "websocket.receive() / websocket.receive_json() are only available inside a websocket handler"
        )


if TYPE_CHECKING:
    _ConnectionView = Connection  # type checkers see every Connection attribute on `websocket`, typed
else:
    _ConnectionView = object


class _WebSocketObject(_ConnectionView):
    """``websocket``: the seed-000 decorator when called, the current connection when read."""

    __slots__ = ()

    def __init__(self) -> None:
        """The one proxy, :data:`websocket`; it holds nothing."""

    @overload
    def __call__(self, func: Callable[..., Any], /) -> WebSocketHandler: ...

    @overload
    def __call__(
        self,
        func: None = None,
        /,
        *,
        on_connect: Hook | None = None,
        on_disconnect: Hook | None = None,
        on_close: Hook | None = None,
    ) -> Callable[[Callable[..., Any]], WebSocketHandler]: ...

    def __call__(
        self,
        func: Callable[..., Any] | None = None,
        /,
        *,
        on_connect: Hook | None = None,
        on_disconnect: Hook | None = None,
        on_close: Hook | None = None,
    ) -> WebSocketHandler | Callable[[Callable[..., Any]], WebSocketHandler]:
        """``@websocket`` or ``@websocket(on_connect=, on_disconnect=, on_close=)`` on an async generator
        ``(scope, receiver, *route_params)`` (or a coroutine with that signature)."""

        if func is not None and not callable(func):  # websocket.send(data) outside a connection (see above)
            raise OutsideHandler(
                "websocket.send() / websocket.send_json() are only available inside a websocket handler"
            )
        decorate = _Decorator(on_connect, on_disconnect, on_close)
        return decorate(func) if func is not None else decorate

    if not TYPE_CHECKING:  # type checkers see the typed attributes of the view instead, and report unknown ones
        # The hot four read the current connection's bound method out of a ContextVar with no Python frame on
        # the way (a property whose getter is ContextVar.get, the proxy itself its default): the proxy's
        # lookup would otherwise cost more per message than the rest of scallion. Outside a connection they
        # give the proxy, whose __call__ then says so (see __call__ and _Decorator).
        send, receive, send_json, receive_json = (property(var.get) for var in current_methods)

        def __getattr__(self, name: str) -> Any:
            current = current_websocket.get(None)
            if current is None or name[:2] == "__":  # isinstance(), copy, inspect... see the proxy itself
                raise OutsideHandler(f"websocket.{name} is only available inside a websocket handler")
            return getattr(current, name)

    def __copy__(self) -> _WebSocketObject:
        return self  # the one proxy

    def __deepcopy__(self, memo: dict[int, Any]) -> _WebSocketObject:
        return self

    def __aiter__(self) -> Connection:
        current = current_websocket.get(None)
        if current is None:
            raise RuntimeError("async for ... in websocket is only possible inside a websocket handler")
        return current

    def __repr__(self) -> str:
        current = current_websocket.get(None)
        return f"<websocket {current.path} {current.state.value}>" if current else "<websocket (none)>"


websocket = _WebSocketObject()
"""Decorator for seed-000 handlers when called; the current connection (Emmett style) when read."""
