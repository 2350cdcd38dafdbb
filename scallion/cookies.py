"""Writing cookies: one ``Set-Cookie`` header value from a name and a value or a dict of attributes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

_NAMES = {
    "expires": "Expires",
    "max_age": "Max-Age",
    "max-age": "Max-Age",
    "path": "Path",
    "domain": "Domain",
    "samesite": "SameSite",
    "same_site": "SameSite",
}
_FLAGS = {"secure": "Secure", "httponly": "HttpOnly", "http_only": "HttpOnly", "partitioned": "Partitioned"}
_SAFE = "!#$&'()*+-./:<=>?@[]^_`{|}~"
"""Characters a cookie value may carry as is; the others (``;``, ``,``, space, quotes, ``%``...) are %-encoded."""
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_ATTRIBUTE_VALUE = re.compile(r"[\x21-\x3a\x3c-\x7e ]*\Z")  # printable, no ';', no CR/LF
_SAMESITE = {"strict": "Strict", "lax": "Lax", "none": "None"}


def _http_date(moment: datetime | int | float) -> str:
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def _attribute(name: str, key: str, value: Any) -> str:
    label = _NAMES[key]
    if label == "Expires" and isinstance(value, (datetime, int, float)):
        text = _http_date(value)
    elif label == "Max-Age":
        seconds = value.total_seconds() if isinstance(value, timedelta) else value
        text = str(int(seconds))
    elif label == "SameSite":
        text = _SAMESITE.get(str(value).lower(), "")
        if not text:
            raise ValueError(f"cookie {name!r}: samesite must be Strict, Lax or None, not {value!r}")
    else:
        text = str(value)
    if not _ATTRIBUTE_VALUE.match(text):
        raise ValueError(f"cookie {name!r}: attribute {key} has a forbidden character: {text!r}")
    return f"{label}={text}"


def set_cookie_header(name: str, cookie: str | dict[str, Any]) -> str:
    """``Set-Cookie`` for ``name``: ``cookie`` is the value, or ``{"value": ..., "path": "/", "max_age": 60 |
    timedelta, "expires": datetime | timestamp, "domain": ..., "secure": True, "httponly": True,
    "samesite": "Lax"}``. The value is %-encoded where a cookie may not carry it as is; a bad name, attribute
    or attribute value (``;``, CR/LF) raises ``ValueError``."""
    if not _TOKEN.match(name):
        raise ValueError(f"invalid cookie name {name!r}")
    if not isinstance(cookie, dict):
        return f"{name}={quote(str(cookie), safe=_SAFE)}"
    parts = [f"{name}={quote(str(cookie.get('value', '')), safe=_SAFE)}"]
    for key, value in cookie.items():
        lowered = key.lower()
        if lowered == "value" or value is None or value is False:
            continue
        if lowered in _FLAGS:
            parts.append(_FLAGS[lowered])
        elif lowered in _NAMES:
            parts.append(_attribute(name, lowered, value))
        else:
            raise ValueError(f"unknown cookie attribute {key!r} for cookie {name!r}")
    if "SameSite=None" in parts and "Secure" not in parts:
        raise ValueError(f"cookie {name!r}: SameSite=None requires secure=True (browsers reject it otherwise)")
    return "; ".join(parts)
