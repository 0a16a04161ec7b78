"""The full-text search corpus: generated once per size, checked, and cached on disk.

:func:`corpus` builds (once, then reuses) a SQLite file of 1,000,000
messages in 50,000 sessions of 20 (the quick mode: 100,000 in 5,000),
created by :meth:`SessionStore.open` and filled by raw ``executemany`` in one
transaction on that file. The store's own insert trigger fires for every
message except for its FTS5 insert, which is replaced by one FTS5
``'rebuild'`` at the end (six times faster; the index then holds fewer,
larger segments than a million single appends would leave, and both sides
of every benchmark read that same file). So counts, totals, ``last_seq``,
titles (from the first user message), ``search_key`` and the title index
come from the store's triggers, and the build ends with
``store.health.check().ok`` (integrity, counts, and the FTS5
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
  of messages, together in about one in five hundred.

The file is cached under ``.benchmarks/search-corpus/``, keyed by the size,
the schema's head revision and a digest of this module's source (any edit to
the generator builds a new corpus, and removes the stale one of that size);
a build writes a ``.tmp`` file and renames it only when complete, next to a
JSON file of :class:`CorpusFacts` (what was planted, counts, build time).

Run it as a script to build (or find) a corpus and print its facts::

    .venv/bin/python benchmarks/search_corpus.py [SESSIONS]
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from raw_search import RawSearch

from sessionstore import SessionStore
from sessionstore.migrations import head_revision

__all__ = [
    "CACHE_DIR",
    "COMMON_RANK",
    "PAIR_RANKS",
    "RARE_SESSIONS",
    "RARE_TERM",
    "SESSIONS",
    "CorpusFacts",
    "build_corpus",
    "corpus",
    "vocabulary",
]

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
#: Draws are made from a table holding rank k ``ZIPF_SCALE / k`` times (rounded).
ZIPF_SCALE = 32_000
MODELS = (
    ("gpt-4o", "GPT-4o"),
    ("claude-3-5-sonnet", "Claude 3.5 Sonnet"),
    ("llama-3.1-70b", None),
    ("mistral-large", "Mistral Large"),
)
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / ".benchmarks" / "search-corpus"
#: The store's insert trigger, and the FTS5 insert it holds that the build defers.
INSERT_TRIGGER = "trg_messages_after_insert"
FTS_INSERT = "INSERT INTO messages_fts (rowid, content) VALUES (NEW.message_id, NEW.content);"

Log = Callable[[str], None]


@dataclass(frozen=True)
class CorpusFacts:
    """What a built corpus holds, from the generator's own bookkeeping."""

    key: str
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
    #: Each word repeated about ``ZIPF_SCALE / rank`` times: uniform draws from it are Zipf.
    table: list[str]
    common: str
    pair: tuple[str, str]
    rare: dict[int, set[int]]  # session index -> sequence numbers


def _plan(rng: random.Random, sessions: int) -> _Plan:
    words = vocabulary()
    table = [w for rank, w in enumerate(words, 1) for _ in range(round(ZIPF_SCALE / rank))]
    rare: dict[int, set[int]] = {}
    for index in rng.sample(range(sessions), RARE_SESSIONS):
        rare[index] = set(rng.sample(range(2, PER_SESSION + 1), rng.randint(1, 3)))
    return _Plan(
        words,
        table,
        words[COMMON_RANK - 1],
        (words[PAIR_RANKS[0] - 1], words[PAIR_RANKS[1] - 1]),
        rare,
    )


@dataclass
class _Tally:
    """What the generator wrote, counted as it goes."""

    messages: int = 0
    content_bytes: int = 0
    common_messages: int = 0
    pair_messages: int = 0
    common_sids: set[str] = field(default_factory=set)
    pair_sids: set[str] = field(default_factory=set)
    #: The rare term's sessions, and the sequence numbers it was written into.
    rare_seqs: dict[str, set[int]] = field(default_factory=dict)


def _block(
    rng: random.Random, plan: _Plan, block: range, tally: _Tally
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """One block of sessions: their rows, and their messages' rows in time order."""
    session_rows: list[tuple[object, ...]] = []
    ids: list[str] = []
    for index in block:
        sid = f"{rng.getrandbits(128):032x}"
        ids.append(sid)
        model_id, model_name = MODELS[index % len(MODELS)]
        created = _utc_text(EPOCH + timedelta(seconds=50 * index))
        session_rows.append((sid, model_id, model_name, created, created, created))
        if index in plan.rare:
            tally.rare_seqs[sid] = plan.rare[index]
    lengths = [
        rng.randint(6, 30) if seq % 2 else rng.randint(20, 110)
        for _ in block
        for seq in range(1, PER_SESSION + 1)
    ]
    tokens = rng.choices(plan.table, k=sum(lengths))
    rows: list[tuple[object, ...]] = []
    at = k = 0
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
                tally.common_messages += 1
                tally.common_sids.add(sid)
            if plan.pair[0] in words and plan.pair[1] in words:
                tally.pair_messages += 1
                tally.pair_sids.add(sid)
            content = _sentences(words)
            tally.content_bytes += len(content.encode("utf-8"))
            user = seq % 2 == 1
            ts = base + timedelta(seconds=90 * seq, milliseconds=rng.randint(0, 999))
            rows.append((
                _utc_text(ts), sid, seq, "user" if user else "assistant", content,
                max(1, len(content) // 4), None if user else round(rng.uniform(0.3, 25), 3),
            ))  # fmt: skip
    rows.sort(key=lambda row: str(row[0]))  # other sessions' messages land in between
    tally.messages += len(rows)
    return session_rows, rows


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


@contextlib.contextmanager
def _fts_deferred(conn: sqlite3.Connection) -> Iterator[None]:
    """The store's insert trigger without its FTS5 insert; then the trigger back, and a rebuild.

    Runs inside the caller's transaction (SQLite DDL is transactional), so a
    failed build leaves the trigger as it was.
    """
    row = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (INSERT_TRIGGER,)
    ).fetchone()
    if row is None or row[0].count(FTS_INSERT) != 1:
        raise RuntimeError(
            f"{INSERT_TRIGGER} no longer holds {FTS_INSERT!r}; update benchmarks/search_corpus.py"
        )
    original = row[0]
    conn.execute(f"DROP TRIGGER {INSERT_TRIGGER}")
    conn.execute(original.replace(FTS_INSERT, ""))
    yield
    conn.execute(f"DROP TRIGGER {INSERT_TRIGGER}")
    conn.execute(original)
    conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")


def build_corpus(path: Path, *, sessions: int = SESSIONS, log: Log | None = None) -> CorpusFacts:
    """Write the corpus at ``path`` (which must not exist) and check it is healthy."""
    if path.exists():
        raise FileExistsError(path)
    if sessions < RARE_SESSIONS:
        raise ValueError(f"a corpus needs at least {RARE_SESSIONS} sessions, not {sessions}")
    started = time.perf_counter()
    say = log or (lambda _msg: None)
    rng = random.Random(SEED)
    plan = _plan(rng, sessions)
    tally = _Tally()
    with SessionStore.open(f"sqlite:///{path}"):
        pass  # the schema, triggers and indexes, at head
    conn = _connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        with _fts_deferred(conn):
            for block_start in range(0, sessions, BLOCK):
                block = range(block_start, min(sessions, block_start + BLOCK))
                session_rows, rows = _block(rng, plan, block, tally)
                conn.executemany(
                    "INSERT INTO sessions (session_id, model_id, model_name, created_at,"
                    " updated_at, last_activity) VALUES (?, ?, ?, ?, ?, ?)",
                    session_rows,
                )
                conn.executemany(
                    "INSERT INTO messages (timestamp, session_id, sequence_number, role, content,"
                    " tokens_used, duration_seconds) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                if (block_start // BLOCK) % 10 == 9:
                    say(f"  {tally.messages:,} messages, {time.perf_counter() - started:.0f} s")
            say(f"  {tally.messages:,} messages; rebuilding the FTS5 index")
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rare_ids = sorted(
            message_id
            for sid, seqs in tally.rare_seqs.items()
            for message_id, seq in conn.execute(
                "SELECT message_id, sequence_number FROM messages WHERE session_id = ?", (sid,)
            )
            if seq in seqs
        )
    finally:
        conn.close()

    say(f"  written in {time.perf_counter() - started:.0f} s; checking health")
    with SessionStore.open(f"sqlite:///{path}") as store:
        report = store.health.check()
        if not report.ok:
            raise RuntimeError(f"the corpus is not healthy: {report.failed}")
    return CorpusFacts(
        key=corpus_key(sessions),
        head=head_revision(),
        sessions=sessions,
        messages=tally.messages,
        content_bytes=tally.content_bytes,
        file_bytes=path.stat().st_size,
        build_seconds=round(time.perf_counter() - started, 1),
        rare_term=RARE_TERM,
        rare_session_ids=sorted(tally.rare_seqs),
        rare_message_ids=rare_ids,
        common_term=plan.common,
        common_messages=tally.common_messages,
        common_sessions=len(tally.common_sids),
        pair=list(plan.pair),
        pair_messages=tally.pair_messages,
        pair_sessions=len(tally.pair_sids),
    )


# --- the cache ----------------------------------------------------------------------


def corpus_key(sessions: int) -> str:
    """The cache key: the size, the schema's head revision, and this module's source."""
    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:10]
    return f"{sessions}-{head_revision()}-{digest}"


def corpus(
    directory: Path = CACHE_DIR, *, sessions: int = SESSIONS, log: Log | None = None
) -> tuple[Path, CorpusFacts, bool]:
    """The cached corpus file and its facts, built first if missing; and whether it was built."""
    key = corpus_key(sessions)
    path = directory / f"corpus-{key}.db"
    facts_path = directory / f"corpus-{key}.json"
    if path.exists() and facts_path.exists():
        return path, CorpusFacts(**json.loads(facts_path.read_text(encoding="utf-8"))), False
    directory.mkdir(parents=True, exist_ok=True)
    # A corpus of this size from another generator or schema: never read again.
    for stale in directory.glob(f"corpus-{sessions}-*"):
        stale.unlink()
    tmp = directory / f"corpus-{key}.tmp.db"
    if log is not None:
        log(f"building the search corpus ({sessions * PER_SESSION:,} messages; cached afterwards)")
    facts = build_corpus(tmp, sessions=sessions, log=log)
    for suffix in ("-wal", "-shm"):
        if Path(f"{tmp}{suffix}").exists():
            raise RuntimeError(f"{tmp}{suffix} left behind: a connection is still open")
    tmp.rename(path)
    facts_path.write_text(json.dumps(asdict(facts), indent=1), encoding="utf-8")
    return path, facts, True


def main(argv: list[str]) -> int:
    sessions = int(argv[0]) if argv else SESSIONS
    started = time.perf_counter()
    path, facts, built = corpus(sessions=sessions, log=print)
    print(f"{path} ({'built' if built else 'cached'}, {time.perf_counter() - started:.1f} s)")
    print(json.dumps({k: v for k, v in asdict(facts).items() if "ids" not in k}, indent=1))
    with contextlib.closing(RawSearch(path)) as raw:
        for query in (facts.rare_term, facts.common_term):
            print(f"\nEXPLAIN QUERY PLAN (sessions, {query!r}):")
            print("\n".join(raw.plan(query)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
