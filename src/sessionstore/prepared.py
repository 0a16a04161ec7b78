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

    __slots__ = ("_compiled", "_runs", "_statement")

    def __init__(self, statement: Executable) -> None:
        self._statement = statement
        self._compiled: dict[str, tuple[str, tuple[str, ...] | None, dict[str, Any]]] = {}
        #: Per dialect: the SQL text and a function of the parameters giving the driver's.
        self._runs: dict[str, tuple[str, Callable[[Mapping[str, Any]], Any]]] = {}

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
        run = self._runs.get(dialect.name)
        if run is None:
            run = self._runs[dialect.name] = _driver_parameters(*self.render(dialect))
        cursor = dbapi_connection.cursor()
        cursor.execute(run[0], run[1](params))
        return cursor


def _driver_parameters(
    sql: str, order: tuple[str, ...] | None, defaults: dict[str, Any]
) -> tuple[str, Callable[[Mapping[str, Any]], Any]]:
    """The SQL, and a function turning named parameters into the driver's.

    Positional drivers get one tuple built by a generated function (no merged
    dict, no comprehension: it is on every hot statement); a parameter the
    caller does not give takes the statement's literal.
    """
    if order is None:
        if not defaults:
            return sql, _same
        return sql, lambda params: {**defaults, **params}
    namespace: dict[str, Any] = {}
    items = []
    for i, name in enumerate(order):
        if name in defaults:
            namespace[f"d{i}"] = defaults[name]
            items.append(f"p.get({name!r}, d{i})")
        else:
            items.append(f"p[{name!r}]")
    exec(f"def values(p):\n    return ({', '.join(items)}{',' if items else ''})\n", namespace)
    values: Callable[[Mapping[str, Any]], Any] = namespace["values"]
    return sql, values


def _same(params: Mapping[str, Any]) -> Mapping[str, Any]:
    return params


def to_db_time(value: datetime, dialect_name: str) -> Any:
    """An aware datetime in the form the column stores."""
    if value.tzinfo is UTC and value.__class__ is datetime and dialect_name == "sqlite":
        # The store's own clock: the text without the "+00:00" (no conversion to
        # make). Only a plain datetime: a subclass may write its offset otherwise.
        return value.isoformat(sep=" ", timespec="microseconds")[:-6]
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


def parsed_times() -> Mapping[Any, datetime]:
    """The stored texts :func:`from_db_time` has parsed lately, and what they parsed to.

    A page builder looks a value up here first (one dict lookup, no call) and
    calls :func:`from_db_time` on a miss; only stored text is ever a key.
    """
    return _PARSED


def record_builder(cls: type[R]) -> Callable[..., R]:
    """A function taking a frozen slotted dataclass's fields by position and returning it.

    Every field must be given (defaults are not applied). The record is the
    one ``cls(...)`` builds, field for field; only the per-field
    ``object.__setattr__`` of the generated ``__init__`` is avoided.
    """
    names = [field.name for field in dataclasses.fields(cast(Any, cls))]
    args = ", ".join(f"a{i}" for i in range(len(names)))
    if issubclass(cls, tuple):
        # A tuple-backed record (records.tuple_backed): the fields are the tuple.
        scope: dict[str, Any] = {"new": tuple.__new__, "cls": cls}
        exec(f"def build({args}):\n    return new(cls, ({args},))\n", scope)
        built: Callable[..., R] = scope["build"]
        return built
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls}
    for i, name in enumerate(names):
        namespace[f"set{i}"] = cls.__dict__[name].__set__
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
