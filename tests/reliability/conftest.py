"""Shared by the reliability battery: a logical dump of a whole database.

``logical_dump(url)`` reads every table of a SQLite file or a PostgreSQL
database (the FTS5 shadow tables, snapshots, quarantine and lifecycle tables
included; on SQLite also ``sqlite_sequence`` and the schema text) through a
connection of its own, outside any store, and returns the rows sorted, so two
databases with the same content give equal dumps whatever their page layout.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

Dump = dict[str, list[tuple[Any, ...]]]


def logical_dump(url: str) -> Dump:
    """Every row of every table at ``url``, sorted; equal dumps mean equal data."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            names = sorted(inspect(conn).get_table_names())
            if conn.dialect.name == "sqlite":
                names.append("sqlite_sequence")
            dump: Dump = {}
            for name in names:
                rows = conn.exec_driver_sql(f'SELECT * FROM "{name}"').all()
                dump[name] = sorted((tuple(row) for row in rows), key=repr)
            if conn.dialect.name == "sqlite":
                schema = conn.exec_driver_sql(
                    "SELECT type, name, tbl_name, sql FROM sqlite_master"
                ).all()
                dump["sqlite_master"] = sorted((tuple(row) for row in schema), key=repr)
            conn.rollback()
    finally:
        engine.dispose()
    return dump
