"""The payload encoder's shortcut for plain JSON against its checked path.

:func:`sessionstore.items.encode_payload` encodes a value made only of
dicts with text keys, lists and JSON scalars, at most ``MAX_JSON_DEPTH``
deep, without decoding it back; anything else goes the checked way (depth
walk, encode, decode, compare). Both must give the same text, or refuse with
the same error, for every value.
"""

from __future__ import annotations

import collections
import enum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionstore.errors import InvalidInput
from sessionstore.items import _encode_checked, _plain, encode_payload
from sessionstore.validation import MAX_JSON_DEPTH, check_depth


class Text(str):
    pass


class Number(enum.IntEnum):
    ONE = 1


def nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def outcome(encode: Any, value: Any, limit: int = 10**6) -> tuple[str, str]:
    try:
        return "stored", encode(value, limit)
    except InvalidInput as exc:
        return "refused", str(exc)


cycle: list[Any] = []
cycle.append(cycle)
looped: dict[str, Any] = {}
looped["self"] = looped

VALUES = [
    {"type": "message", "content": [{"type": "output_text", "text": "é\u2028", "n": -0.0}]},
    [1, 2.5, 10**30, True, False, None, "", {}],
    "text",
    nested(MAX_JSON_DEPTH - 1, 1),
    nested(MAX_JSON_DEPTH - 1, []),
    nested(MAX_JSON_DEPTH, 1),
    nested(MAX_JSON_DEPTH, []),
    nested(MAX_JSON_DEPTH + 1, 1),
    nested(5_000, {}),
    cycle,
    looped,
    {"k": float("nan")},
    [float("inf")],
    {"k": 10**5000},
    {"lone": "\ud800"},
    {"\udc00": 1},
    {Text("key"): 1},
    [Text("value")],
    {1: "int key"},
    {None: 1},
    {True: 1, "true": 2},
    (1, 2),
    [(1,)],
    {"set": {1}},
    [b"bytes"],
    [Number.ONE],
    collections.OrderedDict(a=1),
    [object()],
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_the_shortcut_gives_what_the_checked_path_gives(value: Any) -> None:
    for limit in (10**6, 8):
        assert outcome(encode_payload, value, limit) == outcome(_encode_checked, value, limit)


def test_only_plain_shallow_json_takes_the_shortcut() -> None:
    assert _plain({"a": [1, "x", None, 2.5, True, {"b": []}]})
    assert _plain(nested(MAX_JSON_DEPTH, 1))
    for value in (nested(MAX_JSON_DEPTH, []), cycle, {Text("k"): 1}, [Number.ONE], (1,), {1: 2}):
        assert not _plain(value)


def test_the_depth_check_walks_a_level_at_a_time() -> None:
    check_depth("payload", nested(MAX_JSON_DEPTH, 1))
    for value in (nested(MAX_JSON_DEPTH, ()), nested(10**5, 1), cycle, looped):
        with pytest.raises(InvalidInput, match="nested more than 100 deep"):
            check_depth("payload", value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        | st.tuples(inner)
        | st.dictionaries(st.integers(), inner, max_size=2)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_value_is_stored_or_refused_as_the_checked_path_does(value: Any) -> None:
    if value is None:  # no payload at all, before either path
        assert encode_payload(value, 10**6) is None
        return
    assert outcome(encode_payload, value) == outcome(_encode_checked, value)
