"""Values at the edges of what a call accepts: a typed error, and nothing stored changes.

Run on a SQLite file and on PostgreSQL: an unhashable metadata key, lease
names and holders that are not text (a 2**64 integer once overflowed the
driver), durations past any float, and integers too long to print.
"""

from __future__ import annotations

from typing import Any

import pytest

from sessionstore import InvalidInput, SessionStore

from .reliability.conftest import logical_dump


def url_of(store: SessionStore) -> str:
    return store.engine.url.render_as_string(hide_password=False)


def test_set_metadata_with_a_key_that_is_not_text(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    before = logical_dump(url_of(store))
    bad: Any
    for bad in ({}, [], 5, None, b"k", "", " "):
        with pytest.raises(InvalidInput):
            store.sessions.set_metadata(sid, bad, "v")
    assert logical_dump(url_of(store)) == before
    store.sessions.set_metadata(sid, "k", "v")
    assert store.sessions.metadata(sid) == {"k": "v"}


def test_release_lease_refuses_what_acquire_refuses(store: SessionStore) -> None:
    before = logical_dump(url_of(store))
    bad: Any
    for bad in (2**64, -(2**70), None, "", "a\x00b", "x" * 256):
        with pytest.raises(InvalidInput):
            store.lifecycle.release_lease(bad, "me")
        with pytest.raises(InvalidInput):
            store.lifecycle.release_lease("sweeper", bad)
    assert logical_dump(url_of(store)) == before


def test_numbers_too_big_for_a_float_or_a_printout(store: SessionStore) -> None:
    sid = store.sessions.create("m").session_id
    before = logical_dump(url_of(store))
    huge = 10**5000  # past Python's limit for printing an int
    for value in (10**400, huge, -huge):
        with pytest.raises(InvalidInput):
            store.messages.append(sid, "user", "x", duration=value)
        with pytest.raises(InvalidInput):
            store.messages.append(sid, "user", "x", tokens=value)
        with pytest.raises(InvalidInput):
            store.messages.history(sid, limit=value)
        with pytest.raises(InvalidInput):
            store.messages.get(value)
    assert logical_dump(url_of(store)) == before
