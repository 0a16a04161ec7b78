"""How a message carries a framework's item: its kind, its JSON payload, its exact text.

A message is a row of ``messages`` with

* ``content``: the human-readable text, what search, export, titles and the
  legacy views see;
* ``kind``: ``message`` for a chat message, or the framework's item type
  (``function_call``, ``reasoning``, ``event``, …), checked by
  :func:`sessionstore.validation.check_kind`;
* ``payload``: the framework's item itself, as compact JSON text, so it comes
  back ``==`` to what was stored (key order kept, integers of any size, floats
  exactly); TEXT on both backends, since JSONB refuses ``\\u0000`` and reorders
  keys;
* ``exact_content``: NUL in text. PostgreSQL text cannot hold NUL, so the
  store keeps ``content`` with every NUL replaced by U+FFFD and, only when
  the caller's text held NUL, the exact text as a JSON string literal (JSON
  escapes NUL as ``\\u0000``). Reads give back the exact text. The same on
  both backends, so a database moves between them unchanged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from json.scanner import make_scanner
from typing import Any

from .errors import DatabaseCorruptError, InvalidInput, shown
from .validation import MAX_JSON_DEPTH, check_depth, check_text, written_values

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "StoredItem",
    "decode_items",
    "encode_content",
    "encode_payload",
    "exact_text",
    "same_payload",
]

#: The largest payload accepted by default, in bytes of JSON (``StoreConfig.max_payload_bytes``).
DEFAULT_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024

NUL = "\x00"
#: What a NUL becomes in ``content``: the Unicode replacement character.
NUL_SHOWN = "\ufffd"


def encode_content(value: object, max_bytes: int | None) -> tuple[str, str | None]:
    """``(content, exact_content)`` for the caller's text; see the module docstring."""
    if isinstance(value, str) and NUL not in value:
        return check_text("content", value, max_bytes=max_bytes), None
    if not isinstance(value, str):
        raise InvalidInput(f"content must be str, not {type(value).__name__}")
    shown_text = check_text("content", value.replace(NUL, NUL_SHOWN), max_bytes=max_bytes)
    return shown_text, json.dumps(str(value), ensure_ascii=False)


#: One message as the framework adapters rebuild their items from it
#: (:meth:`~sessionstore.message_reads.MessageReads.items`): ``(kind, role,
#: content, payload)``, the content the caller's exact text, the payload
#: decoded (``None`` when absent or not JSON, as ``MessageRecord.payload``).
StoredItem = tuple[str, str, str, Any]

# The C scanner json.loads runs, called on each text directly: json.loads adds
# a Python-level call chain (decode, raw_decode, two whitespace matches) that
# costs more than the scan of a small item.
_scan: Callable[[str, int], tuple[Any, int]] = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def decode_items(rows: Iterable[Any]) -> Iterator[StoredItem]:
    """Rows of ``(kind, role, content, exact_content, payload)`` as :data:`StoredItem`, lazily.

    Each payload decodes exactly as ``json.loads`` would (a text that is not
    one JSON value, or nests past the recursion limit, is ``None``); the text
    is ``exact_content`` when the caller's text held NUL. Lazily, so that an
    adapter turning each item into a framework object never holds every
    decoded payload at once: thousands of live dicts made the garbage
    collector's passes cost more than the decoding.
    """
    scan = _scan
    for kind, role, text, exact, stored in rows:
        value = None
        if stored is not None:
            try:
                value, end = scan(stored, 0)
                if end != len(stored):
                    value = _loaded(stored)  # text after the value, or surrounding spaces
            except (StopIteration, ValueError, RecursionError, TypeError):
                # Not JSON text here (leading spaces, or bytes a legacy row may
                # hold): json.loads decides, as it does for a record.
                value = _loaded(stored)
        yield kind, role, text if exact is None else exact_text(exact), value


def _loaded(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def exact_text(stored: str) -> str:
    """The caller's text from its stored ``exact_content``."""
    try:
        value = json.loads(stored)
    except ValueError:
        value = None
    if not isinstance(value, str):
        raise DatabaseCorruptError(f"a stored exact_content is not a JSON string: {shown(stored)}")
    return value


def encode_payload(value: Any, max_bytes: int) -> str | None:
    """The item as compact JSON text; :class:`InvalidInput` unless it round-trips exactly.

    Only what JSON holds is accepted, so the item comes back ``==`` (and of the
    same shape) after a read: dicts with text keys, lists, text, finite numbers,
    booleans and ``None``. A tuple, a set, bytes, a dict with integer keys,
    NaN or an object is refused (``json.dumps`` would silently change it), and
    so is nesting deeper than :data:`~sessionstore.validation.MAX_JSON_DEPTH` levels.
    """
    if value is None:
        return None
    if not _plain(value):
        return _encode_checked(value, max_bytes)
    # Only dicts (text keys), lists, text, numbers, booleans and None, at most
    # MAX_JSON_DEPTH deep, so no cycle: JSON holds each exactly, and the round
    # trip _encode_checked makes would find nothing. NaN and infinities, lone
    # surrogates and integers too long to print are still refused below.
    return _encoded(_dumps, value, max_bytes)


def _encoded(dumps: Callable[[Any], str], value: Any, max_bytes: int) -> str:
    """``dumps(value)``, its failures and a size past ``max_bytes`` as :class:`InvalidInput`."""
    try:
        encoded = dumps(value)
        size = len(encoded) if encoded.isascii() else len(encoded.encode("utf-8"))
    except UnicodeEncodeError as exc:  # before ValueError, its base class
        raise InvalidInput(f"payload holds a lone surrogate at position {exc.start}") from None
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"payload must be JSON (dict, list, str, number, bool, None): {exc}"
        ) from None
    except RecursionError:
        raise InvalidInput("payload is nested too deeply to store") from None
    if size > max_bytes:
        raise InvalidInput(f"payload is {size} bytes of JSON, more than the limit of {max_bytes}")
    return encoded


# Cycles are ruled out by _plain (a cycle is deeper than any limit), so the
# encoder does not track the containers it is in.
_dumps = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, check_circular=False, separators=(",", ":")
).encode
_LEAVES = frozenset((str, int, float, bool, type(None)))


def _plain(value: Any) -> bool:
    """Whether ``value`` is made of exactly dict (text keys), list and JSON scalars, shallow enough.

    One pass, a level at a time, on exact types: anything else (a subclass, a
    tuple, a key that is not text, a container past MAX_JSON_DEPTH, a cycle,
    more than :data:`_PLAIN_VALUES` values) answers ``False`` and goes the
    checked way, which refuses what it must.
    """
    level = [value]
    leaves = _LEAVES
    # A level lists a value as often as it is held: a list holding itself
    # twice doubles it at each step. Past the budget (checked after each
    # container, so one level never outgrows it by more than one container's
    # own values), the checked way decides, which walks each container once.
    budget = _PLAIN_VALUES
    for _ in range(MAX_JSON_DEPTH):
        below: list[Any] = []
        for item in level:
            kind = item.__class__
            if kind is dict:
                for key in item:
                    if key.__class__ is not str:
                        return False
                below.extend(item.values())
                if len(below) > budget:
                    return False
            elif kind is list:
                below.extend(item)
                if len(below) > budget:
                    return False
            elif kind not in leaves:
                return False
        if not below:
            return True
        budget -= len(below)
        level = below
    # Values left MAX_JSON_DEPTH levels down: only scalars may sit there.
    return all(item.__class__ in leaves for item in level)


#: The most values (all levels together) the fast way of :func:`encode_payload` looks at.
_PLAIN_VALUES = 1 << 20


def _checked_dumps(value: Any) -> str:
    """``json.dumps`` with cycle checks, for values not known to be plain."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _encode_checked(value: Any, max_bytes: int) -> str:
    """:func:`encode_payload` for any value: checked, encoded, decoded and compared."""
    check_depth("payload", value)
    most = max(max_bytes, _PLAIN_VALUES)
    if written_values(value, most) > most:
        # Each value JSON writes takes a byte at least; refused before json.dumps
        # writes out a list held 2**60 times over (fewer values: json.dumps
        # writes them, and the size it finds is the one reported).
        raise InvalidInput(f"payload is more than the limit of {max_bytes} bytes of JSON")
    encoded = _encoded(_checked_dumps, value, max_bytes)
    try:
        back = json.loads(encoded)
        same = back == value
    except RecursionError:
        raise InvalidInput("payload is nested too deeply to store") from None
    if not same:
        raise InvalidInput(
            "payload must be plain JSON: it holds a value JSON would change on the way "
            "(a tuple, a dict key that is not text, …)"
        )
    return encoded


def same_payload(stored: str | None, encoded: str | None) -> bool:
    """Whether two payloads (as :func:`encode_payload` made them) hold the same item.

    Key order aside, as ``==`` on dicts, but value for value of the same JSON
    type: Python's ``1 == 1.0 == True`` (and ``0.0 == -0.0``) would let a
    changed item pass for a retry of the stored one, and be dropped.
    """
    if stored is None or encoded is None or stored == encoded:
        return stored == encoded
    try:
        return _same(json.loads(stored), json.loads(encoded))
    except (ValueError, RecursionError):
        return False


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[key], b[key]) for key in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return bool(a == b)
