"""AsyncAPI 3.0 documents for an app's websocket routes: ``asyncapi_document(app) -> dict``.

Every websocket route is a channel whose ``address`` is the route's path (``{param}`` placeholders are AsyncAPI's
parameter expressions already). A :class:`~scallion.realtime.Realtime` endpoint contributes one message per
event, its payload the envelope with the handler's msgspec JSON Schema as ``data``, a ``receive`` operation per
event (the server receives it) with its ``reply`` (the result, or an error), the protocol's own ``$join``,
``$leave``, ``$message`` and ``$presence``, and the events it declared with ``rt.emits``. A plain route (seed-000
generator or Emmett handler) contributes what it declares with :func:`describe` (its docstring otherwise).

``scallion asyncapi module:app`` prints it; ``app.asyncapi("/asyncapi.json")`` serves it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import msgspec

from .realtime import Realtime, protocol

F = TypeVar("F")

ASYNCAPI_VERSION = "3.0.0"
_KEY = re.compile(r"[^\w.\-]")


def describe(*, receives: Any = None, sends: Any = None, summary: str | None = None) -> Callable[[F], F]:
    """Declare what a plain websocket handler exchanges, for AsyncAPI: the JSON message type it ``receives``
    from the client and the one it ``sends`` (msgspec types; ``str``/``bytes`` for plain text/binary)."""

    def decorate(func: F) -> F:
        func.__asyncapi__ = {"receives": receives, "sends": sends, "summary": summary}  # type: ignore[attr-defined]
        return func

    return decorate


def _key(text: str) -> str:
    """A component or channel key (AsyncAPI keys are ``[\\w.-]+``)."""
    return _KEY.sub("_", text.strip("/")) or "root"  # "$join" -> "_join"


class _Builder:
    def __init__(self) -> None:
        self.types: list[Any] = []
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}
        self.messages: dict[str, Any] = {}

    def schema(self, kind: Any) -> int:
        """Remember a type; its index in the schemas computed at the end."""
        self.types.append(kind)
        return len(self.types) - 1

    def channel(self, path: str) -> tuple[str, dict[str, Any]]:
        key = base = _key(re.sub(r"[{}]|:[^}]*\}", "", path))
        n = 1
        while key in self.channels:
            n += 1
            key = f"{base}_{n}"
        channel: dict[str, Any] = {"address": path, "messages": {}}
        names = re.findall(r"\{([^}:]+)(?::[^}]*)?\}", path)
        if names:
            channel["parameters"] = {name: {"description": f"the {{{name}}} segment of the path"} for name in names}
            channel["address"] = re.sub(r"\{([^}:]+):[^}]*\}", r"{\1}", path)
        self.channels[key] = channel
        return key, channel

    def message(self, channel_key: str, name: str, payload: Any, summary: str | None = None) -> dict[str, str]:
        """Add a message to a channel (and components); a reference to it from the channel."""
        key = _key(f"{channel_key}.{name}")
        message: dict[str, Any] = {"name": name, "contentType": "application/json", "payload": payload}
        if summary:
            message["summary"] = summary
        self.messages[key] = message
        local = _key(name)
        self.channels[channel_key]["messages"][local] = {"$ref": f"#/components/messages/{key}"}
        return {"$ref": f"#/channels/{channel_key}/messages/{local}"}


def _envelope(event: str, data: Any, with_id: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {"event": {"const": event}, "data": data}
    if with_id:
        properties["id"] = {"type": "integer", "description": "a request id: the server replies with it"}
    return {"type": "object", "properties": properties, "required": ["event"]}


def _realtime(builder: _Builder, path: str, rt: Realtime, summary: str | None) -> None:
    key, channel = builder.channel(path)
    channel["title"] = rt.title
    channel["description"] = summary or (
        "scallion realtime endpoint: one JSON envelope per message (docs/realtime.md); the JavaScript client is "
        f"served at {path}/client.js"
    )
    error = {"$ref": "#/components/schemas/Error"}
    error_reply = builder.message(
        key,
        "error",
        {"type": "object", "properties": {"id": {"type": "integer"}, "error": error}, "required": ["error"]},
        "an error reply (the socket stays open)",
    )
    events: list[tuple[str, Any, Any, str | None]] = [
        (h.event, h.payload, h.result, h.summary) for h in rt.handlers.values()
    ]
    events += [
        (protocol.JOIN, protocol.Join, protocol.Joined, "join a channel (resume with since, history, presence)"),
        (protocol.LEAVE, protocol.Leave, None, "leave a channel"),
    ]
    for event, payload, result, doc in events:
        data = {"type": "null"} if payload is None else builder.schema(payload)
        request = builder.message(key, event, _envelope(event, data, True), doc)
        result_schema = builder.schema(result)
        reply = builder.message(
            key,
            f"{event}.reply",
            {"type": "object", "properties": {"id": {"type": "integer"}, "data": result_schema}, "required": ["id"]},
            f"the reply to {event}",
        )
        operation: dict[str, Any] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{key}"},
            "messages": [request],
            "reply": {"channel": {"$ref": f"#/channels/{key}"}, "messages": [reply, error_reply]},
        }
        if doc:
            operation["summary"] = doc
        builder.operations[_key(f"{key}.{event}")] = operation
    pushes: list[tuple[str, Any, str | None]] = [
        (protocol.MESSAGE, protocol.ChannelMessage, "a message of a joined channel, with its offset"),
        (protocol.PRESENCE, protocol.PresenceEvent, "a member joined or left a channel"),
        *((event, kind, None) for event, kind in rt.pushes.items()),
    ]
    for event, kind, doc in pushes:
        ref = builder.message(key, event, _envelope(event, builder.schema(kind), False), doc)
        operation = {"action": "send", "channel": {"$ref": f"#/channels/{key}"}, "messages": [ref]}
        if doc:
            operation["summary"] = doc
        builder.operations[_key(f"{key}.{event}")] = operation


def _plain(builder: _Builder, path: str, func: Callable[..., Any]) -> None:
    key, channel = builder.channel(path)
    declared: dict[str, Any] = getattr(func, "__asyncapi__", {})
    doc = declared.get("summary") or inspect.getdoc(func)
    if doc:
        channel["description"] = doc
    for action, direction in (("receive", "receives"), ("send", "sends")):
        kind = declared.get(direction)
        if kind is None:
            continue
        if kind is str or kind is bytes:
            payload: Any = {"type": "string"}
            message = builder.message(key, direction, payload)
            builder.messages[_key(f"{key}.{direction}")]["contentType"] = (
                "text/plain" if kind is str else "application/octet-stream"
            )
        else:
            message = builder.message(key, direction, builder.schema(kind))
        builder.operations[_key(f"{key}.{direction}")] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{key}"},
            "messages": [message],
        }


def _resolve(value: Any, schemas: tuple[Any, ...]) -> Any:
    """Replace the type indexes left in payloads by their JSON Schemas."""
    if isinstance(value, dict):
        return {
            k: (schemas[v] if k in ("payload", "data") and type(v) is int else _resolve(v, schemas))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_resolve(v, schemas) for v in value]
    return value


def _rows(app: Any) -> Iterable[tuple[str, list[str], Any]]:
    table = getattr(app, "table", None)
    if table is None and isinstance(app, list):
        table = app
    if table is None:
        raise TypeError(f"asyncapi_document takes an App or a routing table (a list of rows), not {app!r}")
    return [(row[0], list(row[1]), row[2]) for row in table]


def asyncapi_document(app: Any, title: str | None = None, version: str | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0 document (a JSON-ready ``dict``) of the websocket routes of ``app`` (an
    :class:`~scallion.App` or a routing table)."""
    builder = _Builder()
    for path, methods, handler in _rows(app):
        if "WS" not in [m.upper() for m in methods]:
            continue
        func = getattr(handler, "func", handler)
        endpoint = getattr(func, "__self__", None)
        if isinstance(endpoint, Realtime):
            _realtime(builder, path, endpoint, None)
        else:
            _plain(builder, path, func)
    schemas, components = msgspec.json.schema_components(
        [protocol.Error, *builder.types], ref_template="#/components/schemas/{name}"
    )
    rest = schemas[1:]
    document = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": title or getattr(app, "title", None) or "scallion app",
            "version": version or "1.0.0",
            "description": "The websocket API of this app, generated by scallion (docs/realtime.md).",
        },
        "defaultContentType": "application/json",
        "channels": _resolve(builder.channels, rest),
        "operations": _resolve(builder.operations, rest),
        "components": {"schemas": components, "messages": _resolve(builder.messages, rest)},
    }
    return msgspec.json.decode(msgspec.json.encode(document))  # type: ignore[no-any-return]
