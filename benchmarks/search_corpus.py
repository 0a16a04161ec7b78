"""The full-text search corpus and the raw ``sqlite3`` side of the search benchmarks.

:func:`corpus` builds (once, then reuses) a SQLite file of 1,000,000 messages
in 50,000 sessions of 20, created by :meth:`SessionStore.open` and filled by
raw ``executemany`` in big transactions on that file. The store's own
triggers fire for every row, so counts, totals, ``last_seq``, titles (from
the first user message), ``search_key``, both FTS5 indexes and their
segments are exactly what the library's appends would leave; the build ends
with ``store.health.check().ok`` (integrity, counts, and the FTS5
``integrity-check`` of the index against the messages).

The text is chat-like: users write 6 to 30 words, assistants 20 to 110, in
sentences of about twelve words, drawn from a seeded 4,000-word vocabulary
with a Zipf distribution (``p(rank k) ~ 1/k``). Every word has a stem of its
own under the index's ``porter unicode61`` tokenizer (checked with
``fts5vocab``), so a word's document frequency is exactly the messages it
was written into. Three queries are planted or chosen:

* :data:`RARE_TERM`, a word outside the vocabulary, written into one to three
  messages (never the first, which becomes the title) of exactly
  :data:`RARE_SESSIONS` sessions;
* the *common* term, the vocabulary word of Zipf rank :data:`COMMON_RANK`
  (in about a third of all messages, so in nearly every session);
* the *pair*, two words of ranks :data:`PAIR_RANKS`, each in a few percent
  of messages, together in a few thousand.

The file is cached under ``.benchmarks/search-corpus/``, keyed by
:data:`CORPUS_VERSION` and the schema's head revision; a build writes a
``.tmp`` file and renames it only when complete, next to a JSON file of
:class:`CorpusFacts` (what was planted, counts, build time).

:class:`RawSearch` is the baseline: one persistent ``sqlite3`` connection
with the store's pragmas, running the very SQL text
:mod:`sessionstore.search` runs on SQLite (built by its own ``_sessions_sql``,
``_messages_sql`` and snippet SQL), in a read transaction, with the same
parameters, the snippet query for the page, and the same keyset.

Run it as a script to build the corpus and print its facts::

    .venv/bin/python benchmarks/search_corpus.py
"""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sessionstore import SessionStore
from sessionstore import search as _search
from sessionstore.migrations import head_revision

__all__ = [
    "COMMON_RANK",
    "CORPUS_VERSION",
    "PAIR_RANKS",
    "RARE_SESSIONS",
    "RARE_TERM",
    "CorpusFacts",
    "RawSearch",
    "build_corpus",
    "corpus",
    "vocabulary",
]

#: Bump when the generator changes: the cached file is keyed by it.
CORPUS_VERSION = 1
SEED = 20261125
SESSIONS = 50_000
PER_SESSION = 20
VOCABULARY_SIZE = 4_000
#: Sessions per generated block; a block's messages are inserted in time order.
BLOCK = 1_000
RARE_TERM = "zymurgist"
RARE_SESSIONS = 20
COMMON_RANK = 10
PAIR_RANKS = (100, 150)
MODELS = (
    ("gpt-4o", "GPT-4o"),
    ("claude-3-5-sonnet", "Claude 3.5 Sonnet"),
    ("llama-3.1-70b", None),
    ("mistral-large", "Mistral Large"),
)
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / ".benchmarks" / "search-corpus"


@dataclass(frozen=True)
class CorpusFacts:
    """What a built corpus holds, from the generator's own bookkeeping."""

    version: int
    head: str
    sessions: int
    messages: int
    content_bytes: int
    file_bytes: int
    build_seconds: float
    rare_term: str
    #: The sessions the rare term was planted in, and the messages.
    rare_session_ids: list[str]
    rare_message_ids: list[int]
    common_term: str
    #: Messages the common term was written into.
    common_messages: int
    common_sessions: int
    pair: list[str]
    pair_messages: int
    pair_sessions: int

    @property
    def pair_query(self) -> str:
        return " ".join(self.pair)


# --- text ---------------------------------------------------------------------------


def _stems(words: list[str]) -> list[str]:
    """Each word's term under the index's tokenizer (the FTS5 table's own ``fts5vocab``)."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(
            "CREATE VIRTUAL TABLE t USING fts5(w,"
            " tokenize = 'porter unicode61 remove_diacritics 2')"
        )
        conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
        conn.executemany("INSERT INTO t (rowid, w) VALUES (?, ?)", enumerate(words))
        terms = dict(conn.execute("SELECT doc, term FROM v"))
    finally:
        conn.close()
    return [terms[i] for i in range(len(words))]


def vocabulary(size: int = VOCABULARY_SIZE, seed: int = SEED) -> list[str]:
    """``size`` pronounceable words in Zipf rank order, each with a stem no other word has."""
    rng = random.Random(seed)
    syllables = [c + v for c in "bcdfghjklmnprstvz" for v in ("a", "e", "i", "o", "u")]
    lengths = (1, 2, 2, 3, 3, 3, 4)
    candidates = sorted(
        {"".join(rng.choices(syllables, k=rng.choice(lengths))) for _ in range(size * 3)}
    )
    candidates = [w for w in candidates if len(w) > 2]
    by_stem: dict[str, list[str]] = {}
    for word, stem in zip(candidates, _stems(candidates), strict=True):
        by_stem.setdefault(stem, []).append(word)
    unique = sorted(words[0] for words in by_stem.values() if len(words) == 1)
    if len(unique) < size:
        raise RuntimeError(f"only {len(unique)} words with a stem of their own")
    rng.shuffle(unique)
    return unique[:size]


def _utc_text(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _sentences(words: list[str]) -> str:
    parts = []
    for start in range(0, len(words), 12):
        chunk = " ".join(words[start : start + 12])
        parts.append(chunk[:1].upper() + chunk[1:] + ".")
    return " ".join(parts)


@dataclass
class _Plan:
    words: list[str]
    common: str
    pair: tuple[str, str]
    rare: dict[int, set[int]]  # session index -> sequence numbers


def _plan(rng: random.Random) -> _Plan:
    words = vocabulary()
    rare: dict[int, set[int]] = {}
    for index in rng.sample(range(SESSIONS), RARE_SESSIONS):
        rare[index] = set(rng.sample(range(2, PER_SESSION + 1), rng.randint(1, 3)))
    return _Plan(
        words,
        words[COMMON_RANK - 1],
        (words[PAIR_RANKS[0] - 1], words[PAIR_RANKS[1] - 1]),
        rare,
    )


# --- building -----------------------------------------------------------------------


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None)
    for pragma in (
        "PRAGMA foreign_keys = ON",
        "PRAGMA busy_timeout = 10000",
        # Seeding only: durability is pointless for a file we can rebuild.
        "PRAGMA synchronous = OFF",
        "PRAGMA cache_size = -1048576",
        "PRAGMA temp_store = MEMORY",
    ):
        conn.execute(pragma)
    return conn


def build_corpus(path: Path, *, sessions: int = SESSIONS, log: Any = None) -> CorpusFacts:
    """Write the corpus at ``path`` (which must not exist) and check it is healthy."""
    if path.exists():
        raise FileExistsError(path)
    started = time.perf_counter()
    say = log or (lambda _msg: None)
    rng = random.Random(SEED)
    plan = _plan(rng)
    weights = [1.0 / rank for rank in range(1, len(plan.words) + 1)]
    cum: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        cum.append(total)

    with SessionStore.open(f"sqlite:///{path}"):
        pass  # the schema, triggers and indexes, at head
    conn = _connect(path)
    rare_sids: list[str] = []
    rare_seqs: dict[str, set[int]] = {}
    common_messages = pair_messages = content_bytes = n_messages = 0
    common_sids: set[str] = set()
    pair_sids: set[str] = set()
    try:
        for block_start in range(0, sessions, BLOCK):
            block = range(block_start, min(sessions, block_start + BLOCK))
            session_rows = []
            ids: list[str] = []
            for index in block:
                sid = f"{rng.getrandbits(128):032x}"
                ids.append(sid)
                model_id, model_name = MODELS[index % len(MODELS)]
                created = _utc_text(EPOCH + timedelta(seconds=50 * index))
                session_rows.append((sid, model_id, model_name, created, created, created))
                if index in plan.rare:
                    rare_sids.append(sid)
                    rare_seqs[sid] = plan.rare[index]
            lengths = [
                rng.randint(6, 30) if seq % 2 else rng.randint(20, 110)
                for _ in block
                for seq in range(1, PER_SESSION + 1)
            ]
            tokens = rng.choices(plan.words, cum_weights=cum, k=sum(lengths))
            rows = []
            at = 0
            k = 0
            for offset, index in enumerate(block):
                sid = ids[offset]
                base = EPOCH + timedelta(seconds=50 * index)
                for seq in range(1, PER_SESSION + 1):
                    n = lengths[k]
                    k += 1
                    words = tokens[at : at + n]
                    at += n
                    if seq in plan.rare.get(index, ()):
                        words.insert(rng.randrange(len(words) + 1), RARE_TERM)
                    if plan.common in words:
                        common_messages += 1
                        common_sids.add(sid)
                    if plan.pair[0] in words and plan.pair[1] in words:
                        pair_messages += 1
                        pair_sids.add(sid)
                    content = _sentences(words)
                    content_bytes += len(content.encode("utf-8"))
                    user = seq % 2 == 1
                    ts = base + timedelta(seconds=90 * seq, milliseconds=rng.randint(0, 999))
                    rows.append((
                        _utc_text(ts), sid, seq, "user" if user else "assistant", content,
                        max(1, len(content) // 4), None if user else round(rng.uniform(0.3, 25), 3),
                    ))  # fmt: skip
            rows.sort(key=lambda row: row[0])  # other sessions' messages land in between
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO sessions (session_id, model_id, model_name, created_at, updated_at,"
                " last_activity) VALUES (?, ?, ?, ?, ?, ?)",
                session_rows,
            )
            conn.executemany(
                "INSERT INTO messages (timestamp, session_id, sequence_number, role, content,"
                " tokens_used, duration_seconds) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute("COMMIT")
            n_messages += len(rows)
            if (block_start // BLOCK) % 10 == 9:
                say(f"  {n_messages:,} messages, {time.perf_counter() - started:.0f} s")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rare_ids = sorted(
            row[0]
            for sid in rare_sids
            for row in conn.execute(
                "SELECT message_id, sequence_number FROM messages WHERE session_id = ?", (sid,)
            )
            if row[1] in rare_seqs[sid]
        )
    finally:
        conn.close()

    say(f"  inserted in {time.perf_counter() - started:.0f} s; checking health")
    with SessionStore.open(f"sqlite:///{path}") as store:
        report = store.health.check()
        if not report.ok:
            raise RuntimeError(f"the corpus is not healthy: {report.failed}")
    build_seconds = time.perf_counter() - started
    return CorpusFacts(
        version=CORPUS_VERSION,
        head=head_revision(),
        sessions=sessions,
        messages=n_messages,
        content_bytes=content_bytes,
        file_bytes=path.stat().st_size,
        build_seconds=round(build_seconds, 1),
        rare_term=RARE_TERM,
        rare_session_ids=sorted(rare_sids),
        rare_message_ids=rare_ids,
        common_term=plan.common,
        common_messages=common_messages,
        common_sessions=len(common_sids),
        pair=list(plan.pair),
        pair_messages=pair_messages,
        pair_sessions=len(pair_sids),
    )


def corpus(
    directory: Path = CACHE_DIR, *, sessions: int = SESSIONS, log: Any = None
) -> tuple[Path, CorpusFacts, bool]:
    """The cached corpus file and its facts, built first if missing; and whether it was built."""
    key = f"v{CORPUS_VERSION}-{head_revision()}-{sessions}"
    path = directory / f"corpus-{key}.db"
    facts_path = directory / f"corpus-{key}.json"
    if path.exists() and facts_path.exists():
        return path, CorpusFacts(**json.loads(facts_path.read_text(encoding="utf-8"))), False
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f"corpus-{key}.tmp.db"
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        leftover.unlink(missing_ok=True)
    facts = build_corpus(tmp, sessions=sessions, log=log)
    for suffix in ("-wal", "-shm"):
        if Path(f"{tmp}{suffix}").exists():
            raise RuntimeError(f"{tmp}{suffix} left behind: a connection is still open")
    tmp.rename(path)
    facts_path.write_text(json.dumps(asdict(facts), indent=1), encoding="utf-8")
    return path, facts, True


# --- the raw baseline ---------------------------------------------------------------

_W = _search._WIDTH


class RawSearch:
    """A hand-written ``sqlite3`` search over the store's file: the same SQL, nothing more."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        for pragma in (
            "PRAGMA foreign_keys = ON",
            "PRAGMA busy_timeout = 10000",
            "PRAGMA synchronous = NORMAL",
            "PRAGMA cache_size = -16384",
            "PRAGMA temp_store = MEMORY",
        ):
            self.conn.execute(pragma)
        shape = {"model": False, "status": False, "since": False}
        self.sessions_sql = {
            after: _search._sessions_sql("sqlite", "relevance", **shape, after=after)
            for after in (False, True)
        }
        # The same two-step work as the store: the best messages first, widened until
        # the page is exact (``_top_ranked``), the full window only as a fallback.
        self.top_sql = {
            after: _search._sessions_sql("sqlite", "relevance", **shape, after=after, top=True)
            for after in (False, True)
        }
        self.messages_sql = _search._messages_sql("sqlite", session=False, after=False)

    def close(self) -> None:
        self.conn.close()

    def _snippets(self, which: str, query: str, ids: list[Any]) -> dict[Any, str]:
        if not ids:
            return {}
        sql = getattr(_search, which)["sqlite"]
        params: dict[str, Any] = {
            "ids": json.dumps(ids), "query": query, "start": _search.MARK_START,
            "end": _search.MARK_END, "tokens": _search._SNIPPET_TOKENS,
        }  # fmt: skip
        return {row[0]: row[1] or "" for row in self.conn.execute(sql, params)}

    def sessions(
        self, query: str, *, limit: int = 20, after: tuple[float, str] | None = None
    ) -> tuple[list[tuple[Any, ...]], tuple[float, str] | None]:
        """One page of (session row, message id, rank, snippet), and the key of the next."""
        fts_query = _search.fts5_plain(query)
        params: dict[str, Any] = {
            "query": fts_query, "title_weight": _search.TITLE_WEIGHT, "limit": limit + 1,
        }  # fmt: skip
        if after is not None:
            params["after_a"], params["after_b"] = after
        conn = self.conn
        conn.execute("BEGIN")
        try:
            def fetch(sql: str, values: dict[str, Any]) -> list[Any]:
                return conn.execute(sql, values).fetchall()

            assert fts_query is not None
            rows = _search._top_ranked(
                fetch, self.top_sql[after is not None], params, limit, fts_query, "sqlite"
            )
            if rows is None:
                rows = fetch(self.sessions_sql[after is not None], params)
            page = rows[:limit]
            assert fts_query is not None
            snippets = self._snippets(
                "_SNIPPETS", fts_query, [r[_W] for r in page if r[_W] is not None]
            )
            titles = self._snippets(
                "_TITLE_SNIPPETS", fts_query, [r[0] for r in page if r[_W] is None]
            )
        finally:
            conn.execute("COMMIT")
        hits = [
            (
                row[:_W],
                row[_W],
                row[_W + 3],
                snippets.get(row[_W], "") if row[_W] is not None else titles.get(row[0], ""),
            )
            for row in page
        ]
        next_key = (page[-1][_W + 3], page[-1][0]) if len(rows) > limit else None
        return hits, next_key

    def messages(
        self, query: str, *, limit: int = 20
    ) -> tuple[list[tuple[Any, ...]], tuple[float, int] | None]:
        """One page of (message row, snippet), best first, and the key of the next."""
        fts_query = _search.fts5_plain(query)
        assert fts_query is not None
        conn = self.conn
        conn.execute("BEGIN")
        try:
            rows = conn.execute(
                self.messages_sql, {"query": fts_query, "limit": limit + 1, "session_id": None}
            ).fetchall()
            page = rows[:limit]
            snippets = self._snippets("_SNIPPETS", fts_query, [r[0] for r in page])
        finally:
            conn.execute("COMMIT")
        hits = [(row, snippets.get(row[0], "")) for row in page]
        next_key = (page[-1][10], page[-1][0]) if len(rows) > limit else None
        return hits, next_key

    def plan(self, query: str) -> list[str]:
        """``EXPLAIN QUERY PLAN`` of the sessions query, as indented lines."""
        rows = self.conn.execute(
            "EXPLAIN QUERY PLAN " + self.sessions_sql[False],
            {"query": _search.fts5_plain(query), "title_weight": _search.TITLE_WEIGHT,
             "limit": 21},
        ).fetchall()  # fmt: skip
        depth: dict[int, int] = {0: -1}
        lines = []
        for node, parent, _unused, detail in rows:
            depth[node] = depth.get(parent, -1) + 1
            lines.append("  " * depth[node] + str(detail))
        return lines


def main() -> int:
    started = time.perf_counter()
    path, facts, built = corpus(log=print)
    print(f"{path} ({'built' if built else 'cached'}, {time.perf_counter() - started:.1f} s)")
    print(json.dumps({k: v for k, v in asdict(facts).items() if "ids" not in k}, indent=1))
    with contextlib.closing(RawSearch(path)) as raw:
        for query in (facts.rare_term, facts.common_term):
            print(f"\nEXPLAIN QUERY PLAN (sessions, {query!r}):")
            print("\n".join(raw.plan(query)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
