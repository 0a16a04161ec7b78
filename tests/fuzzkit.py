"""Hostile values for the fuzz tests, and a probe that tells whether a database changed.

``HOSTILE`` holds one factory per value (fresh mutable objects every call):
``None``, booleans, integers at and past 64 bits, special floats, hostile
text (empty, NUL, a lone surrogate, 1 MB, 300 characters, bidi and
combining marks, path traversal), bytes, containers empty and nested, naive,
aware and extreme datetimes, extreme timedeltas, paths, numbers of other
types, and objects whose ``__str__``, ``__format__``, comparisons, ``__hash__``
and ``__index__`` raise :class:`Trap`: a library that checks a value's type
before comparing, hashing or formatting it never calls them, so a ``Trap``
reaching the test is a finding, like any other exception that is not a
``SessionStoreError``.

``Ctx`` is the database under fuzz: a seeded store, and a real session,
message and snapshot id for the valid arguments, repaired after every call
that succeeded at changing them. ``ChangeProbe`` reads SQLite's ``PRAGMA
data_version`` (or, on PostgreSQL, the next transaction id) through a
connection of its own: it changes whenever anything was committed, so the
expensive logical dump is compared only when something may have changed.
"""

from __future__ import annotations

import io
import math
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from sessionstore import SessionNotFound, SessionStore, SessionStoreError
from sessionstore.compat import SessionManager

MB = 1024 * 1024


class Trap(Exception):
    """Raised by an :class:`Evil` object's dunder methods."""


class Evil:
    """An object every protocol method of which raises."""

    def __str__(self) -> str:
        raise Trap("__str__ called on an unchecked argument")

    def __format__(self, spec: str) -> str:
        raise Trap("__format__ called on an unchecked argument")

    def __eq__(self, other: object) -> bool:
        raise Trap("__eq__ called on an unchecked argument")

    def __ne__(self, other: object) -> bool:
        raise Trap("__ne__ called on an unchecked argument")

    def __lt__(self, other: object) -> bool:
        raise Trap("__lt__ called on an unchecked argument")

    def __le__(self, other: object) -> bool:
        raise Trap("__le__ called on an unchecked argument")

    def __gt__(self, other: object) -> bool:
        raise Trap("__gt__ called on an unchecked argument")

    def __ge__(self, other: object) -> bool:
        raise Trap("__ge__ called on an unchecked argument")

    def __hash__(self) -> int:
        raise Trap("__hash__ called on an unchecked argument")

    def __index__(self) -> int:
        raise Trap("__index__ called on an unchecked argument")

    def __repr__(self) -> str:
        return "<Evil>"


class HugeInt(int):
    """An ``int`` subclass far past 64 bits whose ``__str__`` raises."""

    def __str__(self) -> str:
        raise Trap("__str__ called on an int subclass")


def nested_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def nested_dict(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"k": value}
    return value


def closed_file() -> io.StringIO:
    handle = io.StringIO()
    handle.close()
    return handle


PLUS_14 = timezone(timedelta(hours=14))
MINUS_14 = timezone(timedelta(hours=-14))

# The text values, also used on the command line (which takes strings only).
HOSTILE_TEXT: dict[str, Callable[[], str]] = {
    "empty": lambda: "",
    "space": lambda: "   \t\n",
    "nul": lambda: "\x00",
    "nul-inside": lambda: "a\x00b",
    "surrogate": lambda: "\ud800",
    "surrogate-inside": lambda: "half \udfff pair",
    "1MB": lambda: "x" * MB,
    "300 chars": lambda: "y" * 300,
    "300 bytes é": lambda: "é" * 150,
    "rtl-combining": lambda: "\u202eevil\u202c" + "e\u0301" * 40 + "\u200f",
    "traversal": lambda: "../../etc/passwd",
    "emoji": lambda: "🎉" * 10,
    "sql": lambda: "'; DROP TABLE sessions; --",
    "format": lambda: "%s %(x)s {0} $1 :name",
    "minus-int": lambda: "-1",
    "big-int": lambda: str(2**64),
    "huge-int": lambda: "9" * 400,
    "float-nan": lambda: "nan",
    "float-inf": lambda: "1e999",
    "nested-brackets": lambda: "W" * 3 + "[" * 2000,
    "cursor-nested": lambda: _b64("[" * 3000 + "]" * 3000),
    "newlines": lambda: "line one\nline two\r\n",
}


def _b64(text: str) -> str:
    import base64

    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")[:4096]


HOSTILE: dict[str, Callable[[], Any]] = {
    "None": lambda: None,
    "True": lambda: True,
    "False": lambda: False,
    "0": lambda: 0,
    "-1": lambda: -1,
    "2**63": lambda: 2**63,
    "2**64": lambda: 2**64,
    "-2**63-1": lambda: -(2**63) - 1,
    "10**400": lambda: 10**400,
    "nan": lambda: math.nan,
    "inf": lambda: math.inf,
    "-inf": lambda: -math.inf,
    "-0.0": lambda: -0.0,
    "1e308": lambda: 1e308,
    "5e-324": lambda: 5e-324,
    **{f"str:{name}": make for name, make in HOSTILE_TEXT.items()},
    "bytes": lambda: b"bytes\x00\xff",
    "bytes-empty": lambda: b"",
    "bytearray": lambda: bytearray(b"ba"),
    "memoryview": lambda: memoryview(b"mv"),
    "list-empty": list,
    "list": lambda: ["a", 1, None],
    "list-nested": lambda: nested_list(200),
    "list-deep": lambda: nested_list(5000),
    "dict-empty": dict,
    "dict": lambda: {"k": "v"},
    "dict-odd-keys": lambda: {"": None, 1: 2, None: b"x"},
    "dict-nested": lambda: nested_dict(200),
    "dict-evil": lambda: {"k": Evil()},
    "set-empty": set,
    "set": lambda: {1, "a"},
    "frozenset": lambda: frozenset({"a"}),
    "tuple-empty": tuple,
    "tuple": lambda: ("a", "b"),
    "range": lambda: range(10**20),
    "generator": lambda: (i for i in range(3)),
    "datetime-naive": lambda: datetime(2026, 1, 1, 12, 0),
    "datetime-aware": lambda: datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
    "datetime-min": lambda: datetime.min,
    "datetime-max": lambda: datetime.max,
    "datetime-min-14": lambda: datetime.min.replace(tzinfo=PLUS_14),
    "datetime-max-14": lambda: datetime.max.replace(tzinfo=MINUS_14),
    "datetime-max-utc": lambda: datetime.max.replace(tzinfo=UTC),
    "date": lambda: date(2026, 1, 1),
    "time": lambda: time(12, 0),
    "timedelta-0": timedelta,
    "timedelta-neg": lambda: timedelta(microseconds=-1),
    "timedelta-max": lambda: timedelta.max,
    "timedelta-min": lambda: timedelta.min,
    "timedelta-1us": lambda: timedelta(microseconds=1),
    "path": lambda: Path("fuzz-out.db"),
    "path-traversal": lambda: Path("../../etc/passwd"),
    "path-dir": lambda: Path("."),
    "purepath": lambda: PurePosixPath("x/y"),
    "decimal-nan": lambda: Decimal("NaN"),
    "decimal-huge": lambda: Decimal("1e1000"),
    "fraction": lambda: Fraction(1, 3),
    "complex": lambda: complex(1, 1),
    "object": object,
    "evil": Evil,
    "huge-int-subclass": lambda: HugeInt(10**30),
    "type": lambda: int,
    "function": lambda: lambda *args, **kwargs: None,
    "raising-function": lambda: _raiser,
    "stringio": io.StringIO,
    "closed-file": closed_file,
    "exception": lambda: ValueError("x"),
}


def _raiser(*args: Any, **kwargs: Any) -> Any:
    raise Trap("a callable argument was called and raised")


@dataclass
class ChangeProbe:
    """A token that changes whenever anything was committed to the database at ``url``."""

    url: str

    def __post_init__(self) -> None:
        self._engine = create_engine(self.url, poolclass=NullPool)
        self._sqlite: sqlite3.Connection | None = None
        if self._engine.dialect.name == "sqlite":
            path = self._engine.url.database
            assert path
            self._sqlite = sqlite3.connect(path, isolation_level=None)
            self._conn = None
        else:
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def token(self) -> int:
        if self._sqlite is not None:
            return int(self._sqlite.execute("PRAGMA data_version").fetchone()[0])
        assert self._conn is not None
        query = text("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")
        return int(self._conn.execute(query).scalar_one())

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._conn is not None:
            self._conn.close()
        self._engine.dispose()


@dataclass
class Ctx:
    """A seeded store and the ids valid calls use; repaired after writes that succeed."""

    store: SessionStore
    url: str
    tmp: Path
    sid: str = ""
    mid: int = 0
    snap_session: str = ""
    snap: int = 0
    export_text: str = ""
    backup_file: Path = Path()
    manager: SessionManager | None = None
    record: Any = None
    dump: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    counter: int = 0

    def seed(self) -> None:
        store = self.store
        for i in range(3):
            other = store.sessions.create("gpt", title=f"needle {i}", metadata={"owner": "ann"})
            for j in range(3):
                store.messages.append(other.session_id, "user", f"needle haystack {i} {j}")
        self.refresh()
        self.export_text = store.export(self.sid) or ""
        if store.dialect == "sqlite":
            self.backup_file = self.tmp / "valid-backup.db"
            store.backup(self.backup_file)

    def fresh_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def refresh(self) -> None:
        """Make sid (active), mid (in an active session) and snap (a snapshot) valid again."""
        store = self.store
        try:
            if store.sessions.get(self.sid or "-").status != "active":
                store.lifecycle.reactivate(self.sid)
        except SessionNotFound:
            self.sid = store.sessions.create(
                "gpt", session_id=self.fresh_id("main"), metadata={"owner": "ann"}
            ).session_id
        try:
            message = store.messages.get(self.mid or 1)
            assert message.session_id == self.sid
        except (SessionStoreError, AssertionError):
            self.mid = store.messages.append(
                self.sid, "user", "needle in the main", client_msg_id="fuzz-cid"
            ).message_id
        self.record = store.sessions.get(self.sid)
        known = [s.snapshot_id for s in store.lifecycle.snapshots(self.snap_session or "-")]
        archived = store.sessions.exists(self.snap_session or "-") and (
            store.sessions.get(self.snap_session).status == "archived"
        )
        if self.snap not in known or not archived:
            self.snap_session = store.sessions.create(
                "gpt", session_id=self.fresh_id("snap")
            ).session_id
            store.messages.append(self.snap_session, "user", "needle archived")
            self.snap = store.lifecycle.archive(self.snap_session).snapshot_id
