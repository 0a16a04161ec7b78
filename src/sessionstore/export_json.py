"""The export's JSON document, written from a session record and raw message rows.

One writer for every JSON text the store makes of a session: an export
(:mod:`sessionstore.export`, streamed message by message) and a lifecycle
snapshot (:mod:`sessionstore.sweeps`, thousands of sessions a sweep)::

    {"format": "sessionstore.session", "version": 1,
     "session": {...}, "metadata": {...}, "state": {...}, "messages": [{...}, ...]}

It is the text ``json.dumps`` would write of the documents (the head with
``indent=2``, each message compact on its own line), formatted directly:
strings escaped by the json module's own ``encode_basestring`` (what
``json.dumps(..., ensure_ascii=False)`` uses), integers, booleans and
``None`` spelled as it spells them, and every other value (a float, a
payload, nested state, a legacy value of an unexpected type) handed to the
json module itself. A message row is one of :data:`MESSAGE_ROWS`, as the
driver returns it: building a record per row only to turn it into a dict,
and ``json.dumps`` per message, were most of a sweep's time.

Every value is written as stored, also the legacy ones the rules for new
input would refuse (an empty model id, negative or textual token counts,
NUL in a message), so that a snapshot gives back exactly what the store held.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from json.encoder import encode_basestring, encode_basestring_ascii
from operator import attrgetter
from typing import Any

from sqlalchemy import Text, type_coerce

from .items import exact_text
from .message_sql import MESSAGE_COLUMNS
from .prepared import from_db_time
from .records import SessionRecord

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "MESSAGE_ROWS",
    "document_head",
    "message_line",
    "session_text",
]

EXPORT_FORMAT = "sessionstore.session"
EXPORT_VERSION = 1

#: A message's columns, the stored timestamp text (a driver's datetime on
#: PostgreSQL) as it is, without the column type's conversion: parsed once, for its text.
MESSAGE_ROWS = tuple(
    type_coerce(column, Text) if column.key == "timestamp" else column for column in MESSAGE_COLUMNS
)

#: ``json.dumps(value, ensure_ascii=False)``, without building an encoder per call.
_COMPACT = json.JSONEncoder(ensure_ascii=False).encode
_fromisoformat = datetime.fromisoformat

_NAMES = tuple(field.name for field in dataclasses.fields(SessionRecord))
#: Every field of a session record at once, in the export's order.
_VALUES = attrgetter(*_NAMES)
_PLAIN, _TIME, _SPAN = 0, 1, 2
_KINDS = {"created_at": _TIME, "updated_at": _TIME, "last_activity": _TIME, "archived_at": _TIME}
_KINDS |= {"idle_timeout": _SPAN, "hard_timeout": _SPAN}
#: Each field's key as written, and how its value is.
_SESSION_FIELDS = tuple(
    (f"    {encode_basestring(name)}: ", _KINDS.get(name, _PLAIN)) for name in _NAMES
)
_HEAD = (
    f'{{\n  "format": {encode_basestring(EXPORT_FORMAT)},\n'
    f'  "version": {_COMPACT(EXPORT_VERSION)},\n  "session": '
)


def _text(value: str) -> str:
    """``json.dumps(value, ensure_ascii=False)`` of a string.

    The ASCII escaper gives the same text for ASCII without DEL (which only it
    escapes) in a third of the time: most of a message's formatting is its content.
    """
    if value.isascii() and "\x7f" not in value:
        return encode_basestring_ascii(value)
    return encode_basestring(value)


def _compact(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=False)``; the common types spelled directly."""
    cls = value.__class__
    if cls is str:
        return _text(value)
    if value is None:
        return "null"
    if cls is int:
        return int.__repr__(value)
    if cls is bool:
        return "true" if value else "false"
    return _COMPACT(value)


def _indented(value: Any, pad: str) -> str:
    """``value`` as ``json.dumps(..., indent=2)`` writes it ``pad`` deep in a document."""
    if value.__class__ is dict and not value:
        return "{}"
    if isinstance(value, dict | list | tuple) and value:
        # A JSON text holds no raw newline (strings escape it): every one is indentation.
        text: str = json.dumps(value, ensure_ascii=False, indent=2)
        return text.replace("\n", "\n" + pad)
    return _compact(value)


def _session_block(session: SessionRecord) -> str:
    """``export.session_document`` of the record, as ``json.dumps(indent=2)`` writes it."""
    lines = []
    for (key, kind), value in zip(_SESSION_FIELDS, _VALUES(session), strict=True):
        if value is None:
            lines.append(key + "null")
        elif kind == _TIME:
            lines.append(f'{key}"{value.isoformat()}"')
        elif kind == _SPAN:
            lines.append(key + _compact(value.total_seconds()))
        else:
            lines.append(key + _indented(value, "    "))
    return "{\n" + ",\n".join(lines) + "\n  }"


def _iso(stored: Any) -> str:
    """``from_db_time(stored).isoformat()``, the store's own text rearranged rather than printed."""
    if stored.__class__ is str:
        try:
            # What from_db_time tries first (uncached: a sweep sees each time once).
            parsed = _fromisoformat(stored + "+00:00")
        except ValueError:
            return from_db_time(stored).isoformat()
        if (
            len(stored) == 26
            and stored[4] == stored[7] == "-"
            and stored[10] == " "
            and stored[13] == stored[16] == ":"
            and stored[19] == "."
        ):
            # ``YYYY-MM-DD HH:MM:SS.ffffff``, valid since it parsed: isoformat()
            # writes the same digits, with a T, without a zero fraction, and the offset.
            fraction = stored[19:] if stored[20:] != "000000" else ""
            return f"{stored[:10]}T{stored[11:19]}{fraction}+00:00"
        return parsed.isoformat()
    return from_db_time(stored).isoformat()


def _payload(stored: str | None) -> Any:
    """``MessageRecord.payload``: the stored item decoded, ``None`` when absent or not JSON."""
    if stored is None:
        return None
    try:
        return json.loads(stored)
    except (ValueError, RecursionError):
        return None


#: Roles and kinds as written: a handful of values, each spelled once (bounded all the same).
_WORDS: dict[Any, str] = {}


def _word(value: Any) -> str:
    """``_compact`` of a role or kind, remembered."""
    text = _WORDS.get(value)
    if text is None:
        text = _compact(value)
        if value.__class__ is str and len(value) <= 64:
            if len(_WORDS) >= 256:
                _WORDS.clear()
            _WORDS[value] = text
    return text


def message_line(row: Any) -> str:
    """``export.message_document`` of the row's message, as ``json.dumps`` writes it."""
    # _compact inlined for each field's usual type (the formatting of a few
    # hundred thousand values per sweep): int ids, str texts, None where optional.
    mid, _, seq, role, stored, at, tokens, duration, meta, cid, kind, payload, exact = row
    esc, other = _text, _compact
    line = (
        f'{{"message_id": {mid if mid.__class__ is int else other(mid)}, '
        f'"sequence_number": {seq if seq.__class__ is int else other(seq)}, '
        f'"role": {_WORDS.get(role) or _word(role)}, '
        f'"content": {esc(stored) if stored.__class__ is str else other(stored)}, '
        f'"timestamp": "{_iso(at)}", '
        f'"tokens": {"null" if tokens is None else other(tokens)}, '
        f'"duration": {"null" if duration is None else other(duration)}, '
        f'"metadata": {"null" if meta is None else other(meta)}, '
        f'"client_msg_id": {"null" if cid is None else other(cid)}, '
        f'"kind": {_WORDS.get(kind) or _word(kind)}, '
        f'"payload": {"null" if payload is None else other(_payload(payload))}'
    )
    if exact is not None:
        content = exact_text(exact)
        if content != stored:
            return f'{line}, "exact_content": {other(content)}}}'
    return line + "}"


def document_head(
    session: SessionRecord, metadata: Mapping[str, str | None], state: Mapping[str, Any]
) -> str:
    """The document up to its first message: format, version, session, metadata, state."""
    return "".join(
        (
            _HEAD,
            _session_block(session),
            ',\n  "metadata": ',
            _indented(dict(metadata), "  "),
            ',\n  "state": ',
            _indented(dict(state), "  "),
            ',\n  "messages": [',
        )
    )


#: What follows each message line but the last, and what ends the document.
MESSAGE_SEPARATOR = ",\n    "
DOCUMENT_TAIL = "\n  ]\n}\n"


def session_text(
    session: SessionRecord,
    metadata: Mapping[str, str | None],
    state: Mapping[str, Any],
    rows: Iterable[Any],
) -> tuple[str, int]:
    """The whole document (rows of :data:`MESSAGE_ROWS` in order), and its message count."""
    lines = [message_line(row) for row in rows]
    text = "".join(
        (
            document_head(session, metadata, state),
            "\n    " if lines else "",
            MESSAGE_SEPARATOR.join(lines),
            DOCUMENT_TAIL,
        )
    )
    return text, len(lines)
