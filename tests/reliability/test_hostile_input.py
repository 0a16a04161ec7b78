"""Hostile input at the entry points ``tests/test_bad_input.py`` does not reach.

Run on a SQLite file and on PostgreSQL. Every call below either raises the
named :class:`SessionStoreError` subclass (never a raw driver, ``TypeError``,
``OverflowError`` …) or round-trips faithfully, and the logical dump of the
whole database — every table, FTS shadow tables and lifecycle tables
included — is identical before and after the refused calls. Covered here:

* search text: ``multi-agent``, ``don't``, ``C++``, ``"unbalanced``, ``(x``,
  ``AND``, ``x OR``, ``*``, ``col:x``, emoji, CJK, SQL injection — in plain
  mode each finds exactly the planted messages; in advanced mode each gives
  results or :class:`InvalidSearchQuery`; NUL, lone surrogates, bytes, 10 KB
  of punctuation, bad limits (-1, 0, 2**63, floats), cursors and filters
  are typed errors;
* archived sessions (archived with an SQL-injection string as the reason,
  which round-trips into the history and the snapshot): every write is
  :class:`SessionArchived`, archiving twice and reactivating an active
  session are :class:`InvalidStateError`, a retried client id returns the
  stored message;
* lifecycle and export entry points with bad ids, reasons, times and counts;
  hostile text (injection strings, control and bidi characters, emoji, CJK,
  a 64 KiB title) through export → import under a new id, field for field;
* 10 MB of content: refused under the default 4 MiB limit by ``append``,
  ``append_many`` and ``edit``; with the limit raised, stored and read back
  byte for byte (``get``, ``history``, ``recent``; on SQLite also ``edit``,
  export/import and search).

Also pinned: numbers past 64 bits and a plain-int lease ttl are typed errors
from lifecycle calls; ``import_session`` validates what ``append`` validates
(content limit, NUL, ranges, source type); ``search(since=...)`` near
``datetime.min`` and an empty ``search.messages`` cursor are typed errors;
PostgreSQL rejected advanced queries are ``InvalidSearchQuery``, and a
message whose text passes a ``tsvector``'s 1 MB is stored (its first 250,000
characters are indexed).
"""

from __future__ import annotations

import base64
import io
import json
import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from sessionstore import (
    DatabaseCorruptError,
    InvalidCursor,
    InvalidInput,
    InvalidSearchQuery,
    InvalidStateError,
    NewMessage,
    Page,
    SessionArchived,
    SessionNotFound,
    SessionStore,
    SessionStoreError,
    SnapshotNotFound,
    StoreClosedError,
    StoreConfig,
)
from sessionstore.compat import SessionManager, create_session_manager
from sessionstore.errors import shown

from .conftest import logical_dump

pytestmark = pytest.mark.reliability

MiB = 1024 * 1024
INJECTIONS = (
    "'; DROP TABLE messages; --",
    "Robert'); DROP TABLE sessions;--",
    '" OR 1=1 --',
    "%s %(x)s ? :name $1 {0}",
    "*/ UNION SELECT * FROM session_snapshots /*",
)


def url_of(store: SessionStore) -> str:
    return store.engine.url.render_as_string(hide_password=False)


def outcome(call: Callable[[], Any]) -> Any:
    """What ``call`` returned, or the SessionStoreError it raised; anything else fails."""
    try:
        return call()
    except SessionStoreError as exc:
        return exc
    except BaseException as exc:
        kind = f"{type(exc).__module__}.{type(exc).__name__}"
        raise AssertionError(f"{kind} escaped instead of a typed error: {exc}") from exc


def refused(error: type[SessionStoreError], call: Callable[[], Any]) -> SessionStoreError:
    result = outcome(call)
    assert isinstance(result, error), f"{result!r:.200} instead of {error.__name__}"
    return result  # type: ignore[no-any-return]


def encoded(payload: Any) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


# --- search text ---------------------------------------------------------------------------

PLANTED = {
    "multi": "Our multi-agent planner routes requests",
    "cpp": "C++ templates compile slowly",
    "dont": "don't panic",
    "emoji": "🎉 party time 🎉",
    "cjk": "日本語のテキスト",
    "quote": 'the "unbalanced quote',
    "col": "col:x is not a column",
    "paren": "(x marks the spot",
    "evil": INJECTIONS[0],
}
# Plain mode: the planted messages each text finds, on both backends …
FINDS: dict[str, set[str]] = {
    "multi-agent": {"multi"},
    "C++": {"cpp"},
    '"unbalanced': {"quote"},
    "(x": {"col", "paren"},
    "AND": set(),
    "*": set(),
    "col:x": {"col"},
    "🎉": set(),
    "party 🎉": {"emoji"},
    "日本語のテキスト": {"cjk"},
    INJECTIONS[0]: {"evil"},
    "SELECT * FROM sessions; --": set(),
}
# … and where the engines differ: PostgreSQL's English configuration drops the
# stop words "don", "t" and "or"; FTS5 keeps every word.
FINDS_BY_DIALECT: dict[str, dict[str, set[str]]] = {
    "sqlite": {"don't": {"dont"}, "x OR": set()},
    "postgresql": {"don't": set(), "x OR": {"col", "paren"}},
}
REFUSED_QUERIES: list[Any] = [
    "\ud800",
    "half \udfff pair",
    "!@#$%^&*()" * 1024,  # 10 KB of punctuation: over the 1 KiB query limit
    b"multi-agent",
    None,
    42,
    ["multi"],
    "",
    "   \n\t",
]
BAD_LIMITS: list[Any] = [-1, 0, 1001, 2**63, 1.5, 10.0, "10", True, None]


def test_search_text_is_words_never_syntax(store: SessionStore) -> None:
    sid = store.sessions.create("m", title="search corpus").session_id
    ids = {
        store.messages.append(sid, "user", body).message_id: key for key, body in PLANTED.items()
    }
    url = url_of(store)
    before = logical_dump(url)
    search = store.search
    expected = {**FINDS, **FINDS_BY_DIALECT[store.dialect]}
    for query, keys in expected.items():
        found = outcome(lambda q=query: search.messages(q, limit=100))
        assert isinstance(found, Page), (query, found)
        assert {ids[h.message.message_id] for h in found} == keys, query
        sessions = outcome(lambda q=query: search.sessions(q, limit=100))
        assert isinstance(sessions, Page), (query, sessions)
        assert [h.session.session_id for h in sessions] == ([sid] if keys else []), query
        for call in (search.messages, search.sessions):
            advanced = outcome(lambda q=query, c=call: c(q, mode="advanced"))
            assert isinstance(advanced, Page | InvalidSearchQuery), (query, advanced)
    punctuation = "!@#$%^&*()" * 100  # 1000 bytes: under the limit, no word in it
    assert search.messages(punctuation).items == ()
    for query in REFUSED_QUERIES:
        for mode in ("plain", "advanced"):
            refused(InvalidInput, lambda q=query, m=mode: search.messages(q, mode=m))
            refused(InvalidInput, lambda q=query, m=mode: search.sessions(q, mode=m))
    # NUL: a separator like any non-word character (or, at the least, refused as input).
    nul = outcome(lambda: search.messages("multi\x00agent"))
    assert isinstance(nul, InvalidInput | Page), nul
    if isinstance(nul, Page):
        assert {ids[h.message.message_id] for h in nul} == {"multi"}
    print(f"\n{len(expected)} texts found exactly the planted messages; "
          f"{len(REFUSED_QUERIES)} refused with InvalidInput; "
          f"NUL gave {type(nul).__name__}")  # fmt: skip
    assert logical_dump(url) == before


def test_search_limits_cursors_and_filters(store: SessionStore) -> None:
    sid = store.sessions.create("m", title="t").session_id
    for i in range(3):
        store.messages.append(sid, "user", f"needle {i}")
    url = url_of(store)
    before = logical_dump(url)
    search = store.search
    for limit in BAD_LIMITS:
        refused(InvalidInput, lambda n=limit: search.messages("needle", limit=n))
        refused(InvalidInput, lambda n=limit: search.sessions("needle", limit=n))
    message_cursor = search.messages("needle", limit=1).next_cursor
    assert message_cursor is not None
    junk: list[Any] = [
        "garbage",
        "x" * 5000,
        123,
        b"bytes",
        message_cursor[:-3],
        encoded(["search-messages", "NaN", 1]),
        encoded(["search-messages", 1.0, 2**64]),
        encoded(["search-messages", 1.0, -1]),
        encoded(["search-relevance", 1.0]),
        encoded(["search-recent", "0001-01-01T00:00:00+14:00", sid]),
        encoded(["search-recent", "yesterday", sid]),
        encoded(["history", sid, 1]),
    ]
    for cursor in junk:
        refused(InvalidCursor, lambda c=cursor: search.messages("needle", cursor=c))
        refused(InvalidCursor, lambda c=cursor: search.sessions("needle", cursor=c))
        refused(InvalidCursor, lambda c=cursor: search.sessions("n", order="recent", cursor=c))
    refused(InvalidCursor, lambda: search.sessions("needle", cursor=message_cursor))
    naive = datetime(2026, 1, 1)
    for call in (
        lambda: search.sessions("needle", order="random"),  # type: ignore[arg-type]
        lambda: search.sessions("needle", mode="regex"),  # type: ignore[arg-type]
        lambda: search.messages("needle", mode="regex"),  # type: ignore[arg-type]
        lambda: search.sessions("needle", status="deleted"),
        lambda: search.sessions("needle", status=1),  # type: ignore[arg-type]
        lambda: search.sessions("needle", since=naive),
        lambda: search.sessions("needle", since="2026-01-01"),  # type: ignore[arg-type]
        lambda: search.sessions("needle", model_id=""),
        lambda: search.sessions("needle", model_id=b"m"),  # type: ignore[arg-type]
        lambda: search.sessions("needle", model_id="a\x00b"),
        lambda: search.messages("needle", session_id="\ud800"),
        lambda: search.messages("needle", session_id=7),  # type: ignore[arg-type]
    ):
        refused(InvalidInput, call)
    # Faithful, not errors: filters that match nothing, injection text as a filter value.
    assert search.messages("needle", session_id="no-such-session").items == ()
    for evil in INJECTIONS:
        assert search.sessions("needle", model_id=evil).items == ()
        assert search.messages("needle", session_id=evil).items == ()
    assert len(search.messages("needle", session_id=sid, limit=1000)) == 3
    assert logical_dump(url) == before


def test_rejected_advanced_queries_are_invalid_search_query(store: SessionStore) -> None:
    sid = store.sessions.create("m", title="t").session_id
    store.messages.append(sid, "user", "a b")
    before = logical_dump(url_of(store))
    bad = {
        "sqlite": ["NEAR(a b", "a AND", "col:x", "(" * 500 + "x" + ")" * 500],
        "postgresql": ["a <99999> b", "!" * 1000 + "x", "a &", "(x"],
    }[store.dialect]
    for query in bad:
        refused(InvalidSearchQuery, lambda q=query: store.search.messages(q, mode="advanced"))
        refused(InvalidSearchQuery, lambda q=query: store.search.sessions(q, mode="advanced"))
    assert logical_dump(url_of(store)) == before


def test_empty_cursor_is_refused_by_every_search(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    store.messages.append(sid, "user", "needle")
    refused(InvalidCursor, lambda: store.search.sessions("needle", cursor=""))
    refused(InvalidCursor, lambda: store.messages.history(sid, cursor=""))
    refused(InvalidCursor, lambda: store.search.messages("needle", cursor=""))


def test_search_since_out_of_range_is_typed(store: SessionStore) -> None:
    store.sessions.create("m", title="needle")
    since = datetime(1, 1, 1, 5, tzinfo=timezone(timedelta(hours=14)))
    result = outcome(lambda: store.search.sessions("needle", since=since))
    assert isinstance(result, InvalidInput | Page), result


# --- archived sessions and the lifecycle entry points -----------------------------------------


BAD_IDS: list[Any] = [None, "", "  ", b"id", 7, 1.5, "\ud800", "a\x00b", "x" * 256, ["id"]]


def test_archived_session_refuses_every_write(store: SessionStore) -> None:
    sid = store.sessions.create("m", title="frozen").session_id
    first = store.messages.append(sid, "user", "kept", client_msg_id="c-1")
    store.messages.append(sid, "assistant", "also kept")
    active = store.sessions.create("m").session_id
    snapshot = store.lifecycle.archive(sid, reason=INJECTIONS[0])
    assert snapshot.reason == INJECTIONS[0]
    assert store.lifecycle.history(sid)[-1].reason == INJECTIONS[0]
    assert [s.reason for s in store.lifecycle.snapshots(sid)] == [INJECTIONS[0]]
    url = url_of(store)
    before = logical_dump(url)
    m = store.messages
    for call in (
        lambda: m.append(sid, "user", "late"),
        lambda: m.append(sid, "user", "late", client_msg_id="c-2"),
        lambda: m.append_many(sid, [NewMessage("user", "late")]),
        lambda: m.append_many(sid, [{"role": "user", "content": "late", "client_msg_id": "c-3"}]),
        lambda: m.edit(first.message_id, "rewritten"),
        lambda: m.delete(first.message_id),
    ):
        error = refused(SessionArchived, call)
        assert "reactivate" in str(error)
    refused(InvalidStateError, lambda: store.lifecycle.archive(sid))
    refused(InvalidStateError, lambda: store.lifecycle.reactivate(active))
    # A retried append of a message stored before the archive returns it unchanged.
    assert m.append(sid, "user", "kept", client_msg_id="c-1") == first
    assert logical_dump(url) == before
    assert [x.content for x in m.history(sid)] == ["kept", "also kept"]
    assert store.sessions.get(sid).status == "archived"


def test_lifecycle_entry_points_refuse_bad_input(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    store.messages.append(sid, "user", "hello")
    url = url_of(store)
    before = logical_dump(url)
    life = store.lifecycle
    for bad in BAD_IDS:
        for call in (
            lambda b=bad: life.archive(b),
            lambda b=bad: life.reactivate(b),
            lambda b=bad: life.snapshots(b),
            lambda b=bad: life.history(b),
            lambda b=bad: store.export(b),
        ):
            refused(InvalidInput, call)
        if bad is not None:  # None means "every session" here
            refused(InvalidInput, lambda b=bad: life.prune_snapshots(session_id=b))
    for reason in (None, "", 5, "\ud800", "r\x00", "r" * 256):
        refused(InvalidInput, lambda r=reason: life.archive(sid, reason=r))
    for now in (datetime(2026, 1, 1), "2026-01-01", 1_700_000_000):
        refused(InvalidInput, lambda n=now: life.archive(sid, now=n))
        refused(InvalidInput, lambda n=now: life.purge(timedelta(0), now=n))
    for unknown in ("no-such-session", *INJECTIONS):
        refused(SessionNotFound, lambda u=unknown: life.archive(u))
        refused(SessionNotFound, lambda u=unknown: life.reactivate(u))
        refused(SessionNotFound, lambda u=unknown: store.export(u))
        assert life.snapshots(unknown) == [] and life.history(unknown) == []
    for snapshot in (None, 2.0, "7", b"7", -5):
        refused(InvalidInput, lambda s=snapshot: life.restore(s))
    refused(SnapshotNotFound, lambda: life.restore(2**62))
    for span in (None, 5, "1 day", timedelta(seconds=-1)):
        refused(InvalidInput, lambda s=span: life.purge(s))
    for keep in (None, "1", 0, 2.5):
        refused(InvalidInput, lambda k=keep: life.prune_snapshots(keep=k))
    for fmt in (None, "JSON", "xml", b"json"):
        refused(InvalidInput, lambda f=fmt: store.export(sid, format=f))
    assert logical_dump(url) == before


def test_lifecycle_integers_past_64_bits_are_invalid_input(store: SessionStore) -> None:
    before = logical_dump(url_of(store))
    result = outcome(lambda: store.lifecycle.restore(2**63))
    assert isinstance(result, InvalidInput | SnapshotNotFound), result
    pruned = outcome(lambda: store.lifecycle.prune_snapshots(keep=2**63))
    assert isinstance(pruned, InvalidInput) or pruned == 0, pruned
    assert logical_dump(url_of(store)) == before


def test_lease_with_a_bad_ttl_is_invalid_input(store: SessionStore) -> None:
    before = logical_dump(url_of(store))
    for ttl in (5, timedelta.max, None):
        refused(InvalidInput, lambda t=ttl: store.lifecycle.acquire_lease("sweeper", "me", t))
    assert logical_dump(url_of(store)) == before


# --- export and import --------------------------------------------------------------------


HOSTILE_TEXT = (
    *INJECTIONS,
    "emoji 🎉👩‍👩‍👧‍👦 and CJK 日本語のテキスト",
    "control \x01\x02\x1b[31m\x7f and bidi \u202e\u2066 line\u2028separator",
    "combining e\u0301 and zero width \u200b\u200d",
    "\ufeffBOM first",
    'quote " backslash \\ slash / braces {} ```fence```',
)


def test_hostile_text_round_trips_through_export_and_import(store: SessionStore) -> None:
    title = "T" * (64 * 1024)  # the largest title accepted
    metadata = {evil: evil for evil in INJECTIONS}
    sid = store.sessions.create(INJECTIONS[1], title=title, metadata=metadata).session_id
    for i, body in enumerate(HOSTILE_TEXT):
        store.messages.append(
            sid, ("user", "assistant", "tool", "system")[i % 4], body,
            metadata={body: body}, client_msg_id=f"{body[:40]}#{i}",
        )  # fmt: skip
    exported = store.export(sid)
    assert isinstance(exported, str)
    copy = store.import_session(exported, session_id=INJECTIONS[2])
    doc, again = json.loads(exported), json.loads(store.export(copy.session_id) or "")
    for document in (doc, again):
        document["session"].pop("session_id")
        for message in document["messages"]:
            message.pop("message_id")
    assert again == doc
    stored = [(m.content, m.metadata) for m in store.messages.history(copy.session_id)]
    assert stored == [(body, {body: body}) for body in HOSTILE_TEXT]
    assert store.sessions.metadata(copy.session_id) == metadata
    assert store.sessions.get(copy.session_id).title == title
    markdown = store.export(sid, "markdown") or ""
    assert all(body.rstrip("\n") in markdown for body in HOSTILE_TEXT)
    print(f"\n{len(HOSTILE_TEXT)} hostile messages and a {len(title)}-character title "
          "round-tripped through export/import")  # fmt: skip


def _exported_document(store: SessionStore) -> dict[str, Any]:
    sid = store.sessions.create("m", title="t").session_id
    store.messages.append(sid, "user", "hello")
    return json.loads(store.export(sid) or "")  # type: ignore[no-any-return]


def _variant(doc: dict[str, Any], where: str, key: str, value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(doc))
    target = copy["messages"][0] if where == "message" else copy[where]
    target[key] = value
    return copy  # type: ignore[no-any-return]


def test_import_refuses_what_append_refuses(store: SessionStore) -> None:
    doc = _exported_document(store)
    before = logical_dump(url_of(store))
    cases = {
        "content over 4 MiB": ("message", "content", "x" * (4 * MiB + 1)),
        "NUL in a role": ("message", "role", "a\x00b"),
        "NUL in title": ("session", "title", "a\x00b"),
        "NUL in a metadata value": ("metadata", "k", "v\x00"),
        "negative tokens": ("message", "tokens", -5),
        "infinite duration": ("message", "duration", float("inf")),
        "1000-character client id": ("message", "client_msg_id", "c" * 1000),
    }
    wrong = {}
    for i, (name, (where, key, value)) in enumerate(cases.items()):
        result = outcome(
            lambda w=where, k=key, v=value, n=i: store.import_session(
                _variant(doc, w, k, v), session_id=f"imported-{n}"
            )
        )
        if not isinstance(result, InvalidInput):
            wrong[name] = type(result).__name__
    print(f"\nimport accepted or mis-typed: {wrong}")
    assert wrong == {}
    assert logical_dump(url_of(store)) == before


def test_import_of_malformed_documents_is_invalid_input(store: SessionStore) -> None:
    doc = _exported_document(store)
    before = logical_dump(url_of(store))
    sources: dict[str, Any] = {
        "a list": [doc],
        "None": None,
        "an int": 5,
        "deeply nested JSON": "[" * 100_000 + "]" * 100_000,
        "sequence 2**63": _variant(doc, "message", "sequence_number", 2**63),
        "tokens 2**63": _variant(doc, "message", "tokens", 2**63),
        "last_seq 2**63": _variant(doc, "session", "last_seq", 2**63),
        "idle_timeout 1e308": _variant(doc, "session", "idle_timeout", 1e308),
        "timestamp before year 1 in UTC": _variant(
            doc, "message", "timestamp", "0001-01-01T00:00:00+01:00"
        ),
    }
    wrong = {}
    for i, (name, source) in enumerate(sources.items()):
        try:
            store.import_session(source, session_id=f"malformed-{i}")
        except InvalidInput:
            continue
        except BaseException as exc:
            wrong[name] = type(exc).__name__
        else:
            wrong[name] = "accepted"
    print(f"\nmalformed imports not refused with InvalidInput: {wrong}")
    assert wrong == {}
    assert logical_dump(url_of(store)) == before


# --- 10 MB of content -----------------------------------------------------------------------


def ten_megabytes(seed: int) -> str:
    words = ["lorem", "ipsum", "dolor", "🎉", "日本語", "naïve", "C++", "don't", "\n", "\t"]
    rnd = random.Random(seed)
    chunk = " ".join(rnd.choice(words) for _ in range(20_000))
    body = (chunk * (10 * MiB // len(chunk.encode()) + 1)).encode()[: 10 * MiB - 32]
    return body.decode("utf-8", errors="ignore") + f" marker{seed}zz"


def test_ten_megabytes_refused_by_default(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    first = store.messages.append(sid, "user", "small")
    big = ten_megabytes(1)
    assert len(big.encode()) > store.config.max_content_bytes == 4 * MiB
    url = url_of(store)
    before = logical_dump(url)
    m = store.messages
    refused(InvalidInput, lambda: m.append(sid, "user", big))
    batch: list[Any] = [NewMessage("user", "ok"), {"role": "user", "content": big}]
    refused(InvalidInput, lambda: m.append_many(sid, batch))
    refused(InvalidInput, lambda: m.edit(first.message_id, big))
    assert logical_dump(url) == before


def test_ten_megabytes_round_trip_under_a_raised_limit(backend_url: str) -> None:
    big, other = ten_megabytes(2), ten_megabytes(3)
    with SessionStore.open(backend_url, max_content_bytes=16 * MiB) as store:
        sid = store.sessions.create("m", title="big").session_id
        record = store.messages.append(sid, "assistant", big, tokens=1)
        assert store.messages.get(record.message_id).content == big
        assert [m.content for m in store.messages.history(sid)] == [big]
        assert [m.content for m in store.messages.recent(sid, 1)] == [big]
        if store.dialect == "sqlite":
            # Each 10 MB write costs ~2 s on PostgreSQL (tsvector, TOAST): there, one is enough.
            edited = store.messages.edit(record.message_id, other)
            assert edited.content == other
            assert store.messages.get(record.message_id).content == other
            copy = store.import_session(store.export(sid) or "", session_id="copy")
            assert [m.content for m in store.messages.history(copy.session_id)] == [other]
            hits = store.search.messages("marker3zz", limit=10)
            assert sorted(h.message.session_id for h in hits) == sorted([sid, "copy"])
        print(f"\n{store.dialect}: {len(big.encode())} bytes stored and read back exactly")
        assert store.health.check().ok


def test_large_message_of_distinct_words_within_the_limit(store: SessionStore) -> None:
    rnd = random.Random(4)
    body = " ".join(f"w{rnd.getrandbits(40):x}" for _ in range(120_000))[: 1536 * 1024]
    assert len(body.encode()) < store.config.max_content_bytes
    sid = store.sessions.create("m").session_id
    stored = outcome(lambda: store.messages.append(sid, "user", body))
    assert not isinstance(stored, SessionStoreError), stored
    assert store.messages.get(stored.message_id).content == body


# --- the objects a store is built from, the scheduler, the legacy manager -------------------


def test_store_options_of_the_wrong_type_or_range_are_invalid_input(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once, ``pool_size=inf`` opened a store that raised OverflowError on close."""
    monkeypatch.chdir(tmp_path)
    bad: list[dict[str, Any]] = [
        {"pool_size": math.inf},
        {"pool_size": None},
        {"pool_size": True},
        {"pool_size": "5"},
        {"max_overflow": -1},
        {"pool_timeout": math.nan},
        {"pool_timeout": None},
        {"busy_timeout": 2**63},
        {"busy_timeout": math.nan},
        {"busy_timeout": timedelta.max},
        {"cache_size_kib": [[1]]},
        {"max_content_bytes": 2**64},
        {"synchronous": []},
        {"engine_options": None},
        {"no_such_option": 1},
    ]
    for options in bad:
        refused(InvalidInput, lambda o=options: SessionStore.open(sqlite_url, **o))
        refused(InvalidInput, lambda o=options: StoreConfig.from_env(sqlite_url, **o))
        refused(InvalidInput, lambda o=options: StoreConfig(url=sqlite_url).with_options(**o))
    refused(InvalidInput, lambda: StoreConfig(url=5))  # type: ignore[arg-type]
    refused(InvalidInput, lambda: StoreConfig.from_env(b"sqlite://"))  # type: ignore[arg-type]
    with SessionStore.open(sqlite_url) as store:
        refused(InvalidInput, lambda: SessionStore.from_config(None))  # type: ignore[arg-type]
        refused(InvalidInput, lambda: SessionStore.from_engine(None))  # type: ignore[arg-type]
        refused(InvalidInput, lambda: SessionStore.from_engine(store.engine, pool_size=0))
        refused(InvalidInput, lambda: SessionStore.open(sqlite_url, clock=42))  # type: ignore[arg-type]
        before = logical_dump(sqlite_url)
        # Alembic walks any iterable it is given as revisions: range(10**20) never ended.
        for target in (range(10**20), [], set(), None, "", 7):
            refused(InvalidInput, lambda t=target: store.upgrade(t))
        assert logical_dump(sqlite_url) == before


def test_scheduler_refuses_intervals_and_retentions_out_of_range(sqlite_url: str) -> None:
    with SessionStore.open(sqlite_url) as store:
        for every in (timedelta.max, timedelta(days=31), timedelta(0), [[1]], None):
            refused(InvalidInput, lambda e=every: store.lifecycle.start_scheduler(e))
        for retention in (5, timedelta(0), timedelta.max, "30d"):
            refused(
                InvalidInput,
                lambda r=retention: store.lifecycle.start_scheduler(
                    timedelta(hours=1), purge_after=r
                ),
            )
        scheduler = store.lifecycle.start_scheduler(timedelta(days=30), purge_after=None)
        scheduler.stop()
    # A closed store starts no thread that would fail every turn.
    refused(StoreClosedError, lambda: store.lifecycle.start_scheduler(timedelta(hours=1)))


def test_legacy_manager_refuses_what_it_cannot_pass_to_sql(tmp_path: Path) -> None:
    path = tmp_path / ".ai-router-sessions.db"
    with SessionManager(path) as manager:
        sid = manager.create_session("gpt", title="t")
        manager.add_message(sid, "user", "needle")
        url = f"sqlite:///{path}"
        before = logical_dump(url)
        for call in (
            lambda: manager.list_sessions(limit=2**64),
            lambda: manager.list_sessions(offset=-(2**64)),
            lambda: manager.list_sessions(limit="5"),  # type: ignore[arg-type]
            lambda: manager.list_sessions(model_filter=b"gpt"),  # type: ignore[arg-type]
            lambda: manager.search_sessions(None),  # type: ignore[arg-type]
            lambda: manager.search_sessions("needle", limit=2**63),
            lambda: manager.search_sessions("\ud800"),
            lambda: manager.cleanup_old_sessions(10**400),
            lambda: manager.cleanup_old_sessions(math.nan),
            lambda: manager.cleanup_old_sessions(-(10**7)),
            lambda: manager.export_session(sid, format=object()),  # type: ignore[arg-type]
        ):
            refused(InvalidInput, call)
        assert logical_dump(url) == before
        assert len(manager.list_sessions(limit=-1)) == 1  # SQLite's "no limit", as before
        assert [s["session_id"] for s in manager.search_sessions("needle")] == [sid]
    refused(InvalidInput, lambda: SessionManager(None))  # type: ignore[arg-type]
    refused(InvalidInput, lambda: SessionManager(b"x.db"))  # type: ignore[arg-type]
    refused(InvalidInput, lambda: create_session_manager(42))  # type: ignore[arg-type]


def test_error_messages_stay_short_whatever_the_value(sqlite_url: str) -> None:
    """A 1 MB id or a list nested 5,000 deep is named briefly, never repr'd whole."""
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    with SessionStore.open(sqlite_url) as store:
        for value in ("x" * (1024 * 1024), deep, 10**5000):
            for call in (
                lambda v=value: store.sessions.list(cursor=v),
                lambda v=value: store.lifecycle.start_scheduler(v),
                lambda v=value: SessionStore.open(sqlite_url, pool_size=v),
            ):
                error = refused(InvalidInput, call)
                assert len(str(error)) < 500, str(error)[:200]
    assert len(shown("x" * 10**6)) < 400
    assert shown(deep) == "[[[[...]]]]"


def test_stats_totals_past_64_bits_are_exact_and_finite(store: SessionStore) -> None:
    """Totals adopted from a legacy file can sum past 2**63 (SQLite's SUM overflowed)."""
    for model in ("gpt", "gpt", "llama"):
        store.sessions.create(model)
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE sessions SET total_tokens = :tokens, total_duration_seconds = 1e308"
                " WHERE model_id = 'gpt'"
            ),
            {"tokens": 2**62},
        )
    stats = outcome(store.stats)
    assert not isinstance(stats, SessionStoreError), stats
    assert stats.tokens == 2**63
    assert [(m.model_id, m.sessions, m.tokens) for m in stats.by_model] == [
        ("gpt", 2, 2**63),
        ("llama", 1, 0),
    ]
    assert math.isfinite(stats.duration_seconds)
    assert all(math.isfinite(m.duration_seconds) for m in stats.by_model)


def test_stored_timestamps_in_foreign_forms_are_read_or_typed(sqlite_url: str) -> None:
    """A legacy row's time as ISO text with Z or an offset, or Unix seconds, is read;
    text that is no time at all is DatabaseCorruptError, not a ValueError."""
    with SessionStore.open(sqlite_url) as store:
        sid = store.sessions.create("m").session_id
        store.messages.append(sid, "user", "hi")
        reads: list[Callable[[], Any]] = [
            lambda: store.sessions.get(sid).last_activity,
            lambda: store.sessions.list().items[0].last_activity,
            lambda: store.messages.history(sid).items[0].timestamp,
            lambda: store.stats().last_activity,
        ]
        expected = {
            "2024-01-01T00:00:00Z": datetime(2024, 1, 1, tzinfo=UTC),
            "2024-01-01 02:00:00+02:00": datetime(2024, 1, 1, tzinfo=UTC),
            1704067200: datetime(2024, 1, 1, tzinfo=UTC),
            "yesterday": DatabaseCorruptError,
            1e300: DatabaseCorruptError,
        }
        for stored, want in expected.items():
            with store.engine.begin() as conn:
                conn.execute(text("UPDATE sessions SET last_activity = :v"), {"v": stored})
                conn.execute(text("UPDATE messages SET timestamp = :v"), {"v": stored})
            for read in reads:
                got = outcome(read)
                if isinstance(want, datetime):
                    assert got == want, (stored, got)
                else:
                    assert isinstance(got, want), (stored, got)


def test_arguments_the_fuzz_found_unchecked(sqlite_url: str, tmp_path: Path) -> None:
    """Each of these once escaped as a TypeError, AttributeError or ValueError."""
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    closed = io.StringIO()
    closed.close()
    with SessionStore.open(sqlite_url) as store:
        sid = store.sessions.create("m").session_id
        before = logical_dump(sqlite_url)
        record = store.sessions.get(sid)
        for call in (
            lambda: store.lifecycle.due(None, datetime.now(UTC)),  # type: ignore[arg-type]
            lambda: store.lifecycle.due(record, None),  # type: ignore[arg-type]
            lambda: store.lifecycle.due(record, datetime(2026, 1, 1)),
            lambda: store.export(sid, object()),  # type: ignore[arg-type]
            lambda: store.export(sid, "json", closed),
            lambda: store.messages.append_many(sid, io.StringIO("user\n")),  # type: ignore[arg-type]
            lambda: store.sessions.list(limit=deep),  # type: ignore[arg-type]
            lambda: store.lifecycle.sweep(deep),  # type: ignore[arg-type]
            lambda: store.sessions.count(status=deep),  # type: ignore[arg-type]
            lambda: SessionStore.open(sqlite_url, engine_options={"no_such_argument": 1}),
            lambda: SessionStore.open(f"sqlite:///{tmp_path}/a\x00b.db"),
            lambda: SessionStore.open(f"sqlite:///{tmp_path}/\ud800.db"),
        ):
            refused(InvalidInput, call)
        assert logical_dump(sqlite_url) == before
