"""Column types and server defaults shared by the models: time, integers, reals.

Timestamps are stored as naive UTC (``YYYY-MM-DD HH:MM:SS.ffffff`` on SQLite,
which sorts as text in time order) and handed out timezone-aware; ids and
token totals are 64-bit on PostgreSQL and rowid aliases on SQLite.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import REAL, TIMESTAMP, BigInteger, Dialect, Float, Integer
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

from .prepared import from_db_time

__all__ = ["SQLITE_NOW", "BigInt", "Id", "Real", "UTCDateTime", "to_utc_text", "utc_now"]

# SQLite's CURRENT_TIMESTAMP has whole seconds; this keeps microsecond text
# that sorts with the values the application writes.
SQLITE_NOW = "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')"


class _SQLiteTimestamp(UserDefinedType[str]):
    """``TIMESTAMP`` on SQLite, passed through as text: parsing is done once, below."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "TIMESTAMP"


class UTCDateTime(TypeDecorator[datetime]):
    """A naive-UTC column that accepts and returns timezone-aware datetimes.

    On SQLite the value is the text ``YYYY-MM-DD HH:MM:SS.ffffff`` (sortable,
    and what the legacy ``CURRENT_TIMESTAMP`` text extends), converted with
    :meth:`datetime.fromisoformat`, several times faster than a regex.
    """

    impl = TIMESTAMP
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_SQLiteTimestamp())
        return dialect.type_descriptor(TIMESTAMP())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        if dialect.name == "sqlite":
            return value.isoformat(sep=" ", timespec="microseconds")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return from_db_time(value)


def to_utc_text(value: datetime) -> str:
    """The stored SQLite text of an aware (or naive UTC) datetime."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(sep=" ", timespec="microseconds")


# SQLite needs INTEGER PRIMARY KEY for a rowid alias; PostgreSQL gets BIGINT.
# Token counts are BIGINT there too: a session's total can pass 2**31.
Id = BigInteger().with_variant(Integer(), "sqlite")
BigInt = Id
# The legacy columns are REAL on SQLite; on PostgreSQL that would be 4 bytes.
Real = Float().with_variant(REAL(), "sqlite")


class utc_now(FunctionElement[datetime]):
    """The database's current UTC time in the column's stored form (a server default)."""

    type = TIMESTAMP()
    inherit_cache = True


@compiles(utc_now, "sqlite")
def _utc_now_sqlite(element: utc_now, compiler: Any, **kw: Any) -> str:
    return SQLITE_NOW


@compiles(utc_now, "postgresql")
def _utc_now_postgresql(element: utc_now, compiler: Any, **kw: Any) -> str:
    return "(now() AT TIME ZONE 'utc')"
