"""What callers receive: frozen records and pages, never ORM instances.

Records are plain values. They cannot lazy-load or detach behind the
caller's back, they compare by value, and they are safe to hand to another
thread. All timestamps are timezone-aware UTC.

The two records every read returns by the dozen, :class:`MessageRecord` and
:class:`SessionRecord`, are frozen dataclasses stored as a tuple of their
fields (:func:`tuple_backed`): a page is built with one ``tuple.__new__`` per
row instead of one ``object.__setattr__`` per field, about a third of the
cost, while ``dataclasses.fields``/``asdict``/``replace``, equality, hashing,
``repr``, pickling and :class:`~dataclasses.FrozenInstanceError` behave as
for any frozen dataclass.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import FrozenInstanceError, dataclass
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any, Generic, Literal, TypeVar

__all__ = [
    "Expiry",
    "LifecycleRecord",
    "MessageRecord",
    "NewMessage",
    "Page",
    "PurgeItem",
    "PurgeReport",
    "SessionRecord",
    "SnapshotInfo",
    "SweepItem",
    "SweepReport",
]

T = TypeVar("T")
R = TypeVar("R")
Reason = Literal["idle", "hard"]


def tuple_backed(spec: type[R]) -> type[R]:
    """The frozen dataclass ``spec`` as a ``tuple`` subclass holding its fields in order.

    The class keeps ``spec``'s name, fields (``__dataclass_fields__``, so the
    :mod:`dataclasses` functions work), defaults, constructor signature,
    ``repr``, equality (records of the same class only), hash, ``__match_args__``
    and methods; assigning or deleting any attribute raises
    :class:`~dataclasses.FrozenInstanceError`. Fields are read by position
    (``operator.itemgetter``), and the store builds a record from a row with
    ``tuple.__new__(cls, values)``, no ``__init__`` at all.
    """
    fields = dataclasses.fields(spec)  # type: ignore[arg-type]
    names = tuple(field.name for field in fields)
    namespace: dict[str, Any] = {
        "__slots__": (),
        "__module__": spec.__module__,
        "__qualname__": spec.__qualname__,
        "__doc__": spec.__doc__,
        "__annotations__": spec.__annotations__,
        "__dataclass_fields__": spec.__dataclass_fields__,  # type: ignore[attr-defined]
        "__dataclass_params__": spec.__dataclass_params__,  # type: ignore[attr-defined]
        "__match_args__": names,
        "__repr__": _record_repr,
        "__eq__": _record_eq,
        "__ne__": _record_ne,
        "__lt__": _unordered,
        "__le__": _unordered,
        "__gt__": _unordered,
        "__ge__": _unordered,
        "__hash__": tuple.__hash__,
        "__setattr__": _frozen_setattr,
        "__delattr__": _frozen_delattr,
        "__getnewargs__": _newargs,
    }
    for key, value in spec.__dict__.items():
        # The spec's own methods and properties (not its slots, dunders or defaults).
        if (not key.startswith("__") and key not in names) or key == "__replace__":
            namespace[key] = value  # __replace__: copy.replace on Python 3.13+
    for index, field in enumerate(fields):
        namespace[field.name] = property(itemgetter(index), doc=f"Field {index}: {field.name}.")
    defaults: dict[str, Any] = {}
    params = []
    for field in fields:
        if field.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{spec.__name__}.{field.name}: default factories are not supported")
        if field.default is dataclasses.MISSING:
            params.append(field.name)
        else:
            defaults[f"_default_{field.name}"] = field.default
            params.append(f"{field.name}=_default_{field.name}")
    scope: dict[str, Any] = {"_new": tuple.__new__, **defaults}
    # Built from the dataclass's own field names, as dataclasses builds its __init__.
    source = (
        f"def __new__(_cls, {', '.join(params)}):\n    return _new(_cls, ({', '.join(names)},))\n"
    )
    exec(source, scope)
    constructor: Callable[..., Any] = scope["__new__"]
    constructor.__qualname__ = f"{spec.__qualname__}.__new__"
    namespace["__new__"] = constructor
    return type(spec.__name__, (tuple,), namespace)


def _record_repr(self: tuple[Any, ...]) -> str:
    cls = type(self)
    names = cls.__match_args__  # type: ignore[attr-defined]
    shown = ", ".join(f"{name}={value!r}" for name, value in zip(names, self, strict=True))
    return f"{cls.__qualname__}({shown})"


def _record_eq(self: tuple[Any, ...], other: object) -> bool:
    if other.__class__ is self.__class__:
        return tuple.__eq__(self, other)
    # Never equal to a plain tuple (or another record type) of the same values,
    # which tuple's own comparison, tried next, would find.
    return False if isinstance(other, tuple) else NotImplemented


def _record_ne(self: tuple[Any, ...], other: object) -> bool:
    if other.__class__ is self.__class__:
        return tuple.__ne__(self, other)
    return True if isinstance(other, tuple) else NotImplemented


def _unordered(self: tuple[Any, ...], other: object) -> bool:
    # A dataclass without order=True has no ordering; neither has its tuple.
    raise TypeError(f"{type(self).__name__} records have no order")


def _frozen_setattr(self: object, name: str, value: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: object, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _newargs(self: tuple[Any, ...]) -> tuple[Any, ...]:
    # Pickle and copy rebuild the record from its fields (tuple's own would pass one tuple).
    return tuple(self)


@tuple_backed
@dataclass(frozen=True, slots=True)
class SessionRecord:
    session_id: str
    #: ``None`` for a session created without a model id (frameworks know none).
    model_id: str | None
    model_name: str | None
    title: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    last_activity: datetime
    message_count: int
    total_tokens: int
    total_duration_seconds: float
    #: The sequence number the last appended message received.
    last_seq: int
    #: This session's own timeouts; ``None`` means the store's defaults apply.
    idle_timeout: timedelta | None = None
    hard_timeout: timedelta | None = None
    #: When the session was archived (``None`` while active).
    archived_at: datetime | None = None
    #: The owner: both ``None`` for an unowned session.
    app: str | None = None
    user_id: str | None = None
    #: The session this one was forked from, and the last sequence number it copied.
    parent_session_id: str | None = None
    fork_sequence: int | None = None
    #: True: no timeout archives it (``None`` timeouts mean the store's defaults).
    never_expires: bool = False


@tuple_backed
@dataclass(frozen=True, slots=True)
class MessageRecord:
    message_id: int
    session_id: str
    sequence_number: int
    role: str
    content: str
    timestamp: datetime
    tokens: int | None
    duration: float | None
    #: The metadata as stored: JSON text (legacy rows may hold text that is not JSON).
    metadata_json: str | None
    #: The caller's message id, unique within the session.
    client_msg_id: str | None
    #: The item kind: ``message`` for plain messages (and every legacy row).
    kind: str = "message"
    #: The framework's item as stored: compact JSON text, ``None`` for plain messages.
    payload_json: str | None = None

    @property
    def metadata(self) -> Any:
        """The metadata decoded from JSON; ``None`` when absent or not valid JSON."""
        if self.metadata_json is None:
            return None
        try:
            return json.loads(self.metadata_json)
        except (ValueError, RecursionError):
            return None

    @property
    def payload(self) -> Any:
        """The item decoded from JSON (a fresh copy each time); ``None`` when absent."""
        if self.payload_json is None:
            return None
        try:
            return json.loads(self.payload_json)
        except (ValueError, RecursionError):
            return None


@dataclass(frozen=True, slots=True)
class NewMessage:
    """One message for :meth:`MessageRepository.append_many`."""

    role: str
    content: str
    tokens: int | None = None
    duration: float | None = None
    metadata: Mapping[str, Any] | None = None
    client_msg_id: str | None = None
    kind: str = "message"
    #: Any JSON value (dict, list, str, number, bool, None): the framework's item.
    payload: Any = None
    #: The caller's time (timezone-aware, kept to the microsecond); None: the store's clock.
    timestamp: datetime | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of results; pass ``next_cursor`` back for the next, ``None`` on the last."""

    items: tuple[T, ...]
    next_cursor: str | None

    def __iter__(self) -> Any:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


# --- the lifecycle's reports (see sessionstore.lifecycle) ---------------------------


@dataclass(frozen=True, slots=True)
class Expiry:
    """A session that has timed out, or will by the horizon asked about."""

    session: SessionRecord
    reason: Reason
    deadline: datetime


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    snapshot_id: int
    session_id: str
    created_at: datetime
    reason: str
    message_count: int
    #: The snapshot's JSON size, and what it takes compressed.
    raw_bytes: int
    stored_bytes: int


@dataclass(frozen=True, slots=True)
class SweepItem:
    session_id: str
    reason: Reason
    deadline: datetime
    #: The snapshot taken when it was archived (``None`` in a dry run).
    snapshot_id: int | None


@dataclass(frozen=True, slots=True)
class SweepReport:
    now: datetime
    dry_run: bool
    archived: tuple[SweepItem, ...]
    #: Sessions found due that were no longer due (or no longer active) at their turn.
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class PurgeItem:
    session_id: str
    snapshot_id: int
    messages: int


@dataclass(frozen=True, slots=True)
class PurgeReport:
    now: datetime
    cutoff: datetime
    purged: tuple[PurgeItem, ...]
    #: Space the purged rows occupied: pages returned to SQLite's free list,
    #: or the rows' size on PostgreSQL.
    bytes_freed: int


@dataclass(frozen=True, slots=True)
class LifecycleRecord:
    """One line of the audit trail."""

    event_id: int
    session_id: str
    action: str
    reason: str | None
    snapshot_id: int | None
    occurred_at: datetime
    details: dict[str, Any]
