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
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler

from .errors import DatabaseCorruptError, shown

__all__ = ["Prepared", "from_db_time", "to_db_time"]


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
        try:
            # Parsing the offset with the text is several times faster than .replace(tzinfo=...).
            return datetime.fromisoformat(value + "+00:00")
        except ValueError:
            return _foreign_time(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    return _foreign_time(value)


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
