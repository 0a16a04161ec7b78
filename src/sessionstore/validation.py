"""Checks on caller input, done before anything touches the database.

Each check raises :class:`~sessionstore.errors.InvalidInput` (or a subclass)
naming the argument and what was wrong, so a rejected call has changed
nothing. Keyset cursors are encoded here too: opaque to the caller, checked
on the way back in.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .errors import InvalidCursor, InvalidInput
from .models import ROLES

__all__ = [
    "MAX_PAGE",
    "check_content",
    "check_id",
    "check_limit",
    "check_role",
    "decode_cursor",
    "encode_cursor",
]

MAX_PAGE = 1000
MAX_ID_LENGTH = 255


def check_text(name: str, value: object, *, max_bytes: int | None = None) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be str, not {type(value).__name__}")
    if "\x00" in value:
        # PostgreSQL cannot store it and SQLite's string functions stop at it.
        raise InvalidInput(f"{name} must not contain NUL characters (U+0000)")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            f"{name} is not valid text: it holds a lone surrogate at position {exc.start}"
        ) from None
    if max_bytes is not None and size > max_bytes:
        raise InvalidInput(f"{name} is {size} bytes, more than the limit of {max_bytes}")
    return value


def check_content(value: object, max_bytes: int) -> str:
    return check_text("content", value, max_bytes=max_bytes)


def check_id(name: str, value: object) -> str:
    text = check_text(name, value, max_bytes=MAX_ID_LENGTH)
    if not text.strip():
        raise InvalidInput(f"{name} must not be empty")
    return text


def check_optional_text(name: str, value: object) -> str | None:
    return None if value is None else check_text(name, value, max_bytes=64 * 1024)


def check_role(value: object) -> str:
    if not isinstance(value, str) or value not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, not {value!r}")
    return value


def check_message_id(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise InvalidInput(f"message_id must be a positive integer, not {value!r}")
    return value


def check_limit(value: object, name: str = "limit") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE:
        raise InvalidInput(f"{name} must be an integer from 1 to {MAX_PAGE}, not {value!r}")
    return value


def check_tokens(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise InvalidInput(f"tokens must be a non-negative integer, not {value!r}")
    return value


def check_duration(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"duration must be a number of seconds, not {value!r}")
    if not math.isfinite(value) or value < 0:
        raise InvalidInput(f"duration must be finite and non-negative, not {value!r}")
    return float(value)


def encode_metadata(value: Mapping[str, Any] | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidInput(f"metadata must be a mapping, not {type(value).__name__}")
    try:
        encoded = json.dumps(dict(value), ensure_ascii=False, allow_nan=False)
        encoded.encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"metadata must be JSON-serialisable: {exc}") from None
    except RecursionError:
        raise InvalidInput("metadata is nested too deeply to store") from None
    return encoded


def check_metadata_pairs(value: Mapping[str, Any] | None) -> dict[str, str | None]:
    """Session metadata: text keys, text (or None) values."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput(f"metadata must be a mapping, not {type(value).__name__}")
    return {
        check_id("metadata key", key): check_optional_text(f"metadata[{key!r}]", item)
        for key, item in value.items()
    }


def encode_cursor(kind: str, *values: Any) -> str:
    payload = [kind, *(v.isoformat() if isinstance(v, datetime) else v for v in values)]
    raw = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: object, kind: str, *types: type) -> tuple[Any, ...]:
    """The values inside a cursor made by :func:`encode_cursor` for ``kind``."""
    if not isinstance(cursor, str) or not cursor or len(cursor) > 4096:
        raise InvalidCursor(f"malformed cursor: {cursor!r:.80}")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidCursor(f"malformed cursor: {cursor!r:.80}") from None
    if not isinstance(payload, list) or len(payload) != len(types) + 1 or payload[0] != kind:
        raise InvalidCursor("the cursor belongs to another query; start again without it")
    values: list[Any] = []
    for item, expected in zip(payload[1:], types, strict=True):
        values.append(_cursor_value(item, expected, cursor))
    return tuple(values)


def _cursor_value(item: Any, expected: type, cursor: str) -> Any:
    if expected is datetime and isinstance(item, str):
        try:
            parsed = datetime.fromisoformat(item)
            if parsed.tzinfo is not None:
                return parsed.astimezone(UTC)
        except (ValueError, OverflowError):
            pass
    elif isinstance(item, bool):
        pass
    elif (expected is int and isinstance(item, int) and 0 <= item < 2**63) or (
        expected is str and isinstance(item, str)
    ):
        return item
    elif expected is float and isinstance(item, int | float) and math.isfinite(item):
        return float(item)
    raise InvalidCursor(f"malformed cursor: {cursor!r:.80}")


def aware_utc(name: str, value: object) -> datetime:
    """A timezone-aware datetime, in UTC, within the years every backend can store."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInput(f"{name} must be a timezone-aware datetime, not {value!r}")
    try:
        converted = value.astimezone(UTC)
    except OverflowError:
        converted = None
    if converted is None or not 1 < converted.year < 9999:
        raise InvalidInput(f"{name} is outside the years 2 to 9998: {value!r}")
    return converted
