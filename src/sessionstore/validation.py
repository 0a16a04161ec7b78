"""Checks on caller input, done before anything touches the database.

Each check raises :class:`~sessionstore.errors.InvalidInput` (or a subclass)
naming the argument and what was wrong, so a rejected call has changed
nothing. Keyset cursors are encoded here too: opaque to the caller, checked
on the way back in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from . import errors
from .errors import InvalidCursor, InvalidInput

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
#: The longest duration of one message, in seconds (about 31 years). A session
#: holds fewer than 2**31 messages, so no total can pass 2.2e18 or become inf.
MAX_DURATION = 1e9
#: The most tokens one message may count (about 10**12). A session holds fewer
#: than 2**23 messages of that size before its 64-bit total could overflow.
MAX_TOKENS = 2**40
#: The longest cursor accepted; every cursor the store makes is far shorter.
MAX_CURSOR = 4096


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


#: The longest role, and the longest item kind, in characters.
MAX_ROLE = 64
_KIND = re.compile(r"[a-z][a-z0-9_.-]{0,63}")


def check_role(value: object) -> str:
    """An open, validated role: 1 to 64 characters, no surrounding spaces, no control characters.

    ``user``, ``assistant``, ``system``, ``tool`` and ``developer`` are what the
    chat APIs send; a framework's custom role (LangChain's ``ChatMessage``) is
    stored as given.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"role must be str, not {shown(value)}")
    if value.__class__ is str and value in _COMMON_ROLES:
        return value
    if not 1 <= len(value) <= MAX_ROLE or value.strip() != value or not value:
        raise InvalidInput(
            f"role must be 1 to {MAX_ROLE} characters without surrounding spaces: {shown(value)}"
        )
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in value):
        raise InvalidInput(f"role must not hold control characters or surrogates: {shown(value)}")
    return str(value)


_COMMON_ROLES = frozenset(("user", "assistant", "system", "tool", "developer"))


def check_kind(value: object) -> str:
    """An item kind: ``message``, ``function_call``, …: ``^[a-z][a-z0-9_.-]{0,63}$``."""
    if value.__class__ is str and value == "message":
        return "message"
    if not isinstance(value, str) or _KIND.fullmatch(value) is None:
        raise InvalidInput(
            "kind must be lowercase letters, digits, '_', '.' or '-', starting with a letter, "
            f"at most 64 characters (message, function_call, …), not {shown(value)}"
        )
    return str(value)


def check_message_id(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise InvalidInput(f"message_id must be a positive integer, not {shown(value)}")
    return value


def check_limit(value: object, name: str = "limit") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE:
        raise InvalidInput(f"{name} must be an integer from 1 to {MAX_PAGE}, not {shown(value)}")
    return value


def check_tokens(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS:
        raise InvalidInput(f"tokens must be an integer from 0 to 2**40, not {shown(value)}")
    return value


def shown(value: object, width: int = 60) -> str:
    """``repr(value)`` cut to ``width``; safe for integers too long to print."""
    text = errors.shown(value)  # bounded in depth too: a list nested 5,000 deep
    return text if len(text) <= width else text[: width - 1] + "…"


def check_duration(value: object) -> float | None:
    """Seconds from 0 to MAX_DURATION: finite, and small enough that every sum stays finite."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"duration must be a number of seconds, not {shown(value)}")
    # Compared before any conversion: float(10**400) would raise OverflowError.
    if not (0 <= value <= MAX_DURATION) or (isinstance(value, float) and math.isnan(value)):
        raise InvalidInput(
            f"duration must be from 0 to {MAX_DURATION:.0f} seconds, not {shown(value)}"
        )
    return float(value)


#: The deepest JSON a payload or metadata may nest. Every read decodes it again
#: (``json.loads`` recurses once a level, on whatever stack the reader has left):
#: a value accepted near the interpreter's recursion limit would make export,
#: archive and the sweep fail with ``RecursionError`` later.
MAX_JSON_DEPTH = 100
#: Values (each item of a list or dict, nested ones included) a JSON value may hold
#: beyond its byte limit: counted before anything writes the value out or walks it
#: leaf by leaf, so a list held 2**60 times over costs a few levels, not 2**60 steps.
MAX_JSON_VALUES = 2**20


def check_depth(name: str, value: object, max_depth: int = MAX_JSON_DEPTH) -> None:
    """:class:`InvalidInput` if lists and dicts in ``value`` nest deeper than ``max_depth``.

    Walked a level at a time without recursion, so a value nested 100,000 deep
    (or one that holds itself) costs at most ``max_depth`` levels.
    """
    level: list[object] = [value]
    budget = _LISTED_VALUES
    for depth in range(max_depth + 1):
        below: list[object] = []
        for item in level:
            if isinstance(item, list | tuple | dict):
                if depth >= max_depth:
                    raise InvalidInput(f"{name} is nested more than {max_depth} deep")
                below.extend(item.values() if isinstance(item, dict) else item)
                if len(below) > budget:
                    # A level lists a value as often as it is held (a list holding
                    # itself twice doubles it at each step): walk each container once.
                    _check_depth_once(name, value, max_depth)
                    return
        if not below:
            return
        budget -= len(below)
        level = below


#: The most values (all levels together) :func:`check_depth` lists before it
#: walks each container once instead.
_LISTED_VALUES = 1 << 20


def _check_depth_once(name: str, value: object, max_depth: int) -> None:
    """:func:`check_depth`, each level holding a container once however often it is held."""
    level: Iterable[object] = (value,)
    for depth in range(max_depth + 1):
        below: dict[int, object] = {}
        for item in level:
            if isinstance(item, list | tuple | dict):
                if depth >= max_depth:
                    raise InvalidInput(f"{name} is nested more than {max_depth} deep")
                for child in item.values() if isinstance(item, dict) else item:
                    if isinstance(child, list | tuple | dict):
                        below[id(child)] = child
        if not below:
            return
        level = below.values()


def written_values(value: Any, most: int) -> int:
    """How many values JSON would write for ``value`` (counted up to just past ``most``).

    Each container is visited once per level, with how often it is held: a
    value holding the same list many times over is counted without being
    written out. ``value`` has passed :func:`check_depth`, so holds no cycle.
    """
    count = 0
    level: dict[int, tuple[Any, int]] = {id(value): (value, 1)}
    while level:
        below: dict[int, tuple[Any, int]] = {}
        for item, times in level.values():
            if isinstance(item, dict):
                children: Iterable[Any] = item.values()
            elif isinstance(item, list | tuple):
                children = item
            else:
                continue
            count += times * len(item)
            if count > most:
                return count
            for child in children:
                if isinstance(child, list | tuple | dict):
                    held = below.get(id(child))
                    below[id(child)] = (child, times + (0 if held is None else held[1]))
        level = below
    return count


def encode_metadata(value: Mapping[str, Any] | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidInput(f"metadata must be a mapping, not {type(value).__name__}")
    check_depth("metadata", dict(value))
    if written_values(dict(value), MAX_JSON_VALUES) > MAX_JSON_VALUES:
        # Counted without writing: a list held 2**60 times over is refused before
        # json.dumps would try to write it out.
        raise InvalidInput(f"metadata holds more than {MAX_JSON_VALUES:,} JSON values")
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
    pairs: dict[str, str | None] = {}
    for raw_key, item in value.items():
        key = check_id("metadata key", raw_key)
        pairs[key] = check_optional_text(f"metadata[{key!r}]", item)
    return pairs


def cursor_tag(kind: str, bound: Sequence[object]) -> str:
    """A short digest of a query's kind and parameters, carried in its cursors.

    Not a secret: it only makes a cursor from one query (other filters, terms,
    order or session) fail loudly in another instead of paging it silently wrong.
    """
    text = repr((kind, *bound))
    tag = _TAGS.get(text)
    if tag is None:
        data = text.encode("utf-8", "backslashreplace")
        tag = hashlib.blake2b(data, digest_size=6).hexdigest()
        if len(text) <= 256:  # bounded: a listing pages many times over a few queries
            if len(_TAGS) >= 1024:
                _TAGS.clear()
            _TAGS[text] = tag
    return tag


#: The tags of the queries paged lately, by the text they digest.
_TAGS: dict[str, str] = {}
#: What ``json.dumps(..., separators=(",", ":"))`` uses, built once, not per cursor.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def encode_cursor(kind: str, bound: Sequence[object], *values: Any) -> str:
    """An opaque cursor: ``kind``, the tag of the query's ``bound`` parameters, ``values``."""
    # Every page of a listing ends with a cursor: the values JSON writes as they
    # are (ints, plain ASCII text, datetimes) are written here, without the
    # encoder; the text is the one json.dumps writes.
    head = _KINDS.get(kind)
    if head is None:
        head = _as_json(kind)
        if head is not None and len(_KINDS) < 64:  # the store's own few kinds
            _KINDS[kind] = head
    written: list[str] | None = None
    if head is not None:
        written = [head, f'"{cursor_tag(kind, bound)}"']
        for value in values:
            part = _as_json(value)
            if part is None:
                written = None
                break
            written.append(part)
    if written is not None:
        text = f"[{','.join(written)}]"  # no values: no trailing comma
        coded = binascii.b2a_base64(text.encode("ascii"), newline=False)
        return coded.translate(_URLSAFE).decode("ascii").rstrip("=")
    payload = [
        kind,
        cursor_tag(kind, bound),
        *(v.isoformat() if isinstance(v, datetime) else v for v in values),
    ]
    raw = _COMPACT.encode(payload).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


_URLSAFE = bytes.maketrans(b"+/", b"-_")
#: The kinds of cursor written lately, as JSON.
_KINDS: dict[str, str] = {}


def _as_json(value: Any) -> str | None:
    """``value`` as compact JSON when it needs no escaping; ``None`` otherwise."""
    cls = value.__class__
    if cls is int:
        return str(value)
    if cls is datetime:
        return f'"{value.isoformat()}"'
    if (
        cls is str
        and value.isascii()
        and value.isprintable()
        and '"' not in value
        and "\\" not in value
    ):
        return f'"{value}"'
    return None


def decode_cursor(
    cursor: object, kind: str, bound: Sequence[object], *types: type
) -> tuple[Any, ...]:
    """The values of a cursor that :func:`encode_cursor` made for this very query."""
    # Bounded before any decoding, so a huge string costs nothing.
    if not isinstance(cursor, str) or not cursor or len(cursor) > MAX_CURSOR:
        raise InvalidCursor(f"malformed cursor: {errors.shown(cursor)}")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = _flat_list(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidCursor(f"malformed cursor: {errors.shown(cursor)}") from None
    if len(payload) != len(types) + 2 or payload[0] != kind:
        raise InvalidCursor("the cursor belongs to another query; start again without it")
    if payload[1] != cursor_tag(kind, bound):
        raise InvalidCursor(
            "the cursor was made for other query parameters (terms, filters, order or "
            "session); start again without it"
        )
    return tuple(
        _cursor_value(item, expected, cursor)
        for item, expected in zip(payload[2:], types, strict=True)
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a cursor value")


_SCALARS = json.JSONDecoder(parse_constant=_reject_constant)
#: What only a nested (or spaced) array holds after its opening bracket.
_NOT_FLAT = re.compile(r"[\[{ \t\n\r]")


def _flat_list(text: str) -> list[Any]:
    """A JSON array of scalars, parsed one scalar at a time.

    A cursor never holds a nested value, so none is parsed: ``json.loads`` on
    thousands of nested brackets would raise ``RecursionError``.
    """
    if len(text) < 2 or text[0] != "[" or text[-1] != "]":
        raise ValueError("not a JSON array")
    if not _NOT_FLAT.search(text, 1):
        # No bracket, brace or whitespace after the opening one (what every
        # cursor made here is): nothing can nest, so one parse is the same.
        flat: list[Any] = _SCALARS.decode(text)
        return flat
    items: list[Any] = []
    position = 1
    if text == "[]":
        return items
    while True:
        if text[position : position + 1] in ("[", "{"):
            raise ValueError("nested value")
        value, position = _SCALARS.raw_decode(text, position)
        items.append(value)
        separator = text[position : position + 1]
        if separator == "]" and position + 1 == len(text):
            return items
        if separator != ",":
            raise ValueError("not a flat JSON array")
        position += 1


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
    raise InvalidCursor(f"malformed cursor: {errors.shown(cursor)}")


def aware_utc(name: str, value: object) -> datetime:
    """A timezone-aware datetime, in UTC, within the years every backend can store."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInput(f"{name} must be a timezone-aware datetime, not {shown(value)}")
    try:
        converted = value.astimezone(UTC)
    except OverflowError:
        converted = None
    if converted is None or not 1 < converted.year < 9999:
        raise InvalidInput(f"{name} is outside the years 2 to 9998: {shown(value)}")
    return converted
