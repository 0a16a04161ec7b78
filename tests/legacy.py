"""A builder of legacy `.ai-router-sessions.db` files, damaged the way real copies are.

:func:`build_legacy_db` writes a file the way the old ``SessionManager`` did:
plain :mod:`sqlite3`, the layout of ``tests/legacy_schema.sql``, foreign keys
off, ``journal_mode=DELETE``, ``synchronous=FULL``, a 2 MB page cache,
sequence numbers allocated with ``MAX(sequence_number) + 1``, timestamps as
``YYYY-MM-DD HH:MM:SS`` text, and every message inserted so the legacy
triggers fire (count nudged, FTS row added, title set). The application code
kept ``total_tokens`` and ``total_duration_seconds`` itself, on append only.

It then injects, deterministically from ``seed``, the five kinds of damage the
field report lists (``/work/shared/legacy-database.md``):

a. orphans: sessions deleted with foreign keys off leave their messages and
   metadata rows behind (plus a few messages written for a session id that
   never existed);
b. ``message_count`` different from the real count (nudged, negative, NULL),
   and drifted ``total_tokens`` / ``total_duration_seconds`` (deletes never
   subtracted them);
c. FTS rows missing for live messages (edits and deletes run the broken
   triggers that wipe a session's rows) and FTS rows left for deleted sessions;
d. ``metadata`` text that is not valid JSON;
e. gaps in ``sequence_number`` after deletions (and, as the old code did, a
   sequence number reused after the last message was deleted).

The content covers unicode (emoji with joiners, CJK, Hangul, Arabic, NFD
combining accents, astral-plane characters), multi-line text with CRLF and
tabs, SQL-looking text and long text, never NUL. Every message carries a
unique search token (``ref0000123q``) so a test can find each one by itself.
A few sessions have no messages at all.

Everything the tests check comes back in :class:`LegacyFacts`, computed from
what the builder wrote, not read back through the code under test.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import sqlite3
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

__all__ = [
    "SCHEMA_PATH",
    "LegacyFacts",
    "LegacyMessage",
    "LegacyMetadata",
    "LegacySession",
    "build_empty_legacy_db",
    "build_legacy_db",
    "copy_legacy",
    "legacy_connect",
    "logical_dump",
    "shared_legacy_db",
]

SCHEMA_PATH = Path(__file__).with_name("legacy_schema.sql")
LEGACY_TIME = "%Y-%m-%d %H:%M:%S"
GHOST_SESSION = "ghost-0000-never-created"
DEFAULT_SEED = 20261124

MODELS = (
    ("gpt-4o", "GPT-4o"),
    ("claude-3-opus", None),
    ("llama3:70b", "Llama 3 70B"),
    ("qwen2.5-coder", "通义千问 Coder"),
    ("mistral-large", "Mistral Large 🇫🇷"),
)

BODIES = (
    "How do I reverse a list in Python?",
    "Use slicing: `xs[::-1]` returns a reversed copy; `xs.reverse()` works in place.",
    "Explain the difference between a process and a thread.\nKeep it short.\nThanks!",
    "日本語で説明してください。データベースの正規化とは何ですか？",  # noqa: RUF001
    "请把这段话翻译成英文：会话历史必须完整保存，不能丢失任何一条消息。",  # noqa: RUF001
    "한국어도 됩니다: 세션 기록을 저장합니다.",
    "Emoji 🎉🚀 — family 👨\u200d👩\u200d👧\u200d👦, flags 🇫🇷🇯🇵, skin tone 👍🏽",
    "Arabic: مرحبا بالعالم، right-to-left text, and Hebrew שלום.",
    "Cafe\u0301 with a combining accent (NFD), and café precomposed (NFC).",
    "Windows line endings\r\nsecond line\r\n\tindented with a tab",
    "Quotes ' \" and SQL-looking text: '); DROP TABLE sessions; --",
    "Math: ∑_{i=1}^{n} i = n(n+1)/2, ≤ ≥ ≠ ∞, and astral 𠀀𝄞",
    "Trailing spaces and blank lines   \n\n\n",
    "  leading spaces, a backslash \\ and a percent sign 100% _under_score_",
    "<script>alert('x')</script> & &amp; markup stays text",
    "A long answer that goes on for a while so the title trigger has to cut it at sixty "
    "characters and append an ellipsis, as the old code did.",
)

VALID_JSON = (
    '{"temperature": 0.7}',
    '{"a":1,   "b" : [1,2,3]}',
    '{"tool_calls": [{"name": "search", "args": {"q": "東京 天気"}}]}',
    '{"emoji": "\\ud83d\\ude00", "nested": {"deep": [null, true, false]}}',
    "[]",
    "null",
    "42",
    '"just a string"',
)
INVALID_JSON = (
    "{'model': 'gpt-4', 'temperature': 0.7}",
    "not json at all",
    '{"truncated": ',
    "",
    '{"a": 1} trailing',
    "None",
    '{"unterminated": "東京}',
)
METADATA_KEYS = {
    "temperature": "0.7",
    "system_prompt": "You are a helpful assistant.\nAnswer in 日本語 when asked. 🙂",
    "tags": '["work", "日本"]',
    "client": "cli/1.2.3",
    "notes": None,
}


@dataclass(frozen=True, slots=True)
class LegacyMessage:
    message_id: int
    session_id: str
    sequence_number: int
    role: str
    content: str
    timestamp: str
    tokens_used: int | None
    duration_seconds: float | None
    metadata: str | None
    #: A word found in this message's content and in no other message.
    token: str

    def row(self) -> tuple[object, ...]:
        """The row in legacy column order (what ``SELECT message_id, ... metadata`` gives)."""
        return (
            self.message_id, self.session_id, self.sequence_number, self.role, self.content,
            self.timestamp, self.tokens_used, self.duration_seconds, self.metadata,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class LegacyMetadata:
    metadata_id: int
    session_id: str
    key: str
    value: str | None


@dataclass(frozen=True, slots=True)
class LegacySession:
    session_id: str
    model_id: str
    model_name: str | None
    #: The title as stored (the legacy trigger sets it from the first user message).
    title: str | None
    created_at: str
    #: What the legacy file stores, drift included.
    stored_message_count: int | None
    stored_total_tokens: int | None
    stored_total_duration: float | None


@dataclass(frozen=True, slots=True)
class LegacyFacts:
    """What a built legacy file holds, from the builder's own bookkeeping."""

    path: Path
    seed: int
    #: Live sessions (their row still exists), by id.
    sessions: dict[str, LegacySession]
    #: Messages of live sessions, by message_id, exactly as stored.
    messages: dict[int, LegacyMessage]
    #: Metadata rows of live sessions, by metadata_id.
    metadata: dict[int, LegacyMetadata]
    #: Messages and metadata rows whose session does not exist.
    orphan_messages: dict[int, LegacyMessage]
    orphan_metadata: dict[int, LegacyMetadata]
    deleted_session_ids: frozenset[str]
    #: Live sessions whose stored count or totals differ from their messages.
    drifted_session_ids: frozenset[str]
    #: Live messages whose ``metadata`` is not valid JSON, ascending.
    invalid_json_message_ids: tuple[int, ...]
    #: Live messages the legacy FTS table has no row for.
    fts_missing_message_ids: frozenset[int]
    #: Deleted sessions that still have rows in ``sessions_fts``.
    stale_fts_session_ids: frozenset[str]
    #: Live sessions whose sequence numbers are not 1..n.
    gap_session_ids: frozenset[str]
    #: Live sessions with no messages.
    empty_session_ids: frozenset[str]
    #: ``sqlite_sequence`` for messages and session_metadata: ids never to be reused.
    max_message_id: int
    max_metadata_id: int

    @property
    def live_session_ids(self) -> frozenset[str]:
        return frozenset(self.sessions)

    @property
    def orphan_message_ids(self) -> frozenset[int]:
        return frozenset(self.orphan_messages)

    @property
    def orphan_metadata_ids(self) -> frozenset[int]:
        return frozenset(self.orphan_metadata)

    def messages_of(self, session_id: str) -> list[LegacyMessage]:
        """The live messages of one session, in sequence order."""
        found = [m for m in self.messages.values() if m.session_id == session_id]
        return sorted(found, key=lambda m: m.sequence_number)

    def totals(self) -> dict[str, tuple[int, int, float, int]]:
        """Per live session: real (count, tokens, duration, highest sequence number)."""
        out = dict.fromkeys(self.sessions, (0, 0, 0.0, 0))
        for m in self.messages.values():
            n, tokens, duration, last = out[m.session_id]
            out[m.session_id] = (
                n + 1,
                tokens + (m.tokens_used or 0),
                duration + (m.duration_seconds or 0.0),
                max(last, m.sequence_number),
            )
        return out


def legacy_connect(path: str | Path) -> sqlite3.Connection:
    """A connection with the old code's habits: no foreign keys, DELETE journal, FULL sync."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA cache_size = -2000")
    return conn


def logical_dump(path: str | Path) -> list[str]:
    """The file's full logical content (schema and rows), as ``iterdump`` writes it."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return list(conn.iterdump())


def build_empty_legacy_db(path: str | Path) -> Path:
    """The legacy schema with no rows, as the old code left a fresh install."""
    target = Path(path)
    if target.exists():
        raise FileExistsError(target)
    with contextlib.closing(legacy_connect(target)) as conn:
        conn.executescript(SCHEMA_PATH.read_text(encoding="utf-8"))
    return target


def _is_json(text: str | None) -> bool:
    if text is None:
        return True
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


class _Builder:
    def __init__(self, conn: sqlite3.Connection, rng: random.Random) -> None:
        self.conn = conn
        self.rng = rng
        self.serial = 0
        self.messages: dict[int, LegacyMessage] = {}
        self.metadata: dict[int, LegacyMetadata] = {}
        #: What the legacy FTS table holds, per session: the message ids indexed.
        self.indexed: dict[str, set[int]] = {}
        self.clock: dict[str, datetime] = {}

    def create_session(self, index: int, created: datetime, with_metadata: bool) -> str:
        rng = self.rng
        session_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        model_id, model_name = rng.choice(MODELS)
        pick = rng.random()
        title = None if pick < 0.7 else "" if pick < 0.8 else f"Planning trip #{index} ✈️"
        stamp = created.strftime(LEGACY_TIME)
        self.conn.execute(
            "INSERT INTO sessions (session_id, created_at, updated_at, last_activity,"
            " model_id, model_name, title) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (session_id, stamp, stamp, stamp, model_id, model_name, title),
        )
        self.clock[session_id] = created
        self.indexed[session_id] = set()
        keys = list(METADATA_KEYS)
        chosen = rng.sample(keys, rng.randint(1 if with_metadata else 0, 3))
        for key in chosen:
            self.add_metadata(session_id, key, METADATA_KEYS[key])
        return session_id

    def add_metadata(self, session_id: str, key: str, value: str | None) -> None:
        cur = self.conn.execute(
            "INSERT INTO session_metadata (session_id, key, value) VALUES (?, ?, ?)",
            (session_id, key, value),
        )
        assert cur.lastrowid is not None
        self.metadata[cur.lastrowid] = LegacyMetadata(cur.lastrowid, session_id, key, value)

    def append(self, session_id: str, role: str) -> LegacyMessage:
        """One message, the old code's way: MAX + 1, then the app's own totals update."""
        rng = self.rng
        self.serial += 1
        token = f"ref{self.serial:07d}q"
        body = rng.choice(BODIES)
        if rng.random() < 0.01:
            body = (body + " ") * 200  # a long message, tens of kilobytes
        content = f"{body}\n{token}" if self.serial % 2 else f"{token} {body}"
        self.clock[session_id] += timedelta(seconds=rng.randint(1, 600))
        stamp = self.clock[session_id].strftime(LEGACY_TIME)
        tokens: int | None
        duration: float | None
        if role == "assistant":
            tokens = rng.choice((0, rng.randint(1, 4000), rng.randint(1, 4000)))
            duration = rng.choice((0.0, round(rng.uniform(0.05, 45.0), 3)))
        elif role == "user":
            tokens = rng.choice((None, rng.randint(1, 300)))
            duration = None
        else:
            tokens, duration = None, None
        pick = rng.random()
        if pick < 0.04:
            meta: str | None = rng.choice(INVALID_JSON)
        elif pick < 0.5:
            meta = rng.choice(VALID_JSON)
        else:
            meta = None
        (seq,) = self.conn.execute(
            "SELECT COALESCE(MAX(sequence_number), 0) + 1 FROM messages WHERE session_id = ?",
            (session_id,),
        ).fetchone()
        cur = self.conn.execute(
            "INSERT INTO messages (session_id, sequence_number, role, content, timestamp,"
            " tokens_used, duration_seconds, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (session_id, seq, role, content, stamp, tokens, duration, meta),
        )
        self.conn.execute(
            "UPDATE sessions SET total_tokens = total_tokens + ?,"
            " total_duration_seconds = total_duration_seconds + ? WHERE session_id = ?",
            (tokens or 0, duration or 0.0, session_id),
        )
        assert cur.lastrowid is not None
        message = LegacyMessage(
            cur.lastrowid, session_id, seq, role, content, stamp, tokens, duration, meta, token
        )
        self.messages[message.message_id] = message
        if session_id in self.indexed:  # the FTS insert trigger needs the session row
            self.indexed[session_id].add(message.message_id)
        return message

    def edit(self, message_id: int) -> None:
        """The legacy update trigger wipes the session's index rows, re-adds this one."""
        old = self.messages[message_id]
        content = f"{old.content}\n[edited] ✏️ sorry, I meant something else"
        self.conn.execute(
            "UPDATE messages SET content = ? WHERE message_id = ?", (content, message_id)
        )
        self.messages[message_id] = replace(old, content=content)
        self.indexed[old.session_id] = {message_id}

    def set_metadata(self, message_id: int, text: str) -> None:
        """An update of the metadata column: the broken update trigger fires too."""
        old = self.messages[message_id]
        self.conn.execute(
            "UPDATE messages SET metadata = ? WHERE message_id = ?", (text, message_id)
        )
        self.messages[message_id] = replace(old, metadata=text)
        self.indexed[old.session_id] = {message_id}

    def delete(self, message_id: int) -> None:
        """The legacy delete trigger wipes the session's index rows; totals stay (drift)."""
        old = self.messages.pop(message_id)
        self.conn.execute("DELETE FROM messages WHERE message_id = ?", (message_id,))
        self.indexed[old.session_id] = set()


def build_legacy_db(
    path: str | Path,
    *,
    sessions: int = 300,
    messages_per_session: int = 50,
    seed: int = DEFAULT_SEED,
) -> LegacyFacts:
    """Write a damaged legacy database at ``path`` (which must not exist); see the module doc."""
    target = Path(path)
    if target.exists():
        raise FileExistsError(target)
    rng = random.Random(seed)
    conn = legacy_connect(target)
    try:
        conn.executescript(SCHEMA_PATH.read_text(encoding="utf-8"))
        b = _Builder(conn, rng)
        base = datetime(2023, 1, 1, 8, 0, 0)
        empty_indexes = {i for i in range(sessions) if i % 97 == 5}

        conn.execute("BEGIN")
        order: list[str] = []
        for i in range(sessions):
            created = base + timedelta(minutes=37 * i + rng.randint(0, 30))
            sid = b.create_session(i, created, with_metadata=i in empty_indexes)
            order.append(sid)
            if i in empty_indexes:
                continue
            low = max(1, messages_per_session // 2)
            count = rng.randint(low, max(low, messages_per_session + messages_per_session // 2))
            roles = ["system"] if rng.random() < 0.15 else []
            roles += ["user" if k % 2 == 0 else "assistant" for k in range(count - len(roles))]
            for role in roles:
                b.append(sid, role)
        conn.execute("COMMIT")

        conn.execute("BEGIN")
        with_messages = [s for i, s in enumerate(order) if i not in empty_indexes]
        # (d) at least one live and one orphaned message with metadata that is not JSON
        # comes from the 4% above; force a few so tiny files have them too.
        for sid in with_messages[:3]:
            first = min(m.message_id for m in b.messages.values() if m.session_id == sid)
            b.set_metadata(first, INVALID_JSON[0])

        # (c) edits: the broken update trigger leaves one index row for the session.
        for sid in rng.sample(with_messages, max(1, len(with_messages) // 16)):
            ids = [m.message_id for m in b.messages.values() if m.session_id == sid]
            b.edit(rng.choice(ids))

        # (e) deletions in the middle leave gaps; (c) they wipe the index; (b) the app
        # never subtracted the totals. Half of those sessions go on chatting afterwards.
        deleted_in: list[str] = []
        for sid in rng.sample(with_messages, max(1, len(with_messages) // 12)):
            msgs = sorted(
                (m for m in b.messages.values() if m.session_id == sid),
                key=lambda m: m.sequence_number,
            )
            middle = msgs[1:-1]
            if not middle:
                continue
            for m in rng.sample(middle, min(len(middle), rng.randint(1, 3))):
                b.delete(m.message_id)
            deleted_in.append(sid)
            if rng.random() < 0.5:
                b.append(sid, "user")
        # The old code reused a sequence number after deleting the last message.
        for sid in with_messages[-6:-4]:
            last = max(
                (m for m in b.messages.values() if m.session_id == sid),
                key=lambda m: m.sequence_number,
            )
            b.delete(last.message_id)
            b.append(sid, "assistant")

        # (b) counts and totals that drift on their own.
        for sid in rng.sample(with_messages, max(1, len(with_messages) // 20)):
            conn.execute(
                "UPDATE sessions SET message_count = message_count + ? WHERE session_id = ?",
                (rng.choice((-3, -1, 2, 5)), sid),
            )
        for sid in rng.sample(with_messages, max(1, len(with_messages) // 30)):
            conn.execute(
                "UPDATE sessions SET total_tokens = total_tokens + ? WHERE session_id = ?",
                (rng.randint(1, 500), sid),
            )
        for sid in rng.sample(with_messages, max(1, len(with_messages) // 50)):
            conn.execute(
                "UPDATE sessions SET total_duration_seconds = total_duration_seconds + 1.5"
                " WHERE session_id = ?",
                (sid,),
            )
        conn.execute(
            "UPDATE sessions SET message_count = NULL WHERE session_id = ?", (with_messages[1],)
        )
        empties = [order[i] for i in sorted(empty_indexes)]
        if empties:
            conn.execute(
                "UPDATE sessions SET message_count = -1 WHERE session_id = ?", (empties[0],)
            )

        # (a) sessions deleted with foreign keys off: their messages, metadata and FTS
        # rows stay. The newest session is one of them, so the highest message id
        # ever handed out belongs to an orphan.
        doomed = set(rng.sample(with_messages[:-1], max(1, len(with_messages) // 25)))
        doomed.add(with_messages[-1])
        if len(empties) > 1:
            doomed.add(empties[-1])  # metadata only
        # An orphan-to-be with metadata that is not JSON.
        victim = min(m.message_id for m in b.messages.values() if m.session_id in doomed)
        b.set_metadata(victim, INVALID_JSON[1])
        for sid in sorted(doomed):
            conn.execute("DELETE FROM sessions WHERE session_id = ?", (sid,))
        # ... and a session id that never existed (a typo in the old code).
        b.clock[GHOST_SESSION] = base
        b.append(GHOST_SESSION, "user")
        b.append(GHOST_SESSION, "assistant")
        b.add_metadata(GHOST_SESSION, "client", "cli/0.9 (typo)")
        conn.execute("COMMIT")

        stored = {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT session_id, model_id, model_name, title, created_at, message_count,"
                " total_tokens, total_duration_seconds FROM sessions"
            )
        }
        sequences = dict(conn.execute("SELECT name, seq FROM sqlite_sequence").fetchall())
    finally:
        conn.close()

    live_ids = set(stored)
    assert live_ids == set(order) - doomed
    live_sessions = {sid: LegacySession(sid, *values) for sid, values in stored.items()}
    live_messages = {k: m for k, m in b.messages.items() if m.session_id in live_ids}
    orphans = {k: m for k, m in b.messages.items() if m.session_id not in live_ids}
    live_meta = {k: d for k, d in b.metadata.items() if d.session_id in live_ids}
    orphan_meta = {k: d for k, d in b.metadata.items() if d.session_id not in live_ids}

    per_session: dict[str, list[LegacyMessage]] = {sid: [] for sid in live_ids}
    for m in live_messages.values():
        per_session[m.session_id].append(m)
    drifted = set()
    gaps = set()
    for sid, msgs in per_session.items():
        s = live_sessions[sid]
        tokens = sum(m.tokens_used or 0 for m in msgs)
        duration = sum(m.duration_seconds or 0.0 for m in msgs)
        if (
            s.stored_message_count != len(msgs)
            or s.stored_total_tokens != tokens
            or s.stored_total_duration is None
            or abs(s.stored_total_duration - duration) > 1e-6
        ):
            drifted.add(sid)
        seqs = sorted(m.sequence_number for m in msgs)
        if seqs != list(range(1, len(seqs) + 1)):
            gaps.add(sid)

    return LegacyFacts(
        path=target,
        seed=seed,
        sessions=live_sessions,
        messages=live_messages,
        metadata=live_meta,
        orphan_messages=orphans,
        orphan_metadata=orphan_meta,
        deleted_session_ids=frozenset(doomed),
        drifted_session_ids=frozenset(drifted),
        invalid_json_message_ids=tuple(
            sorted(k for k, m in live_messages.items() if not _is_json(m.metadata))
        ),
        fts_missing_message_ids=frozenset(
            k for k, m in live_messages.items() if k not in b.indexed[m.session_id]
        ),
        stale_fts_session_ids=frozenset(sid for sid in doomed if b.indexed[sid]),
        gap_session_ids=frozenset(gaps),
        empty_session_ids=frozenset(sid for sid, msgs in per_session.items() if not msgs),
        max_message_id=int(sequences.get("messages", 0)),
        max_metadata_id=int(sequences.get("session_metadata", 0)),
    )


_BUILT: dict[tuple[int, int, int], LegacyFacts] = {}


def shared_legacy_db(
    directory: Path,
    *,
    sessions: int = 300,
    messages_per_session: int = 50,
    seed: int = DEFAULT_SEED,
) -> LegacyFacts:
    """One build per test process and parameters; callers copy it, never open it to write."""
    key = (sessions, messages_per_session, seed)
    if key not in _BUILT:
        directory.mkdir(parents=True, exist_ok=True)
        name = f"legacy-{sessions}x{messages_per_session}-{seed}.db"
        _BUILT[key] = build_legacy_db(
            directory / name,
            sessions=sessions,
            messages_per_session=messages_per_session,
            seed=seed,
        )
    return _BUILT[key]


def copy_legacy(facts: LegacyFacts, destination: str | Path) -> LegacyFacts:
    """A byte copy of a built legacy file (a closed DELETE-journal file: one file is all)."""
    target = Path(destination)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(facts.path, target)
    return replace(facts, path=target)
