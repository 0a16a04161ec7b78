"""What the benchmark modules share: the text corpus, bulk seeding, and operation labels.

Seeding is bulk and happens once per benchmark session (see ``conftest.py``):
``append_many`` in batches of 5,000 for the read benchmarks' session, and raw
``executemany`` on the store's own file (the store's triggers still fire, so
counts, ``last_seq`` and the FTS index are exactly what appends would leave)
for the 100,000-message session and the 10,000 sessions.

Every benchmark is labelled with :func:`label`: the operation, the side
(``ours``, ``raw_dict``, ``raw_tuple``), the row's title and the name of the
target ``report.py`` holds it to (the targets themselves live in
``report.py``). The labels travel in pytest-benchmark's ``extra_info``;
sizes in the titles follow the run's mode (``modes.py``).
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import cycle
from pathlib import Path
from typing import Any

from baseline import RawStore, store_pragmas, utc_text
from floor import FloorStore, copy_store_into_floor
from modes import scale

from sessionstore import SessionStore

__all__ = [
    "MODELS",
    "RARE_MODEL",
    "Env",
    "Op",
    "Texts",
    "bulk_messages",
    "bulk_sessions",
    "label",
    "make_texts",
    "open_store",
    "ops",
    "raw_connection",
]

MODELS = ("gpt-4o", "claude-3-5-sonnet", "llama-3.1-70b", "mistral-large")
#: A model with a handful of sessions among thousands: the selective filter case.
RARE_MODEL = "rare-model"
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Env:
    """On one file: our store and the raw baseline in both row forms."""

    path: Path
    ours: SessionStore
    raw: dict[str, RawStore] = field(default_factory=dict)
    #: The same data in the floor's minimal schema (``floor.py``), on its own file.
    floor: FloorStore | None = None
    #: Named ids the seeding produced (sessions, messages).
    ids: dict[str, str] = field(default_factory=dict)
    session_ids: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, path: Path) -> Env:
        return cls(
            path=path,
            ours=open_store(path),
            raw={
                "raw_dict": RawStore(path, rows="dict"),
                "raw_tuple": RawStore(path, rows="tuple"),
            },
        )

    def add_floor(self) -> None:
        """Copy this file's sessions and messages into a floor file beside it."""
        floor_path = self.path.with_name(self.path.stem + "-floor.db")
        copy_store_into_floor(self.path, floor_path)
        self.floor = FloorStore(floor_path)

    def side(self, side: str) -> Any:
        """The raw layer or the floor for a side name."""
        return self.floor if side == "floor" else self.raw[side]

    def close(self) -> None:
        for raw in self.raw.values():
            raw.close()
        if self.floor is not None:
            self.floor.close()
        self.ours.close()


@dataclass(frozen=True, slots=True)
class Op:
    """One benchmarked operation: its row in the report and what it is held to."""

    title: str
    #: The name of its target in ``report.TARGETS`` (None: reported, not judged).
    target: str | None
    #: The operation this one is compared with at depth (ours/ours), and that row's title.
    depth_of: str | None = None
    depth_title: str | None = None
    #: The name of its ceiling against the floor in ``report.FLOOR_TARGETS``.
    floor_target: str | None = None


def ops() -> dict[str, Op]:
    """The operations of this run, titled with its sizes."""
    s = scale()
    return {
        "append": Op("append, empty session", "write", floor_target="append"),
        "append_deep": Op(
            f"append, session of {s.big_session:,}",
            "write",
            "append",
            f"depth: append at {s.big_session:,} / at 0",
            floor_target="append",
        ),
        "recent": Op(f"recent(50), session of {s.read_session:,}", "read", floor_target="read"),
        "history_p1": Op("history page 1 (50)", "read", floor_target="read"),
        "history_deep": Op(
            f"history page after seq {s.history_depth:,}",
            "read",
            "history_p1",
            f"depth: history after {s.history_depth:,} / p. 1",
            floor_target="read",
        ),
        "message_get": Op("messages.get(id)", "read"),
        "session_get": Op(f"sessions.get(id), {s.session_count:,} sessions", "read"),
        "list_p1": Op(
            f"sessions.list p. 1 (20 of {s.session_count:,})", "read", floor_target="list"
        ),
        "list_deep": Op(
            f"sessions.list p. {s.deep_list_page}",
            "read",
            "list_p1",
            f"depth: sessions.list p. {s.deep_list_page} / p. 1",
            floor_target="list",
        ),
        "list_rare_active": Op("sessions.list(rare model, active)", "read"),
        "threads": Op(f"{s.threads} threads x {s.per_thread} appends (wall)", None),
    }


def label(benchmark: Any, op: str, side: str, **extra: Any) -> None:
    """Name the benchmark's group and record what ``report.py`` needs in ``extra_info``."""
    spec = ops()[op]
    benchmark.group = spec.title
    benchmark.extra_info.update(
        kind="op",
        op=op,
        side=side,
        title=spec.title,
        target=spec.target,
        depth_of=spec.depth_of,
        depth_title=spec.depth_title,
        floor_target=spec.floor_target,
        **extra,
    )


def open_store(path: Path, **options: Any) -> SessionStore:
    """Our store on a file (created at the current schema if new)."""
    return SessionStore.open(f"sqlite:///{path}", **options)


# --- text ---------------------------------------------------------------------------


def _vocabulary(rng: random.Random, size: int = 2000) -> list[str]:
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ou")]
    words = {"".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(size * 2)}
    return sorted(words)[:size]


def make_texts(count: int = 512, seed: int = 20261124) -> list[tuple[str, str, int]]:
    """Deterministic chat-like messages: (role, content, tokens).

    Users write 8 to 40 words, assistants 40 to 200 (about 75 words, 500
    bytes on average), over a 2,000-word vocabulary, so the FTS index does
    realistic work.
    """
    rng = random.Random(seed)
    vocabulary = _vocabulary(rng)
    texts = []
    for i in range(count):
        role = "user" if i % 2 == 0 else "assistant"
        n = rng.randint(8, 40) if role == "user" else rng.randint(40, 200)
        words = rng.choices(vocabulary, k=n)
        sentences = []
        for start in range(0, n, 12):
            chunk = " ".join(words[start : start + 12])
            sentences.append(chunk[:1].upper() + chunk[1:] + ".")
        content = " ".join(sentences)
        texts.append((role, content, max(1, len(content) // 4)))
    return texts


class Texts:
    """An endless, deterministic stream of messages; each side of a comparison gets its own."""

    def __init__(self, count: int = 512) -> None:
        self._items = cycle(make_texts(count))

    def __call__(self) -> tuple[str, str, int]:
        return next(self._items)


# --- seeding ------------------------------------------------------------------------


def raw_connection(path: Path) -> sqlite3.Connection:
    """A driver connection with the store's pragmas, for bulk seeding."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    for pragma in store_pragmas():
        conn.execute(pragma)
    return conn


def bulk_messages(path: Path, session_id: str, count: int, *, batch: int = 10_000) -> None:
    """``count`` messages into an existing session by raw ``executemany`` (triggers fire)."""
    texts = make_texts(1024)
    conn = raw_connection(path)
    try:
        start = conn.execute(
            "SELECT last_seq FROM sessions WHERE session_id = ?", (session_id,)
        ).fetchone()[0]
        for first in range(0, count, batch):
            rows = []
            for i in range(first, min(count, first + batch)):
                role, content, tokens = texts[i % len(texts)]
                seq = start + i + 1
                ts = utc_text(EPOCH + timedelta(milliseconds=seq))
                rows.append((session_id, seq, role, content, ts, tokens))
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO messages (session_id, sequence_number, role, content, timestamp,"
                " tokens_used) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def bulk_sessions(path: Path, count: int, *, rare_every: int = 2000) -> list[str]:
    """``count`` sessions by raw ``executemany``; returns their ids, newest activity first.

    Four models in turn, one session in ``rare_every`` on :data:`RARE_MODEL`,
    one in ten archived, every ``last_activity`` distinct.
    """
    rng = random.Random(7)
    rows = []
    for i in range(count):
        session_id = f"{rng.getrandbits(128):032x}"
        model = RARE_MODEL if i % rare_every == 0 else MODELS[i % len(MODELS)]
        created = utc_text(EPOCH + timedelta(seconds=i))
        active = utc_text(EPOCH + timedelta(seconds=i, milliseconds=rng.randint(1, 999)))
        status = "archived" if i % 10 == 7 else "active"
        title = f"Conversation {i} about {model}"
        count_ = rng.randint(0, 200)
        rows.append((session_id, model, model.upper(), title, status, created, created, active,
                     count_, count_ * 40, count_ * 0.75, count_))  # fmt: skip
    conn = raw_connection(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO sessions (session_id, model_id, model_name, title, status, created_at,"
            " updated_at, last_activity, message_count, total_tokens, total_duration_seconds,"
            " last_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    rows.sort(key=lambda row: (row[7], row[0]), reverse=True)
    return [row[0] for row in rows]
