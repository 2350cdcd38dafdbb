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

Errors in the TARGET (missing file, module that does not import, missing attribute, an attribute that is not an
ASGI application) are reported in one line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
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

from .app import App
from .asgi import Server, handler_name
from .routing import Router

logger = logging.getLogger("scallion")

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
"""The ``--log-level`` choices (uvicorn's; granian treats ``trace`` as ``debug``)."""

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
    if (inspect.isfunction(obj) or inspect.ismethod(obj)) and not inspect.iscoroutinefunction(obj):
        return "it is a plain function; an ASGI app is an async def (scope, receive, send) callable"
    try:
        signature.bind(object(), object(), object())
    except TypeError:
        count = len(signature.parameters)
        hint = " (a scallion handler? wrap it with build_server(...))" if count == 1 else ""
        return f"it takes {count} argument(s), an ASGI app takes (scope, receive, send){hint}"
    return None


def load_app(target: Target) -> Any:
    """Import ``target`` and return its ASGI application; :class:`TargetError` explains any failure."""
    value: Any = _import(target)
    path = target.module
    for part in target.attr.split("."):
        if not hasattr(value, part):
            candidates = _apps_in(value) if _is(value, ModuleType) else []
            hint = f"; ASGI apps found: {', '.join(candidates)}" if candidates else ""
            raise TargetError(f"module {path!r} has no attribute {part!r} (target {target}){hint}")
        value = getattr(value, part)
        path = f"{path}.{part}"
    problem = asgi_problem(value)
    if problem is not None:
        raise TargetError(f"{target.import_string} is not an ASGI application: {problem}")
    return value


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
                return uvicorn.importer.import_from_string(app)
            except uvicorn.importer.ImportFromStringError:
                return None
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


def run_uvicorn(
    target: Target, app: Any, *, host: str, port: int, workers: int, reload: bool, log_level: str | None
) -> int:
    """Serve with uvicorn (programmatically, through :class:`ScallionServer`); returns the exit status."""
    if reload and workers > 1:
        raise TargetError("--reload and --workers > 1 cannot be combined with uvicorn")
    by_name = reload or workers > 1
    config = uvicorn.Config(
        target.import_string if by_name else app,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        reload_dirs=[target.app_dir] if reload else None,
        log_level=log_level,
    )
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


def granian_loader(module: str, attr: str, app_dir: str) -> Any:
    """Load the app in a granian worker process (module level, so it pickles for spawned workers); a scallion
    app gets its websockets closed before granian stops (:mod:`scallion.granian_signals`)."""
    app = load_app(Target(module, attr, app_dir))
    closer = websocket_closer(app)
    if closer is not None:
        from .granian_signals import close_websockets_before_granian_stops

        close_websockets_before_granian_stops(closer)
    return app


def run_granian(target: Target, *, host: str, port: int, workers: int, reload: bool, log_level: str | None) -> int:
    """Serve with granian's Python API (``Granian(...).serve()``, ASGI interface with lifespan).

    Shutdown (measured with granian 2.8.7): on SIGINT/SIGTERM granian stops the worker's Rust server first,
    which drops open websocket connections without a close frame, and only then runs the ASGI lifespan
    shutdown. A websocket client sees the TCP connection end with no close frame: code 1006 (abnormal closure)
    in python-websockets, not 1001. In the app, a pending ``receive()`` returns ``websocket.disconnect`` (code
    1005), but a ``send`` after that never completes, so scallion's ``close_websockets()`` waits its
    ``shutdown_timeout`` (5 s by default) before the lifespan shutdown goes on.
    """
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
        working_dir=Path(target.app_dir),
    )
    server.serve(target_loader=partial(granian_loader, target.module, target.attr, target.app_dir), wrap_loader=False)
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


# -- command line ----------------------------------------------------------------------------------------
def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of the ``scallion`` command."""
    parser = argparse.ArgumentParser(
        prog=prog or "scallion", description="scallion: a websocket-first, data-driven ASGI framework."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    target_help = "module:attr, module, path/to/file.py or path/to/file.py:attr (attr defaults to 'app')"

    run = commands.add_parser("run", help="serve an app", description="Serve an ASGI app with uvicorn or granian.")
    run.add_argument("target", metavar="TARGET", help=target_help)
    run.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    run.add_argument("--port", type=int, default=8000, help="port to bind (default: %(default)s)")
    run.add_argument("--workers", type=int, default=1, help="worker processes (default: %(default)s)")
    run.add_argument("--reload", action="store_true", help="restart when files in the app's directory change")
    run.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn", help="default: %(default)s")
    run.add_argument("--log-level", choices=LOG_LEVELS, default=None, help="server log level (default: info)")

    routes = commands.add_parser("routes", help="print the route table", description="Print an app's routes.")
    routes.add_argument("target", metavar="TARGET", help=target_help)
    return parser


def _fail(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    parser.exit(EXIT_USAGE, f"{parser.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run the ``scallion`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        target = parse_target(args.target)
        app = load_app(target)
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
        options: dict[str, Any] = {
            "host": args.host,
            "port": args.port,
            "workers": args.workers,
            "reload": args.reload,
            "log_level": args.log_level,
        }
        if args.server == "granian":
            return run_granian(target, **options)
        return run_uvicorn(target, app, **options)
    except TargetError as exc:
        _fail(parser, str(exc))


__all__ = [
    "ScallionServer",
    "Target",
    "TargetError",
    "build_parser",
    "find_routers",
    "load_app",
    "main",
    "parse_target",
    "route_rows",
    "websocket_closer",
]
