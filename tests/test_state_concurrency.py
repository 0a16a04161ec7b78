"""Concurrent state updates lose nothing: 8 processes, one session, one user, one app.

Eight processes, each with its own store (its own pool), apply deltas at once
to the same session's state: keys of their own, keys every process writes,
and removals of their own. A read-modify-write in Python would lose other
writers' keys; a merge in the database keeps every one. The same runs on a
user's and an app's state, and through ``messages.append(state_delta=...)``.
Run on a SQLite file and on PostgreSQL.
"""

from __future__ import annotations

import multiprocessing
import traceback
from typing import Any

from sessionstore import SessionStore, StateDelta

WORKERS = 8
ROUNDS = 20


def _worker(url: str, sid: str, index: int, barrier: Any, errors: Any) -> None:
    try:
        with SessionStore.open(url, upgrade=False) as store:
            barrier.wait(timeout=60)
            for j in range(ROUNDS):
                store.state.update(sid, {f"w{index}-{j}": j, "shared": index, f"scratch{index}": j})
                store.state.update_user("app", "ann", {f"w{index}-{j}": j, "shared": index})
                store.state.update_app("app", {f"w{index}-{j}": j, "shared": index})
                store.messages.append(
                    sid,
                    "user",
                    f"{index}/{j}",
                    state_delta=StateDelta(
                        session={f"event{index}": j},
                        user={f"event{index}": j},
                        app={f"event{index}": j},
                    ),
                )
            store.state.update(sid, {}, remove=[f"scratch{index}"])
    except BaseException:
        errors.put(traceback.format_exc())


def test_no_update_is_lost(backend_url: str) -> None:
    with SessionStore.open(backend_url) as store:
        sid = store.sessions.create("gpt", app="app", user_id="ann").session_id
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(WORKERS)
    errors = context.Queue()
    workers = [
        context.Process(target=_worker, args=(backend_url, sid, i, barrier, errors))
        for i in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=180)
        assert worker.exitcode == 0, worker.exitcode
    assert errors.empty(), errors.get()

    every = {f"w{i}-{j}": j for i in range(WORKERS) for j in range(ROUNDS)}
    events = {f"event{i}": ROUNDS - 1 for i in range(WORKERS)}
    with SessionStore.open(backend_url) as store:
        session = store.state.get(sid)
        user = store.state.get_user("app", "ann")
        app = store.state.get_app("app")
        assert store.sessions.get(sid).message_count == WORKERS * ROUNDS
    for scope in (session, user, app):
        assert scope.pop("shared") in range(WORKERS)  # one writer's, whole
        assert scope == every | events  # every writer's keys present, scratch keys removed
