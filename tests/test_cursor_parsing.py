"""Cursors parse in one step when flat, and refuse exactly what they refused before.

``validation._flat_list`` parses a cursor's JSON array with one ``decode``
when nothing after its opening bracket could nest (no bracket, brace or
whitespace), and scalar by scalar otherwise; the tag of a query is kept per
query text. Both are shortcuts: the values and the refusals must not change.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from sessionstore.errors import InvalidCursor
from sessionstore.validation import _flat_list, cursor_tag, decode_cursor, encode_cursor

WHEN = datetime(2026, 11, 29, 12, 0, 0, 1, tzinfo=UTC)


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("[]", []),
        ("[1]", [1]),
        ('["a","b[",3,null,true,1.5]', ["a", "b[", 3, None, True, 1.5]),
        ('["x y",{"k":1}]', None),  # a space inside a string: the slow path refuses the dict
        ('["x y",2]', ["x y", 2]),
        ("[1,]", None),
        ("[,1]", None),
        ("[1 ,2]", None),
        ("[1, 2]", None),
        ("[NaN]", None),
        ("[[1]]", None),
        ("[1]]", None),
        ('["a"}', None),
    ],
)
def test_flat_arrays_parse_and_the_rest_is_refused(text: str, values: list[object] | None) -> None:
    if values is None:
        with pytest.raises(ValueError):
            _flat_list(text)
    else:
        assert _flat_list(text) == values


def _json_cursor(kind: str, bound: tuple[object, ...], *values: object) -> str:
    """What encode_cursor wrote before its shortcut: json.dumps, then base64."""
    payload = [
        kind,
        cursor_tag(kind, bound),
        *(v.isoformat() if isinstance(v, datetime) else v for v in values),
    ]
    raw = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


@pytest.mark.parametrize(
    "value",
    [
        0, 5, -3, 2**70, True, False, None, 1.5, "plain-id_1.x", "", 'quo"te', "back\\slash",
        "tab\tnew\nline", "del\x7f", "é ünïcode", "😀", "nul\x00", WHEN, WHEN.replace(tzinfo=None),
        WHEN.astimezone(timezone(timedelta(hours=5, minutes=30))),
    ],
)  # fmt: skip
def test_cursors_are_written_as_json_dumps_writes_them(value: object) -> None:
    for bound in ((), ("s",), (None, "m", 1)):
        assert encode_cursor("sessions", bound, value) == _json_cursor("sessions", bound, value)
        assert encode_cursor("k", bound, value, "id") == _json_cursor("k", bound, value, "id")


def test_cursors_round_trip_and_stay_bound_to_their_query() -> None:
    cursor = encode_cursor("sessions", ("m", None), WHEN, "id-1")
    assert decode_cursor(cursor, "sessions", ("m", None), datetime, str) == (WHEN, "id-1")
    assert cursor_tag("sessions", ("m", None)) == cursor_tag("sessions", ("m", None))
    # Equal but not the same query parameters (1 == True): another tag, refused.
    assert cursor_tag("history", (1,)) != cursor_tag("history", (True,))
    assert decode_cursor(encode_cursor("history", (1,), 5), "history", (1,), int) == (5,)
    with pytest.raises(InvalidCursor):
        decode_cursor(encode_cursor("history", (1,), 5), "history", (True,), int)
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, "sessions", ("other", None), datetime, str)
    tag = cursor_tag("history", ("s",))
    with pytest.raises(InvalidCursor):
        decode_cursor(_cursor(f'["history","{tag}", 5]'), "history", ("s",), int)
    assert decode_cursor(_cursor(f'["history","{tag}",5]'), "history", ("s",), int) == (5,)


def test_history_cursors_handed_out_here_page_as_decoded_ones(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``message_reads._ISSUED`` skips decoding a cursor this process made: same pages."""
    from sessionstore import SessionStore, message_reads

    with SessionStore.open(sqlite_url) as store:
        sid = store.sessions.create("m").session_id
        other = store.sessions.create("m").session_id
        store.messages.append_many(sid, [{"role": "user", "content": str(i)} for i in range(7)])
        store.messages.append(other, "user", "x")
        cursors, pages = [], []
        cursor = None
        while True:
            page = store.messages.history(sid, limit=2, cursor=cursor)
            pages.append(page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
            cursors.append(cursor)
        assert all(c in message_reads._ISSUED for c in cursors)
        # Decoded instead (another process's cursors, or forgotten ones): the same pages.
        monkeypatch.setattr(message_reads, "_ISSUED", {})
        again = [store.messages.history(sid, limit=2, cursor=c).items for c in cursors]
        assert again == pages[1:]
        # Handed out for one session, still refused for another, known or not.
        known = store.messages.history(sid, limit=2).next_cursor
        assert known is not None and known in message_reads._ISSUED
        with pytest.raises(InvalidCursor):
            store.messages.history(other, limit=2, cursor=known)
        with pytest.raises(InvalidCursor):
            store.messages.history(sid, limit=2, cursor=known + "x")
