"""The ``scallion`` command line: ``scallion run TARGET`` serves an app, ``scallion routes TARGET`` lists its routes.

A TARGET is ``module:attr`` / ``module`` (imported with the current directory first on ``sys.path``) or a file
``path/to/file.py`` / ``path/to/file.py:attr``; the attribute defaults to ``app``. A file is imported by its module
name with its directory (or, inside a package, the directory above the package) first on ``sys.path``, so it
works from any current directory and can be re-imported by name in worker processes.

Shutdown: scallion's contract closes open websockets with 1001 (going away) when the server stops. uvicorn's own
``Server.shutdown()`` closes websockets with 1012 *before* the lifespan shutdown runs, so ``scallion run`` serves
with :class:`ScallionServer`, which first awaits the app's ``close_websockets()`` (for an :class:`~scallion.App`
or a :func:`~scallion.build_server` app), then shuts down as usual. granian drops open websockets without a
close frame before the ASGI lifespan shutdown runs (clients see 1006); see :func:`run_granian`.

A TARGET may also be a bare handler, as seed 000 calls an ``@websocket`` function "a normal handler": a
data-driven handler (``async def handler(request)``, one argument, such as an ``apply_middleware(...)`` chain) is
served as ``build_server(handler)``; an ``@websocket`` handler is served on every websocket path, HTTP requests
getting 404 (:func:`serve_handler`). Other errors in the TARGET (missing file, module that does not import,
missing attribute, an attribute that is neither an ASGI application nor a handler) are reported in one line on
stderr with exit status 2.

Logging: scallion's loggers get the server's format and ``--log-level`` (:mod:`scallion.log`); on uvicorn the
spurious "ASGI callable returned without completing handshake." ERROR of its websockets-sansio implementation is
filtered for scallion apps. ``--broker URL`` sets ``SCALLION_BROKER`` (``App.broker``) for every worker; with
``--workers > 1`` a MemoryBroker found in the target (:func:`memory_brokers`) is warned about at start.
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib
import inspect
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, NoReturn, TypeGuard, TypeVar

import uvicorn
import uvicorn.supervisors.multiprocess as uvicorn_multiprocess

from . import __version__
from .app import BROKER_ENV, App, check_broker_url
from .asgi import Server, build_server, handler_name, standard_not_found
from .handlers import SessionHandler
from .log import granian_log_config, uvicorn_log_config
from .routing import Router
from .types import Handler, Request, Response

logger = logging.getLogger("scallion")

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
"""The ``--log-level`` choices (uvicorn's; granian treats ``trace`` as ``debug``)."""

WS_IMPLEMENTATIONS = ("auto", "websockets-sansio", "websockets", "wsproto")
"""The ``--ws`` choices: uvicorn's websocket implementations (``auto``: websockets-sansio if python-websockets is
installed, as with ``uvicorn[standard]``, else wsproto)."""

UVICORN_ONLY = ("ws", "ws_max_size", "ws_ping_interval", "ws_ping_timeout")
"""Options granian has no equivalent for (granian 2.8: no frame size limit, no server pings)."""

SERVE_ENV = "SCALLION_SERVE_HANDLER"
"""How worker processes learn which bare handler to wrap (:func:`worker_app`): ``[module, attr, app_dir]``."""

EXIT_USAGE = 2
"""Exit status for a bad command line or a bad TARGET."""

_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


T = TypeVar("T")


def _is(obj: object, cls: type[T]) -> TypeGuard[T]:
    """``isinstance`` by ``type(obj)``: proxies such as scallion's ``websocket`` refuse attribute access
    outside a connection, ``__class__`` included, which makes ``isinstance`` raise."""
    return issubclass(type(obj), cls)


class TargetError(Exception):
    """A TARGET that cannot be served: the message says why, in one line."""


# -- targets ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """Where an app lives: import ``module`` with ``app_dir`` first on ``sys.path`` and read ``attr``."""

    module: str
    attr: str
    app_dir: str
    file: str | None = None
    """The file the user named, if the TARGET was a path."""

    @property
    def import_string(self) -> str:
        """``"module:attr"``, what uvicorn and granian import in worker processes."""
        return f"{self.module}:{self.attr}"

    def __str__(self) -> str:
        return f"{self.file}:{self.attr}" if self.file else self.import_string


def _module_for_file(path: str) -> tuple[str, str]:
    """``(module name, directory to put on sys.path)`` for a ``.py`` file or a package directory: walk up
    while the directory is a package, so ``pkg/sub/mod.py`` imports as ``pkg.sub.mod``."""
    path = os.path.realpath(path)
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "__init__.py")):
            raise TargetError(f"{path} is a directory without __init__.py; name a .py file or a package")
        directory, name = os.path.split(path)
        parts = [name]
    else:
        directory, filename = os.path.split(path)
        stem, ext = os.path.splitext(filename)
        if ext != ".py":
            raise TargetError(f"{path} is not a Python file (.py)")
        parts = [] if stem == "__init__" else [stem]
    while os.path.isfile(os.path.join(directory, "__init__.py")):
        directory, name = os.path.split(directory)
        parts.append(name)
    if not parts:
        raise TargetError(f"cannot import {path}: name the package directory instead")
    module = ".".join(reversed(parts))
    if not _DOTTED.match(module):
        raise TargetError(f"cannot import {path} as module {module!r}: that is not a valid Python module name")
    return module, directory


def parse_target(spec: str) -> Target:
    """Parse ``module:attr``, ``module``, ``path/to/file.py`` or ``path/to/file.py:attr`` (attr defaults to
    ``app``). A path must exist; a module target is looked up from the current directory."""
    location, attr = spec, "app"
    head, sep, tail = spec.rpartition(":")
    if sep and _DOTTED.match(tail):
        location, attr = head, tail
    elif sep and (not tail or not re.search(r"[\\/]", tail)):
        raise TargetError(f"bad target {spec!r}: {tail!r} is not an attribute name (expected module:attr)")
    if not location:
        raise TargetError(f"bad target {spec!r}: expected module:attr or path/to/file.py")
    is_path = location.endswith(".py") or "/" in location or os.sep in location or os.path.isdir(location)
    if is_path:
        if not os.path.exists(location):
            raise TargetError(f"file not found: {location} (current directory: {os.getcwd()})")
        module, app_dir = _module_for_file(location)
        return Target(module, attr, app_dir, file=location)
    if not _DOTTED.match(location):
        raise TargetError(f"bad target {spec!r}: {location!r} is neither a module name nor a path to a .py file")
    return Target(location, attr, os.getcwd())


def _import(target: Target) -> ModuleType:
    if target.app_dir not in sys.path:
        sys.path.insert(0, target.app_dir)
    if target.file is not None:
        loaded = sys.modules.get(target.module)
        loaded_file = getattr(loaded, "__file__", None)
        if loaded is not None and (loaded_file is None or not _same_file(loaded_file, target)):
            raise TargetError(
                f"cannot import {target.file} as module {target.module!r}: a different module of that name is "
                f"already loaded ({loaded_file or 'built in'}); rename the file"
            )
    try:
        module = importlib.import_module(target.module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if target.module == missing or target.module.startswith(missing + "."):
            raise TargetError(
                f"cannot import module {target.module!r}: no module named {missing!r} "
                f"(looked in {target.app_dir} and on sys.path)"
            ) from None
        traceback.print_exc()
        raise TargetError(f"importing module {target.module!r} failed: {exc}") from None
    except Exception as exc:
        traceback.print_exc()
        raise TargetError(f"importing module {target.module!r} failed: {type(exc).__name__}: {exc}") from None
    if target.file is not None and not _same_file(getattr(module, "__file__", None) or "", target):
        raise TargetError(
            f"cannot import {target.file} as module {target.module!r}: that name is taken by "
            f"{getattr(module, '__file__', None) or 'a built-in module'}; rename the file"
        )
    return module


def _same_file(module_file: str, target: Target) -> bool:
    assert target.file is not None
    wanted = os.path.realpath(target.file)
    if os.path.isdir(wanted):
        wanted = os.path.join(wanted, "__init__.py")
    return os.path.realpath(module_file) == wanted


def asgi_problem(obj: object) -> str | None:
    """Why ``obj`` is not an ASGI 3 application, or None if it looks like one (a scallion :class:`App` or
    build_server app, or any non-class callable that takes ``(scope, receive, send)``)."""
    kind = type(obj)
    if _is(obj, App) or _is(obj, Server):
        return None
    if _is(obj, ModuleType):
        return "it is a module"
    if _is(obj, type):
        return f"it is a class ({getattr(obj, '__name__', '?')}); serve an instance of it"
    if not callable(obj):
        return f"it is a {kind.__name__}, not callable"
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None  # a builtin or extension callable: give it the benefit of the doubt
    except Exception as exc:
        return f"it cannot be inspected ({type(exc).__name__}: {exc})"
    if inspect.isasyncgenfunction(obj):
        return "it is an async generator function: decorate it with @websocket to serve it as a websocket handler"
    if (inspect.isfunction(obj) or inspect.ismethod(obj)) and not inspect.iscoroutinefunction(obj):
        return "it is a plain function; an ASGI app is an async def (scope, receive, send) callable"
    try:
        signature.bind(object(), object(), object())
    except TypeError:
        count = len(signature.parameters)
        hint = " or a handler takes (request)" if count != 1 else ""
        return f"it takes {count} argument(s), an ASGI app takes (scope, receive, send){hint}"
    return None


def handler_kind(obj: object) -> str | None:
    """``"websocket"`` for an ``@websocket`` handler, ``"handler"`` for a data-driven handler (a callable that
    takes one argument, the request: ``async def handler(request)``, an ``apply_middleware(...)(...)`` chain),
    None for anything else (an ASGI app among them)."""
    if _is(obj, SessionHandler):
        return "websocket"
    if _is(obj, App) or _is(obj, Server) or _is(obj, type) or _is(obj, ModuleType) or not callable(obj):
        return None
    if inspect.isasyncgenfunction(obj):
        return None
    try:
        inspect.signature(obj).bind(object())
    except Exception:  # it takes another number of arguments, or it cannot be inspected
        return None
    return "handler"


def websocket_everywhere(handler: SessionHandler) -> Handler:
    """A handler that serves ``handler`` for a websocket on any path and answers HTTP requests with 404."""

    async def every_path(request: Request) -> Response | object:
        if request["method"] == "WS":
            return await handler(request)
        return await standard_not_found(request)

    every_path.__qualname__ = f"websocket_everywhere({handler_name(handler)})"
    return every_path


def serve_handler(handler: Any, kind: str) -> Server:
    """The app that serves a bare handler given as the TARGET (``kind`` from :func:`handler_kind`):
    ``build_server(handler)`` for a data-driven handler; for an ``@websocket`` handler, one that serves it on
    every websocket path and answers HTTP with 404."""
    if kind == "websocket":
        return build_server(websocket_everywhere(handler))
    return build_server(handler)


def load_value(target: Target) -> Any:
    """Import ``target`` and return the object it names; :class:`TargetError` if it cannot be found."""
    value: Any = _import(target)
    path = target.module
    for part in target.attr.split("."):
        if not hasattr(value, part):
            candidates = _apps_in(value) if _is(value, ModuleType) else []
            hint = f"; ASGI apps found: {', '.join(candidates)}" if candidates else ""
            raise TargetError(f"module {path!r} has no attribute {part!r} (target {target}){hint}")
        value = getattr(value, part)
        path = f"{path}.{part}"
    return value


def as_app(value: Any, target: Target) -> Any:
    """The ASGI application that serves ``value``: itself if it is one, :func:`serve_handler` of a bare
    handler; :class:`TargetError` for anything else."""
    kind = handler_kind(value)
    if kind is not None:
        return serve_handler(value, kind)
    problem = asgi_problem(value)
    if problem is not None:
        raise TargetError(f"{target.import_string} is neither an ASGI application nor a handler: {problem}")
    return value


def load_app(target: Target) -> Any:
    """Import ``target`` and return its ASGI application (a bare handler wrapped by :func:`serve_handler`);
    :class:`TargetError` explains any failure."""
    return as_app(load_value(target), target)


@functools.cache
def worker_app() -> Any:
    """The app of a bare-handler TARGET in a uvicorn worker process (a uvicorn factory, cached so that the
    shutdown of :class:`ScallionServer` finds the same app): the target comes in ``SCALLION_SERVE_HANDLER``."""
    module, attr, app_dir = json.loads(os.environ[SERVE_ENV])
    return load_app(Target(module, attr, app_dir))


# -- brokers ---------------------------------------------------------------------------------------------
def memory_brokers(target: Target, value: object) -> list[str]:
    """Where the TARGET has a MemoryBroker, which reaches only its own worker's sockets: module-level
    MemoryBroker objects of the target module, and an ``App`` whose ``broker`` is one: already built, or
    (``SCALLION_BROKER`` unset) read in the module's code as ``<app name>.broker``."""
    from .pubsub import MemoryBroker

    module = sys.modules.get(target.module)
    if module is None:
        return []
    found = [f"{target.module}.{name}" for name, item in vars(module).items() if _is(item, MemoryBroker)]
    if _is(value, App):
        built = vars(value).get("broker")
        if built is not None:
            if _is(built, MemoryBroker) and all(built is not item for item in vars(module).values()):
                found.append(f"{target.attr}.broker")
        elif not os.environ.get(BROKER_ENV, "").strip() and _reads_attribute(module, target.attr, "broker"):
            found.append(f"{target.attr}.broker")
    return found


def _reads_attribute(module: ModuleType, name: str, attribute: str) -> bool:
    """True if the source of ``module`` reads ``name.attribute`` anywhere."""
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError, SyntaxError):
        return False
    return any(
        isinstance(node, ast.Attribute)
        and node.attr == attribute
        and isinstance(node.value, ast.Name)
        and node.value.id == name
        for node in ast.walk(tree)
    )


def memory_broker_warning(target: Target, value: object, workers: int) -> str | None:
    """The warning for ``--workers > 1`` with a MemoryBroker in the target, or None."""
    if workers <= 1:
        return None
    found = memory_brokers(target, value)
    if not found:
        return None
    return (
        f"MemoryBroker with --workers {workers} splits pub/sub between workers: use --broker redis://... "
        f"(and App.broker), or a RedisBroker (found: {', '.join(found)})"
    )


def _apps_in(module: ModuleType) -> list[str]:
    return sorted(name for name, value in vars(module).items() if _is(value, App) or _is(value, Server))


# -- shutdown --------------------------------------------------------------------------------------------
def websocket_closer(app: object) -> Callable[[], Awaitable[None]] | None:
    """The coroutine function that closes ``app``'s open websockets with 1001: ``close_websockets`` of a
    scallion :class:`App` or build_server :class:`~scallion.asgi.Server`; None otherwise."""
    if _is(app, Server):
        return app.close_websockets
    return None


class ScallionServer(uvicorn.Server):
    """uvicorn's ``Server`` whose shutdown first stops listening and closes a scallion app's open websockets
    with 1001 (going away), waiting for their handlers, and only then runs uvicorn's shutdown (which would
    otherwise close them with 1012 before the lifespan shutdown gets a chance)."""

    def served_app(self) -> object:
        """The application object being served (imported again by name in worker processes)."""
        app = self.config.app
        if isinstance(app, str):
            try:
                loaded = uvicorn.importer.import_from_string(app)
            except uvicorn.importer.ImportFromStringError:
                return None
            return loaded() if self.config.factory and loaded is worker_app else loaded
        return app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Close scallion websockets with 1001, then shut down as uvicorn does."""
        closer = websocket_closer(self.served_app())
        if closer is not None and not self.force_exit:
            for server in getattr(self, "servers", []):
                server.close()  # no new connections while the open ones are closed
            try:
                await closer()
            except Exception:
                logger.exception("closing websockets at shutdown failed")
        await super().shutdown(sockets)


class ScallionProcess(uvicorn_multiprocess.Process):
    """A uvicorn worker process that serves with :class:`ScallionServer`."""

    @property
    def server(self) -> uvicorn.Server:
        """The worker's :class:`ScallionServer`."""
        if self._server is None:
            self._server = ScallionServer(config=self.config)
        return self._server


class ScallionMultiprocess(uvicorn_multiprocess.Multiprocess):
    """uvicorn's worker supervisor, with :class:`ScallionProcess` workers."""

    def run(self) -> None:
        """Supervise the workers until a signal stops them.

        uvicorn's supervisor creates its workers with the module-level name ``Process``; this process does
        nothing but supervise, so pointing that name at :class:`ScallionProcess` here is contained."""
        uvicorn_multiprocess.Process = ScallionProcess  # type: ignore[misc]
        super().run()


# -- serving ---------------------------------------------------------------------------------------------
def _stopped(number: int, frame: FrameType | None) -> NoReturn:
    """The SIGTERM handler uvicorn restores and re-raises after its graceful shutdown: end as SIGINT does."""
    raise KeyboardInterrupt


@dataclass(frozen=True)
class Note:
    """A line for the log once the server's logging is configured (a warning or what is served)."""

    level: int
    message: str


def run_uvicorn(
    target: Target,
    app: Any,
    *,
    host: str,
    port: int,
    workers: int,
    reload: bool,
    log_level: str | None,
    wrapped: bool = False,
    notes: Sequence[Note] = (),
    ws: str | None = None,
    ws_max_size: int | None = None,
    ws_ping_interval: float | None = None,
    ws_ping_timeout: float | None = None,
    proxy_headers: bool | None = None,
    forwarded_allow_ips: str | None = None,
) -> int:
    """Serve with uvicorn (programmatically, through :class:`ScallionServer`); returns the exit status.

    ``wrapped``: ``app`` wraps a bare handler (:func:`serve_handler`), which worker processes build with
    :func:`worker_app`. The options left None keep uvicorn's defaults."""
    if reload and workers > 1:
        raise TargetError("--reload and --workers > 1 cannot be combined with uvicorn")
    by_name = reload or workers > 1
    served: Any = app
    options: dict[str, Any] = {}
    if by_name and wrapped:
        os.environ[SERVE_ENV] = json.dumps([target.module, target.attr, target.app_dir])
        served, options["factory"] = f"{__name__}:{worker_app.__name__}", True
    elif by_name:
        served = target.import_string
    given = {
        "ws": ws,
        "ws_max_size": ws_max_size,
        "ws_ping_interval": ws_ping_interval,
        "ws_ping_timeout": ws_ping_timeout,
        "proxy_headers": proxy_headers,
        "forwarded_allow_ips": forwarded_allow_ips,
    }
    options.update((name, value) for name, value in given.items() if value is not None)
    config = uvicorn.Config(
        served,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        reload_dirs=[target.app_dir] if reload else None,
        log_level=log_level,
        log_config=uvicorn_log_config(log_level, scallion_app=websocket_closer(app) is not None),
        **options,
    )
    for note in notes:  # the logging is configured now
        logger.log(note.level, "%s", note.message)
    server = ScallionServer(config)
    # uvicorn re-raises the signal that stopped it once its graceful shutdown is over; for SIGTERM, whose default
    # action kills the process, that would turn a clean stop into exit status -15: make it end like SIGINT does.
    previous = (
        signal.signal(signal.SIGTERM, _stopped) if threading.current_thread() is threading.main_thread() else None
    )
    try:
        if config.should_reload:
            from uvicorn.supervisors import ChangeReload

            ChangeReload(config, target=server.run, sockets=[config.bind_socket()]).run()
        elif config.workers > 1:
            ScallionMultiprocess(config, sockets=[config.bind_socket()]).run()
        else:
            server.run()
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if not by_name and not server.started:
        return 3  # uvicorn's STARTUP_FAILURE
    return 0


def granian_loader(module: str, attr: str, app_dir: str, trusted_proxies: str | None = None) -> Any:
    """Load the app in a granian worker process (module level, so it pickles for spawned workers); a scallion
    app gets its websockets closed before granian stops (:mod:`scallion.granian_signals`). With
    ``trusted_proxies`` (``--proxy-headers``), the app is wrapped in granian's proxy-headers middleware."""
    app = load_app(Target(module, attr, app_dir))
    closer = websocket_closer(app)
    if closer is not None:
        from .granian_signals import close_websockets_before_granian_stops

        close_websockets_before_granian_stops(closer)
    if trusted_proxies is not None:
        from granian.utils.proxies import wrap_asgi_with_proxy_headers

        return wrap_asgi_with_proxy_headers(app, trusted_hosts=trusted_proxies)
    return app


def run_granian(
    target: Target,
    *,
    host: str,
    port: int,
    workers: int,
    reload: bool,
    log_level: str | None,
    notes: Sequence[Note] = (),
    proxy_headers: bool | None = None,
    forwarded_allow_ips: str | None = None,
    **uvicorn_only: Any,
) -> int:
    """Serve with granian's Python API (``Granian(...).serve()``, ASGI interface with lifespan).

    Shutdown (measured with granian 2.8.7): on SIGINT/SIGTERM granian stops the worker's Rust server first,
    which drops open websocket connections without a close frame, and only then runs the ASGI lifespan
    shutdown. A websocket client sees the TCP connection end with no close frame: code 1006 (abnormal closure)
    in python-websockets, not 1001. In the app, a pending ``receive()`` returns ``websocket.disconnect`` (code
    1005), but a ``send`` after that never completes, so scallion's ``close_websockets()`` waits its
    ``shutdown_timeout`` (5 s by default) before the lifespan shutdown goes on.

    Options: ``--proxy-headers`` wraps the app in granian's own proxy-headers middleware, trusting
    ``--forwarded-allow-ips`` (default 127.0.0.1; granian does not read proxy headers otherwise). granian has
    no equivalent of ``--ws``, ``--ws-max-size`` or ``--ws-ping-*``: they are refused (:class:`TargetError`).
    """
    given = [name for name in UVICORN_ONLY if uvicorn_only.get(name) is not None]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise TargetError(f"{flags}: uvicorn option(s) that granian has no equivalent for; use --server uvicorn")
    if forwarded_allow_ips is not None and not proxy_headers:
        raise TargetError("--forwarded-allow-ips needs --proxy-headers with --server granian")
    trusted = (forwarded_allow_ips or "127.0.0.1") if proxy_headers else None
    try:
        from granian.constants import Interfaces
        from granian.log import LogLevels
        from granian.server import Server as Granian
    except ImportError:
        raise TargetError("granian is not installed: pip install 'scallion[granian]'") from None
    level = LogLevels("debug" if log_level == "trace" else log_level or "info")
    server = Granian(
        target.import_string,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        reload=reload,
        reload_paths=[Path(target.app_dir)] if reload else None,
        log_level=level,
        log_dictconfig=granian_log_config(log_level),
        working_dir=Path(target.app_dir),
    )
    for note in notes:  # granian configured the logging
        logger.log(note.level, "%s", note.message)
    loader = partial(granian_loader, target.module, target.attr, target.app_dir, trusted)
    server.serve(target_loader=loader, wrap_loader=False)
    return 0


# -- routes ----------------------------------------------------------------------------------------------
def find_routers(handler: object) -> list[Router]:
    """The routers of the ``wrap_routes`` middlewares in a handler chain made by ``apply_middleware``, in chain
    order, found by following the closures of the chain's functions (each middleware closes over the next)."""
    routers: list[Router] = []
    seen: set[int] = set()
    queue: list[object] = [handler]
    while queue:
        obj = queue.pop(0)
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        try:
            router = getattr(obj, "router", None)
            cells = getattr(obj, "__closure__", None) or ()
        except Exception:  # a proxy that refuses attribute access
            continue
        if type(router) is Router and all(router is not r for r in routers):
            routers.append(router)
        for cell in cells:
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if callable(value) and not _is(value, type):
                queue.append(value)
    return routers


def route_rows(app: object) -> list[tuple[str, list[str], str]] | None:
    """``(path, methods, handler name)`` rows for an :class:`App` or a build_server app whose handler chain
    contains ``wrap_routes``; None when no routing table can be found."""
    if _is(app, App):
        return app.routes()
    if _is(app, Server):
        routers = find_routers(app.handler)
        if not routers:
            return None
        return [(path, methods, handler_name(h)) for router in routers for path, methods, h in router.table()]
    return None


def format_routes(rows: Sequence[tuple[str, Sequence[str], str]]) -> Iterator[str]:
    """The route table as aligned text lines (a header, then one line per route)."""
    table = [("PATH", "METHODS", "HANDLER"), *((path, ",".join(methods), name) for path, methods, name in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(2)]
    for path, methods, name in table:
        yield f"{path:<{widths[0]}}  {methods:<{widths[1]}}  {name}"


def print_asyncapi(app: object, target: Target) -> int:
    """Print the AsyncAPI 3.0 document of ``app``'s websocket routes (an :class:`App`, or a build_server app whose
    chain has ``wrap_routes``); exit status 1 when no routing table can be found."""
    from .asyncapi import asyncapi_document

    if _is(app, App):
        document = asyncapi_document(app)
    else:
        routers = find_routers(app.handler) if _is(app, Server) else []
        if not routers:
            print(f"{target}: no route table found for an AsyncAPI document", file=sys.stderr)
            return 1
        document = asyncapi_document([row for router in routers for row in router.table()])
    print(json.dumps(document, indent=2))
    return 0


# -- command line ----------------------------------------------------------------------------------------
def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of the ``scallion`` command."""
    parser = argparse.ArgumentParser(
        prog=prog or "scallion", description="scallion: a websocket-first, data-driven ASGI framework."
    )
    parser.add_argument("--version", action="version", version=f"scallion {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    target_help = "module:attr, module, path/to/file.py or path/to/file.py:attr (attr defaults to 'app')"

    run = commands.add_parser("run", help="serve an app", description="Serve an ASGI app with uvicorn or granian.")
    run.add_argument("target", metavar="TARGET", help=target_help)
    run.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    run.add_argument("--port", type=int, default=8000, help="port to bind (default: %(default)s)")
    run.add_argument("--workers", type=int, default=1, help="worker processes (default: %(default)s)")
    run.add_argument("--reload", action="store_true", help="restart when files in the app's directory change")
    run.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn", help="default: %(default)s")
    run.add_argument(
        "--log-level", choices=LOG_LEVELS, default=None, help="log level of the server and scallion (default: info)"
    )
    run.add_argument(
        "--broker",
        metavar="URL",
        help=f"sets {BROKER_ENV} for every worker: App.broker is a RedisBroker for this redis://, rediss:// or "
        "unix:// URL (default: a MemoryBroker, which reaches one worker's sockets only)",
    )
    run.add_argument(
        "--ws", choices=WS_IMPLEMENTATIONS, default=None, help="uvicorn's websocket implementation (default: auto)"
    )
    run.add_argument("--ws-max-size", type=_positive(int), metavar="BYTES", help="uvicorn's largest websocket message")
    run.add_argument("--ws-ping-interval", type=_positive(float), metavar="SECONDS", help="uvicorn's ping interval")
    run.add_argument("--ws-ping-timeout", type=_positive(float), metavar="SECONDS", help="uvicorn's ping timeout")
    run.add_argument(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="trust X-Forwarded-For/-Proto from --forwarded-allow-ips (uvicorn: on by default; granian: off)",
    )
    run.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        help="comma-separated addresses (or *) whose proxy headers are trusted (default: 127.0.0.1)",
    )

    routes = commands.add_parser("routes", help="print the route table", description="Print an app's routes.")
    routes.add_argument("target", metavar="TARGET", help=target_help)

    asyncapi = commands.add_parser(
        "asyncapi",
        help="print the AsyncAPI document",
        description="Print the AsyncAPI 3.0 document of an app's websocket routes, as JSON.",
    )
    asyncapi.add_argument("target", metavar="TARGET", help=target_help)
    return parser


def _positive(kind: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse type: a ``kind`` number above 0."""

    def parse(text: str) -> T:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:  # type: ignore[operator]
            raise argparse.ArgumentTypeError(f"{text!r} is not above 0")
        return value

    return parse


def _fail(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    parser.exit(EXIT_USAGE, f"{parser.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run the ``scallion`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        if getattr(args, "broker", None) is not None:
            try:
                os.environ[BROKER_ENV] = check_broker_url(args.broker)
            except ValueError as exc:
                raise TargetError(f"--broker: {exc}") from None
        target = parse_target(args.target)
        value = load_value(target)
        app = as_app(value, target)
        if args.command == "asyncapi":
            return print_asyncapi(app, target)
        if args.command == "routes":
            rows = route_rows(app)
            if rows is None:
                print(
                    f"{target}: no route table found: `scallion routes` knows scallion App objects and build_server "
                    "apps whose handler is an apply_middleware(...) chain containing wrap_routes(...)",
                    file=sys.stderr,
                )
                return 1
            for line in format_routes(rows):
                print(line)
            return 0
        if args.workers < 1:
            raise TargetError("--workers must be at least 1")
        notes: list[Note] = []
        if app is not value:
            what = "websocket handler" if handler_kind(value) == "websocket" else "handler"
            where = "every websocket path (HTTP requests get 404)" if what != "handler" else "every path"
            notes.append(Note(logging.INFO, f"serving the {what} {handler_name(value)} on {where}"))
        warning = memory_broker_warning(target, value, args.workers)
        if warning is not None:
            notes.append(Note(logging.WARNING, warning))
        options: dict[str, Any] = {
            "host": args.host,
            "port": args.port,
            "workers": args.workers,
            "reload": args.reload,
            "log_level": args.log_level,
            "notes": notes,
            "ws": args.ws,
            "ws_max_size": args.ws_max_size,
            "ws_ping_interval": args.ws_ping_interval,
            "ws_ping_timeout": args.ws_ping_timeout,
            "proxy_headers": args.proxy_headers,
            "forwarded_allow_ips": args.forwarded_allow_ips,
        }
        if args.server == "granian":
            return run_granian(target, **options)
        return run_uvicorn(target, app, wrapped=app is not value, **options)
    except TargetError as exc:
        _fail(parser, str(exc))


__all__ = [
    "ScallionServer",
    "Target",
    "TargetError",
    "build_parser",
    "find_routers",
    "handler_kind",
    "load_app",
    "main",
    "memory_brokers",
    "parse_target",
    "route_rows",
    "serve_handler",
    "websocket_closer",
]
