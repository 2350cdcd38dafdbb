"""The realtime wire protocol: one JSON envelope per websocket text message (docs/realtime.md).

Client to server::

    {"event": "say", "data": {"text": "hi"}, "id": 7}       # "id" optional: with it, the server replies

Server to client::

    {"id": 7, "data": {"ok": true}}                          # the reply to request 7 (the handler's result)
    {"id": 7, "error": {"code": "invalid_payload", "message": "...", "field": "$.text"}}   # an error reply
    {"error": {"code": "unknown_event", "message": "..."}}   # an error about a message sent without an id
    {"event": "notice", "data": ...}                          # an event pushed by the server

Event names that begin with ``$`` are the protocol's own: ``$join``, ``$leave`` (client to server) and
``$message``, ``$presence`` (server to client). Every error keeps the socket open.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec

PREFIX = "$"
"""Event names that begin with this are reserved for the protocol."""

JOIN = "$join"
LEAVE = "$leave"
MESSAGE = "$message"
PRESENCE = "$presence"

ErrorCode = Literal[
    "invalid_message",  # not JSON, or not an envelope
    "unknown_event",  # no handler for the event
    "invalid_payload",  # the data is not what the handler takes (``field`` says where)
    "forbidden",  # authorize() refused the channel
    "not_joined",  # $leave of a channel the client is not in
    "unavailable",  # the broker cannot be reached
    "internal",  # the handler raised (the traceback is in the server's log)
]
"""The codes of the errors scallion itself replies with; :class:`~scallion.realtime.RealtimeError` adds any other."""


class Incoming(msgspec.Struct, frozen=True):
    """A client message: ``event`` name, ``data`` (decoded later, against the handler's type) and ``id``."""

    event: str
    data: msgspec.Raw = msgspec.Raw(b"null")
    id: int | None = None


class Error(msgspec.Struct, omit_defaults=True):
    """What went wrong: a ``code`` (see :data:`ErrorCode`), a ``message`` for people and, for a payload that
    failed validation, the ``field`` (a JSON path into the payload, ``"$.text"``)."""

    code: str
    message: str
    field: str | None = None


class Reply(msgspec.Struct):
    """The reply to request ``id``: the handler's result."""

    id: int
    data: Any


class ErrorReply(msgspec.Struct, omit_defaults=True):
    """An error reply (``id`` is None when the message had no id)."""

    error: Error
    id: int | None = None


class Push(msgspec.Struct):
    """An event the server sends on its own."""

    event: str
    data: Any


class Join(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``$join``: listen to ``channel``. ``since``: the offset of the last message seen (resume after it);
    ``history``: without ``since`` (or when it could not be resumed), first send up to this many of the newest
    messages; ``presence``: also send ``$presence`` events (and the members now present, in the reply)."""

    channel: str
    since: str | None = None
    history: int = 0
    presence: bool = False


class Joined(msgspec.Struct, omit_defaults=True):
    """The reply to ``$join``. ``recovered``: with ``since``, whether every message after it follows (False:
    some were lost, the client should resynchronise); ``members``: with ``presence``, who is present."""

    channel: str
    recovered: bool
    members: dict[str, Any] | None = None


class Leave(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``$leave``: stop listening to ``channel``."""

    channel: str


class ChannelMessage(msgspec.Struct):
    """``$message``: a message of a joined channel, with its offset (None when the channel keeps no history)."""

    channel: str
    data: Any
    offset: str | None


class PresenceEvent(msgspec.Struct, omit_defaults=True):
    """``$presence``: ``member`` joined (``event == "join"``) or left (``"leave"``) ``channel``."""

    channel: str
    event: Literal["join", "leave"]
    member: str
    info: Any = None


encode = msgspec.json.Encoder().encode
decode_incoming = msgspec.json.Decoder(Incoming).decode

_AT = re.compile(r" - at `(\$[^`]*)`$")
_MISSING = re.compile(r"missing required field `([^`]*)`")


def invalid_payload(exc: msgspec.ValidationError) -> Error:
    """The error reply for a payload that failed validation, naming the field (a JSON path into the payload)."""
    text = str(exc)
    match = _AT.search(text)
    path = match.group(1) if match else "$"
    missing = _MISSING.search(text)
    if missing:
        path = f"{path}.{missing.group(1)}"
    return Error("invalid_payload", f"invalid payload: {text}", path)


def error_frame(code: str, message: str, id: int | None = None, field: str | None = None) -> bytes:
    """An encoded error reply."""
    return encode(ErrorReply(Error(code, message, field), id))
