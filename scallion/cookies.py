"""Writing cookies: one ``Set-Cookie`` header value from a name and a value or a dict of attributes."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

_ATTRIBUTES = {
    "expires": "Expires",
    "max_age": "Max-Age",
    "max-age": "Max-Age",
    "path": "Path",
    "domain": "Domain",
    "samesite": "SameSite",
    "same_site": "SameSite",
}
_SAFE = "!#$&'()*+-./:<=>?@[]^_`{|}~"
"""Characters a cookie value may carry as is; the others (``;``, ``,``, space, quotes, ``%``...) are %-encoded."""
_FLAGS = {"secure": "Secure", "httponly": "HttpOnly", "http_only": "HttpOnly", "partitioned": "Partitioned"}


def set_cookie_header(name: str, cookie: str | dict[str, Any]) -> str:
    """``Set-Cookie`` for ``name``: ``cookie`` is the value, or ``{"value": ..., "path": "/", "max_age": 60,
    "expires": datetime | str, "domain": ..., "secure": True, "httponly": True, "samesite": "Lax"}``.
    The value is percent-encoded where a cookie may not carry it as is."""
    if not isinstance(cookie, dict):
        return f"{name}={quote(str(cookie), safe=_SAFE)}"
    parts = [f"{name}={quote(str(cookie.get('value', '')), safe=_SAFE)}"]
    for key, value in cookie.items():
        lowered = key.lower()
        if lowered == "value" or value is None or value is False:
            continue
        if lowered in _FLAGS:
            parts.append(_FLAGS[lowered])
        elif lowered in _ATTRIBUTES:
            if isinstance(value, datetime):
                moment = value if value.tzinfo else value.replace(tzinfo=UTC)
                value = format_datetime(moment.astimezone(UTC), usegmt=True)
            parts.append(f"{_ATTRIBUTES[lowered]}={value}")
        else:
            raise ValueError(f"unknown cookie attribute {key!r} for cookie {name!r}")
    return "; ".join(parts)
