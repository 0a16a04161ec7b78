"""Only an id's newest snapshot comes back under that id, even when no number changed.

An edit, a rename or new metadata leaves ``last_seq`` and the message count as
they were, so neither the archived session's counts nor the id's high-water
mark tells an older snapshot from the newest one. Restoring the older one
would silently undo an acknowledged edit. On SQLite and PostgreSQL, over an
archived session and over a purged one: :class:`SnapshotSuperseded`, nothing
changed, and the newest snapshot (or a copy under a new id) still restores.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from sessionstore import SessionStore, SnapshotSuperseded

from .reliability.conftest import logical_dump


def _edited_after_a_snapshot(store: SessionStore) -> tuple[str, int, int]:
    """A session archived twice, edited in between (no new message); both snapshot ids."""
    sid = store.sessions.create("m", title="first title").session_id
    message = store.messages.append(sid, "user", "as first written")
    older = store.lifecycle.archive(sid).snapshot_id
    store.lifecycle.reactivate(sid)
    store.messages.edit(message.message_id, "as corrected")
    store.sessions.rename(sid, "second title")
    newer = store.lifecycle.archive(sid).snapshot_id
    return sid, older, newer


@pytest.mark.parametrize("state", ["archived", "purged"])
def test_an_older_snapshot_never_undoes_an_edit(store: SessionStore, state: str) -> None:
    sid, older, newer = _edited_after_a_snapshot(store)
    if state == "purged":
        store.lifecycle.purge(timedelta(0))
    url = store.engine.url.render_as_string(hide_password=False)
    before = logical_dump(url)
    with pytest.raises(SnapshotSuperseded, match=f"snapshot {newer} of that id is newer"):
        store.lifecycle.restore(older)
    assert logical_dump(url) == before

    restored = store.lifecycle.restore(newer)
    assert restored.title == "second title"
    assert [m.content for m in store.messages.history(sid).items] == ["as corrected"]
    copy = store.lifecycle.restore(older, session_id=f"{sid}-as-first")
    assert [m.content for m in store.messages.history(copy.session_id).items] == [
        "as first written"
    ]
