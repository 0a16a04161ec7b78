"""What a state change may hold: :class:`StateDelta`, and the checks it passes first.

Every key and value is checked and encoded here, before a transaction
begins, so a refused change has written nothing. A key is non-blank text of
at most 255 bytes of UTF-8 without NUL, and does not begin with ``app:``,
``user:`` or ``temp:`` (those prefixes name scopes). A value is any JSON
value, kept as compact JSON text: ``None`` (JSON ``null``, not the same as
an absent key), booleans, finite numbers, text, lists (tuples come back as
lists) and objects with text keys, at most :data:`MAX_DEPTH` deep and the
store's ``max_content_bytes`` of JSON. Anything ``json.dumps`` would refuse
or silently change (``NaN``, ``bytes``, a ``datetime``, an integer object
key) is :class:`~sessionstore.errors.InvalidInput`.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from .errors import DatabaseCorruptError, InvalidInput
from .validation import MAX_JSON_VALUES, check_id, shown, written_values

__all__ = [
    "MAX_DELTA_KEYS",
    "MAX_DEPTH",
    "RESERVED_PREFIXES",
    "CheckedDelta",
    "ScopeDelta",
    "StateDelta",
    "check_key",
    "check_scope",
    "check_state_delta",
    "decode_value",
    "encode_value",
]

#: The most keys one delta (or one import's state) may set or remove.
MAX_DELTA_KEYS = 10_000
#: The deepest nesting of lists and objects a value may have.
MAX_DEPTH = 100
#: Key prefixes that name a scope; no stored key begins with one.
RESERVED_PREFIXES = ("app:", "user:", "temp:")


# --- what callers pass ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateDelta:
    """A change to state at up to three scopes: keys to set, keys to remove.

    ``session`` applies to the session's own state; ``user`` and ``app`` to the
    state of the session's owner and of its app. Pass it to
    ``messages.append(..., state_delta=...)`` to commit it with the message.
    """

    session: Mapping[str, Any] = field(default_factory=dict)
    user: Mapping[str, Any] = field(default_factory=dict)
    app: Mapping[str, Any] = field(default_factory=dict)
    remove_session: Iterable[str] = ()
    remove_user: Iterable[str] = ()
    remove_app: Iterable[str] = ()

    @classmethod
    def from_prefixed(cls, delta: Mapping[str, Any]) -> StateDelta:
        """ADK's flat delta: ``app:`` and ``user:`` keys to their scopes, ``temp:`` dropped.

        ``{"app:theme": "dark", "user:name": "Ann", "temp:x": 1, "step": 2}`` sets
        ``theme`` in the app's state, ``name`` in the user's, ``step`` in the
        session's; ``temp:`` keys are never stored.
        """
        if not isinstance(delta, Mapping):
            raise InvalidInput(f"a state delta must be a mapping, not {type(delta).__name__}")
        scopes: dict[str, dict[str, Any]] = {"session": {}, "user": {}, "app": {}}
        for key, value in delta.items():
            if not isinstance(key, str):
                raise InvalidInput(f"state keys must be str, not {type(key).__name__}")
            if key.startswith("temp:"):
                continue
            if key.startswith("app:"):
                scopes["app"][key[4:]] = value
            elif key.startswith("user:"):
                scopes["user"][key[5:]] = value
            else:
                scopes["session"][key] = value
        return cls(session=scopes["session"], user=scopes["user"], app=scopes["app"])


@dataclass(frozen=True, slots=True)
class ScopeDelta:
    """One scope's part of a checked delta: keys to JSON text, and keys to remove."""

    values: dict[str, str]
    remove: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.values or self.remove)


_NOTHING = ScopeDelta({}, ())


@dataclass(frozen=True, slots=True)
class CheckedDelta:
    """A :class:`StateDelta`, checked and encoded: ready to be written."""

    session: ScopeDelta = _NOTHING
    user: ScopeDelta = _NOTHING
    app: ScopeDelta = _NOTHING

    def __bool__(self) -> bool:
        return bool(self.session or self.user or self.app)


# --- checking and encoding -----------------------------------------------------------------


def check_key(value: object) -> str:
    key = check_id("state key", value)
    if key.startswith(RESERVED_PREFIXES):
        raise InvalidInput(
            f"state key {shown(key)} begins with a scope prefix ({', '.join(RESERVED_PREFIXES)}); "
            "put user and app keys in their own scope (StateDelta(user=..., app=...), or "
            "StateDelta.from_prefixed for a flat delta)"
        )
    return key


def _check_json(name: str, value: object) -> None:
    """Refuse anything ``json.dumps`` would not give back equal (or would not take at all)."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if item is None or isinstance(item, bool | int | str):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidInput(f"{name} holds {item!r}, which JSON cannot represent")
            continue
        if depth >= MAX_DEPTH:
            raise InvalidInput(f"{name} is nested more than {MAX_DEPTH} deep")
        if isinstance(item, list | tuple):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise InvalidInput(
                        f"{name} holds an object key of type {type(key).__name__}; "
                        "JSON object keys are text"
                    )
                stack.append((child, depth + 1))
        else:
            raise InvalidInput(
                f"{name} must be JSON (None, bool, number, str, list, dict), "
                f"not {type(item).__name__}"
            )


def encode_value(name: str, value: object, max_bytes: int | None) -> str:
    """The value as compact JSON text; :class:`InvalidInput` if it is not JSON or too big."""
    most = max(max_bytes or 0, MAX_JSON_VALUES)
    if written_values(value, most) > most:
        # Each value takes a byte of JSON at least; refused before the leaf-by-leaf
        # walk below would visit a list held 2**60 times over 2**60 times.
        raise InvalidInput(f"{name} holds more than {most:,} JSON values")
    _check_json(name, value)
    try:
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        size = len(encoded.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            f"{name} holds text that is not valid (a lone surrogate at position {exc.start})"
        ) from None
    except (TypeError, ValueError, RecursionError) as exc:
        # An integer past Python's digit limit for str() ends up here.
        raise InvalidInput(f"{name} cannot be stored as JSON: {str(exc)[:200]}") from None
    if max_bytes is not None and size > max_bytes:
        raise InvalidInput(f"{name} is {size} bytes of JSON, more than the limit of {max_bytes}")
    return encoded


def decode_value(key: str, stored: str) -> Any:
    try:
        return json.loads(stored)
    except (TypeError, ValueError, RecursionError):
        raise DatabaseCorruptError(
            f"the stored state value of key {shown(key)} is not JSON"
        ) from None


def check_values(
    name: str, delta: object, max_value_bytes: int | None, *, max_keys: int | None = MAX_DELTA_KEYS
) -> dict[str, str]:
    """A mapping of keys to values, checked and encoded (an import's state has no key limit)."""
    if not isinstance(delta, Mapping):
        raise InvalidInput(f"{name} must be a mapping of keys to JSON values, not {shown(delta)}")
    if max_keys is not None and len(delta) > max_keys:
        raise InvalidInput(f"{name} sets {len(delta)} keys, more than {max_keys} at once")
    encoded: dict[str, str] = {}
    for raw_key, value in delta.items():
        key = check_key(raw_key)
        encoded[key] = encode_value(f"{name}[{key!r}]", value, max_value_bytes)
    return encoded


# Iterable, but not a list of names: a str would be taken a character at a time.
_NOT_A_LIST = (str, bytes, bytearray, memoryview, Mapping, io.IOBase)


def take_list(name: str, value: object, limit: int, what: str) -> list[Any]:
    """The items of an iterable of names, at most ``limit`` of them (not a str, a mapping
    or a file); bounded before anything is held, since it may be an endless iterator."""
    if isinstance(value, _NOT_A_LIST) or not isinstance(value, Iterable):
        raise InvalidInput(f"{name} must be a list of {what}, not {shown(value)}")
    taken = list(islice(iter(value), limit + 1))
    if len(taken) > limit:
        raise InvalidInput(f"{name} names more than {limit} {what}")
    return taken


def check_remove(name: str, keys: object) -> tuple[str, ...]:
    """Keys to remove, each checked, repeats dropped."""
    taken = take_list(name, keys, MAX_DELTA_KEYS, "keys")
    return tuple(dict.fromkeys(check_key(key) for key in taken))


def check_scope(
    name: str, delta: object, remove: object, max_value_bytes: int | None
) -> ScopeDelta:
    values = check_values(name, delta, max_value_bytes)
    removed = check_remove(f"remove ({name})", remove)
    both = sorted(set(values) & set(removed))
    if both:
        raise InvalidInput(f"{name} both sets and removes {shown(both[0])}")
    return ScopeDelta(values, removed)


def check_state_delta(value: object, *, max_value_bytes: int | None) -> CheckedDelta | None:
    """A caller's ``state_delta`` (a :class:`StateDelta` or ``None``), checked; None if empty."""
    if value is None:
        return None
    if not isinstance(value, StateDelta):
        raise InvalidInput(
            f"state_delta must be a StateDelta (StateDelta.from_prefixed for a flat "
            f"mapping), not {type(value).__name__}"
        )
    checked = CheckedDelta(
        check_scope("session state", value.session, value.remove_session, max_value_bytes),
        check_scope("user state", value.user, value.remove_user, max_value_bytes),
        check_scope("app state", value.app, value.remove_app, max_value_bytes),
    )
    return checked if checked else None
