"""Core statements compiled once, executed straight on the driver connection.

The append and read paths run hundreds of times a second. Through
SQLAlchemy's ``Connection`` each call pays for a cache-key walk, result
machinery and begin/commit events, several times the cost of the SQLite
statement itself. So the hot statements are still written as Core
constructs (one definition, both dialects, checked by the type checker and
the query-plan tests), compiled once per dialect by :class:`Prepared`, and
executed on the pooled DBAPI connection with plain tuples in and out.

Values cross the boundary in their stored form: :func:`to_db_time` and
:func:`from_db_time` convert timestamps (text on SQLite, naive UTC
``datetime`` on PostgreSQL), and every other hot column is a plain
``str``/``int``/``float``/``None`` on both drivers.

Rows become records by position (:func:`record_builder`): the frozen
dataclass's generated ``__init__`` costs about 0.12 µs per field in
``object.__setattr__`` calls, more than the row's fetch; the builder sets the
same slots through their descriptors, so the record is the same frozen,
typed value, built in about two thirds of the time. Stored timestamp text is
parsed once (:func:`from_db_time` keeps the last few thousand it parsed): a
page of sessions shares a handful of distinct times per column read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler

from .errors import DatabaseCorruptError, shown

__all__ = ["Prepared", "from_db_time", "record_builder", "to_db_time"]

R = TypeVar("R")


class Prepared:
    """A Core statement, compiled once per dialect, run with plain parameters."""

    __slots__ = ("_compiled", "_statement")

    def __init__(self, statement: Executable) -> None:
        self._statement = statement
        self._compiled: dict[str, tuple[str, tuple[str, ...] | None, dict[str, Any]]] = {}

    @property
    def statement(self) -> Executable:
        return self._statement

    def render(self, dialect: Dialect) -> tuple[str, tuple[str, ...] | None, dict[str, Any]]:
        """The SQL text, the positional parameter order (if any), and literal defaults."""
        hit = self._compiled.get(dialect.name)
        if hit is None:
            clause = cast(ClauseElement, self._statement)
            compiled = cast(SQLCompiler, clause.compile(dialect=dialect))
            order = tuple(compiled.positiontup or ()) if compiled.positional else None
            # Literals written in the statement (``status == 'active'``) become
            # anonymous parameters with their values kept here.
            defaults = {
                key: bind.value
                for key, bind in compiled.binds.items()
                if not bind.required and bind.value is not None
            }
            hit = (compiled.string, order, defaults)
            self._compiled[dialect.name] = hit
        return hit

    def execute(self, dbapi_connection: Any, dialect: Dialect, params: Mapping[str, Any]) -> Any:
        """Run on a DBAPI connection; returns its cursor."""
        sql, order, defaults = self.render(dialect)
        merged = {**defaults, **params} if defaults else params
        cursor = dbapi_connection.cursor()
        if order is None:
            cursor.execute(sql, merged)
        else:
            cursor.execute(sql, [merged[name] for name in order])
        return cursor


def to_db_time(value: datetime, dialect_name: str) -> Any:
    """An aware datetime in the form the column stores."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    if dialect_name == "sqlite":
        return value.isoformat(sep=" ", timespec="microseconds")
    return value


def from_db_time(value: Any) -> datetime:
    """A stored timestamp (SQLite text, or a naive or aware UTC datetime) as an aware one.

    What the store writes takes the fast path. Anything else a legacy file may
    hold is read if it is a time at all (ISO text with ``Z`` or an offset, Unix
    seconds); what is not is :class:`DatabaseCorruptError`, never a ``ValueError``.
    """
    if value.__class__ is str:
        parsed = _PARSED.get(value)
        if parsed is not None:
            return parsed
        try:
            # Parsing the offset with the text is several times faster than .replace(tzinfo=...).
            parsed = datetime.fromisoformat(value + "+00:00")
        except ValueError:
            return _foreign_time(value)
        if len(_PARSED) >= _PARSED_LIMIT:
            # Bounded: a scan over a million rows must not keep a million datetimes.
            _PARSED.clear()
        _PARSED[value] = parsed
        return parsed
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    return _foreign_time(value)


#: Stored text -> the aware datetime it parsed to (datetimes are immutable: shared safely).
_PARSED: dict[str, datetime] = {}
_PARSED_LIMIT = 4096


def record_builder(cls: type[R]) -> Callable[..., R]:
    """A function taking a frozen slotted dataclass's fields by position and returning it.

    Every field must be given (defaults are not applied). The record is the
    one ``cls(...)`` builds, field for field; only the per-field
    ``object.__setattr__`` of the generated ``__init__`` is avoided.
    """
    names = [field.name for field in dataclasses.fields(cast(Any, cls))]
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls}
    for i, name in enumerate(names):
        namespace[f"set{i}"] = cls.__dict__[name].__set__
    args = ", ".join(f"a{i}" for i in range(len(names)))
    body = "".join(f"    set{i}(o, a{i})\n" for i in range(len(names)))
    exec(f"def build({args}):\n    o = new(cls)\n{body}    return o\n", namespace)
    build: Callable[..., R] = namespace["build"]
    build.__doc__ = f"A {cls.__name__} from its {len(names)} fields, by position."
    return build


def _foreign_time(value: object) -> datetime:
    """A timestamp in a form the store never writes, as an aware UTC datetime."""
    try:
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.strip())
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise DatabaseCorruptError(f"a stored timestamp is not a time: {shown(value)}")
