"""Exceptions that answer the client: a handler (or scallion on its behalf) raises them for bad client input,
and the server answers with an HTTP error and a short reason instead of a 500 and a traceback."""

from __future__ import annotations

import msgspec


class BadRequest(Exception):
    """The client's request is malformed: the server answers ``400 Bad Request: <message>``, logging no
    traceback (client input is not a server bug)."""

    status = 400


class InvalidJSON(BadRequest, msgspec.DecodeError):
    """A body that is not valid JSON, or is nested too deeply to decode. It is a :class:`BadRequest` (so the
    client gets 400) and a ``msgspec.DecodeError`` (so ``except msgspec.DecodeError`` still catches it)."""


def decode_json(data: str | bytes) -> object:
    """``data`` decoded as JSON (msgspec); :class:`InvalidJSON` for malformed or too deeply nested input."""
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise InvalidJSON(f"malformed JSON ({exc})") from None
    except RecursionError:
        raise InvalidJSON("JSON nested too deeply") from None


__all__ = ["BadRequest", "InvalidJSON", "decode_json"]
