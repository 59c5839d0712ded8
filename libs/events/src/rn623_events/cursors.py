"""Opaque keyset cursors for paginated lists (``?cursor=`` / ``next_cursor``)."""

from __future__ import annotations

import base64
from collections.abc import Sequence

from rn623_events.problems import field_problem

SEPARATOR = "|"


def encode_cursor(parts: Sequence[object]) -> str:
    """An opaque cursor holding the last item's sort key (its parts as text)."""
    raw = SEPARATOR.join(str(part) for part in parts)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, count: int) -> list[str]:
    """The ``count`` text parts of a cursor; a 422 naming ``query.cursor`` if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError:
        raise bad_cursor() from None
    parts = raw.split(SEPARATOR)
    if len(parts) != count:
        raise bad_cursor()
    return parts


def bad_cursor() -> Exception:
    """The problem for a cursor this API did not issue."""
    return field_problem("query.cursor", "is not a cursor from this API", "bad_cursor")
