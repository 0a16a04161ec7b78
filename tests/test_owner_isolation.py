"""The cross-owner battery: every public method of a scoped view, on another owner's data.

Alice (app ``app``, user ``alice``) has an active session with messages,
metadata and state, an archived one with two snapshots, and a purged one.
Each attacker's view (another user of the same app, the same user name in
another app, and another app's app-wide view) then calls **every public
method** of its scoped view and of its transaction's repositories, found by
introspection: a method without an entry in ``CASES`` fails the test.

A call aimed at Alice's session, message, snapshot or state is also made
with ids that do not exist; the two outcomes must be the same (same error
class, same text once the ids are blanked; or the same empty result). A call
that names nothing (listings, search, stats, sweeps) must return none of
Alice's rows or counts. After every call Alice's data, dumped through the
admin connection, must be what it was. The count of calls and of leaks is
printed; the test asserts 0 leaks, on SQLite, PostgreSQL, and PostgreSQL
with row-level security on (the views then run as an ordinary role, since
PostgreSQL never applies the policies to a superuser).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from sessionstore import SessionStore, SessionStoreError, Transaction
from sessionstore.scheduler import Scheduler
from sessionstore.scoped import ScopedStore

from .test_rls import restricted_url

APP, ALICE = "app", "alice"
SECRET = "ALICE-SECRET"
SHARED = "APP-SHARED-STATE"
FAR = datetime(2200, 1, 1, tzinfo=UTC)
# Whose view attacks: another user of the app, the same user name in another app,
# and another app's app-wide view.
ATTACKERS = [("app", "bob"), ("other", ALICE), ("other", None)]


@dataclass
class Target:
    """The ids a call is aimed at: Alice's, or ones that exist nowhere."""

    sid: str
    archived: str
    mid: int
    snap: int
    cid: str
    app: str
    user: str


MISSING = Target("missing-active", "missing-archived", 987_654_321, 987_654_322, "missing-cid",
                 "missing-app", "missing-user")  # fmt: skip


@dataclass
class World:
    admin: SessionStore
    views: SessionStore  # the store the views come from (a restricted role under RLS)
    dumps: Engine
    tmp: Path
    alice: Target
    attacker: tuple[str, str | None]
    own_sid: str = ""
    own_snap: int = 0
    #: Another session of the attacker's: a taken id of their own, to compare with.
    own_other: str = ""
    calls: int = 0
    leaks: list[str] = field(default_factory=list)
    namespace: int = 0

    def view(self) -> ScopedStore:
        return self.views.for_user(*self.attacker)


Call = Callable[[Any, Target, World], Any]


@dataclass(frozen=True)
class Case:
    """How to call one method. ``aimed``: at a target (compared with missing ids);
    otherwise a scan, whose result must hold nothing of Alice's."""

    calls: tuple[Call, ...]
    aimed: bool = True
    #: Chosen-id creation: the id namespace is global (SessionExists, documented).
    namespace: bool = False


def aimed(*calls: Call) -> Case:
    return Case(calls)


def scan(*calls: Call) -> Case:
    return Case(calls, aimed=False)


def chosen(*calls: Call) -> Case:
    return Case(calls, namespace=True)


def _purged(target: Target) -> str:
    """Alice's purged session's id (retired: its snapshots remain), or the attacker's own."""
    return target.sid.replace("active", "purged")


def _json_doc(world: World) -> str:
    text_ = world.admin.export(world.own_sid)
    assert text_ is not None
    return text_


# One entry per public method of the view and its repositories.
CASES: dict[str, Case | tuple[Case, ...]] = {
    "store.export": aimed(lambda v, t, w: v.export(t.sid)),
    "store.export_file": aimed(
        lambda v, t, w: v.export_file(t.sid, w.tmp / f"export-{w.calls}.json")
    ),
    "store.import_session": chosen(
        lambda v, t, w: v.import_session(_json_doc(w), session_id=t.sid),
        lambda v, t, w: v.import_session(_json_doc(w), session_id=_purged(t)),
    ),
    "store.stats": scan(lambda v, t, w: v.stats()),
    "store.transaction": scan(lambda v, t, w: _empty_transaction(v)),
    "sessions.create": chosen(
        lambda v, t, w: v.sessions.create("m", session_id=t.sid),
        lambda v, t, w: v.sessions.create("m", session_id=_purged(t)),
    ),
    "sessions.get": aimed(lambda v, t, w: v.sessions.get(t.sid)),
    "sessions.exists": aimed(lambda v, t, w: v.sessions.exists(t.sid)),
    "sessions.fork": (
        aimed(
            lambda v, t, w: v.sessions.fork(t.sid, 1),
            lambda v, t, w: v.sessions.fork(t.sid, 1, new_session_id=f"fork-{w.calls}"),
        ),
        chosen(
            lambda v, t, w: v.sessions.fork(w.own_sid, 1, new_session_id=t.sid),
            lambda v, t, w: v.sessions.fork(w.own_sid, 1, new_session_id=_purged(t)),
        ),
    ),
    "sessions.list": scan(
        lambda v, t, w: v.sessions.list(limit=100),
        lambda v, t, w: v.sessions.list(app=APP, user_id=ALICE),
        lambda v, t, w: v.sessions.list(app=APP),
        lambda v, t, w: v.sessions.list(status="archived"),
    ),
    "sessions.count": scan(
        lambda v, t, w: v.sessions.count(),
        lambda v, t, w: v.sessions.count(app=APP, user_id=ALICE),
        lambda v, t, w: v.sessions.count(status="archived"),
    ),
    "sessions.rename": aimed(lambda v, t, w: v.sessions.rename(t.sid, "x")),
    "sessions.delete": aimed(lambda v, t, w: v.sessions.delete(t.sid)),
    "sessions.set_metadata": aimed(lambda v, t, w: v.sessions.set_metadata(t.sid, "k", "v")),
    "sessions.delete_metadata": aimed(lambda v, t, w: v.sessions.delete_metadata(t.sid, "k")),
    "sessions.get_metadata": aimed(
        lambda v, t, w: v.sessions.get_metadata(t.sid, "k"),
        lambda v, t, w: v.sessions.get_metadata(t.sid, "nope", "default"),
    ),
    "sessions.metadata": aimed(lambda v, t, w: v.sessions.metadata(t.sid)),
    "messages.append": aimed(
        lambda v, t, w: v.messages.append(t.sid, "user", "x"),
        lambda v, t, w: v.messages.append(t.sid, "user", "x", client_msg_id=t.cid),
    ),
    "messages.append_many": aimed(
        lambda v, t, w: v.messages.append_many(t.sid, [{"role": "user", "content": "x"}])
    ),
    "messages.get": aimed(lambda v, t, w: v.messages.get(t.mid)),
    "messages.history": aimed(lambda v, t, w: v.messages.history(t.sid)),
    "messages.recent": aimed(lambda v, t, w: v.messages.recent(t.sid, 10)),
    "messages.items": aimed(
        lambda v, t, w: v.messages.items(t.sid),
        lambda v, t, w: v.messages.items(t.sid, last=3),
    ),
    "messages.window": aimed(lambda v, t, w: v.messages.window(t.sid, 10_000)),
    "messages.get_by_client_id": aimed(lambda v, t, w: v.messages.get_by_client_id(t.sid, t.cid)),
    "messages.delete_by_client_id": aimed(
        lambda v, t, w: v.messages.delete_by_client_id(t.sid, t.cid)
    ),
    "messages.iterate": aimed(
        lambda v, t, w: list(v.messages.iterate(t.sid)),
        lambda v, t, w: list(v.messages.iterate(t.sid, batch=1, after=1)),
    ),
    "messages.since": aimed(
        lambda v, t, w: v.messages.since(t.sid, datetime(2000, 1, 1, tzinfo=UTC))
    ),
    "messages.clear": aimed(lambda v, t, w: v.messages.clear(t.sid)),
    "messages.pop": aimed(lambda v, t, w: v.messages.pop(t.sid)),
    "messages.edit": aimed(lambda v, t, w: v.messages.edit(t.mid, "x")),
    "messages.delete": aimed(lambda v, t, w: v.messages.delete(t.mid)),
    "search.sessions": scan(
        lambda v, t, w: v.search.sessions("secret routers"),
        lambda v, t, w: v.search.sessions("secret", order="recent"),
        lambda v, t, w: v.search.sessions("secret", app=APP, user_id=ALICE),
        lambda v, t, w: v.search.sessions("secret", mode="advanced"),
    ),
    "search.messages": scan(
        lambda v, t, w: v.search.messages("secret"),
        lambda v, t, w: v.search.messages("secret", app=APP, user_id=ALICE),
        lambda v, t, w: v.search.messages("routers", session_id="alice-active"),
    ),
    "state.get": aimed(lambda v, t, w: v.state.get(t.sid)),
    "state.get_many": aimed(
        lambda v, t, w: v.state.get_many([t.sid]),
        lambda v, t, w: v.state.get_many([t.sid, t.archived, w.own_sid]),
    ),
    "state.update": aimed(lambda v, t, w: v.state.update(t.sid, {"k": 1})),
    "state.merged": aimed(lambda v, t, w: v.state.merged(t.sid)),
    # A user of Alice's app: whether Alice exists must not show.
    "state.get_user": aimed(lambda v, t, w: v.state.get_user(APP, t.user)),
    "state.update_user": aimed(lambda v, t, w: v.state.update_user(APP, t.user, {"k": 1})),
    "state.get_app": aimed(lambda v, t, w: v.state.get_app(t.app)),
    "state.update_app": aimed(lambda v, t, w: v.state.update_app(t.app, {"k": 1})),
    "lifecycle.due": scan(lambda v, t, w: v.lifecycle.due(w.views.sessions.get(w.own_sid), FAR)),
    "lifecycle.expiring": scan(
        lambda v, t, w: v.lifecycle.expiring(timedelta(days=36_000), now=datetime.now(UTC))
    ),
    "lifecycle.set_timeouts": aimed(
        lambda v, t, w: v.lifecycle.set_timeouts(t.sid, idle_timeout=timedelta(minutes=1)),
        lambda v, t, w: v.lifecycle.set_timeouts(t.sid),
    ),
    "lifecycle.sweep": scan(
        lambda v, t, w: v.lifecycle.sweep(FAR, dry_run=True),
        lambda v, t, w: v.lifecycle.sweep(FAR),
    ),
    "lifecycle.archive": aimed(lambda v, t, w: v.lifecycle.archive(t.sid)),
    "lifecycle.reactivate": aimed(lambda v, t, w: v.lifecycle.reactivate(t.archived)),
    "lifecycle.purge": scan(
        lambda v, t, w: v.lifecycle.purge(timedelta(0), FAR),
        lambda v, t, w: v.lifecycle.purge(timedelta(0), FAR, app=APP, user_id=ALICE),
    ),
    "lifecycle.restore": (
        aimed(
            lambda v, t, w: v.lifecycle.restore(t.snap),
            lambda v, t, w: v.lifecycle.restore(t.snap, session_id=f"copy-{w.calls}"),
        ),
        chosen(
            lambda v, t, w: v.lifecycle.restore(w.own_snap, session_id=t.sid),
            lambda v, t, w: v.lifecycle.restore(w.own_snap, session_id=_purged(t)),
        ),
    ),
    "lifecycle.snapshots": aimed(
        lambda v, t, w: v.lifecycle.snapshots(t.archived),
        lambda v, t, w: v.lifecycle.snapshots(t.sid.replace("active", "purged")),
    ),
    "lifecycle.prune_snapshots": aimed(
        lambda v, t, w: v.lifecycle.prune_snapshots(1, session_id=t.archived),
    ),
    "lifecycle.history": aimed(
        lambda v, t, w: v.lifecycle.history(t.archived),
        lambda v, t, w: v.lifecycle.history(t.sid.replace("active", "purged")),
    ),
    "lifecycle.start_scheduler": scan(
        lambda v, t, w: v.lifecycle.start_scheduler(timedelta(hours=1))
    ),
    "lifecycle.stop_schedulers": scan(lambda v, t, w: v.lifecycle.stop_schedulers()),
    "lifecycle.acquire_lease": scan(
        lambda v, t, w: v.lifecycle.acquire_lease("sweep", "attacker", timedelta(minutes=1))
    ),
    "lifecycle.release_lease": scan(lambda v, t, w: v.lifecycle.release_lease("sweep", "alice")),
}
# The repositories a transaction hands out take the same calls.
TX_REPOSITORIES = [f.name for f in dataclasses.fields(Transaction)]
for _repo in TX_REPOSITORIES:
    for _key in [k for k in CASES if k.startswith(f"{_repo}.")]:
        CASES[f"tx.{_key}"] = CASES[_key]


def _empty_transaction(view: ScopedStore) -> None:
    with view.transaction():
        pass


# --- the surface, by introspection ------------------------------------------------------------


def _public_methods(obj: Any) -> list[str]:
    cls = type(obj)
    names = []
    for name, member in inspect.getmembers(cls):
        if name.startswith("_") or isinstance(inspect.getattr_static(cls, name), property):
            continue
        if callable(member):
            names.append(name)
    return names


def _repositories(view: Any) -> dict[str, Any]:
    """The view's public attributes that are objects with public methods of their own."""
    found = {}
    for name, value in vars(view).items():
        if name.startswith("_") or isinstance(value, str | int | tuple | type(None)):
            continue
        if dataclasses.is_dataclass(value):  # the owner record
            continue
        if _public_methods(value):
            found[name] = value
    return found


def surface(view: ScopedStore) -> list[tuple[str, Callable[..., Any]]]:
    """Every public method of the view: (key, how to reach it through a view or tx)."""
    keys: list[tuple[str, Callable[..., Any]]] = []
    for name in _public_methods(view):
        keys.append((f"store.{name}", lambda v: v))
    for repo, value in _repositories(view).items():
        for name in _public_methods(value):
            keys.append((f"{repo}.{name}", lambda v: v))
    with view.transaction() as tx:
        for repo in TX_REPOSITORIES:
            for name in _public_methods(getattr(tx, repo)):
                keys.append((f"tx.{repo}.{name}", lambda v: v))
    return keys


# --- Alice's data, and what an outsider may see of it --------------------------------------------


def seed_alice(admin: SessionStore) -> Target:
    alice = admin.for_user(APP, ALICE)
    active = alice.sessions.create("gpt", session_id="alice-active", title=f"{SECRET} title")
    sid = active.session_id
    alice.sessions.set_metadata(sid, "k", f"{SECRET} metadata")
    alice.messages.append(sid, "system", f"{SECRET} system prompt")
    hello = alice.messages.append(sid, "user", f"{SECRET} hello routers", client_msg_id="alice-cid")
    alice.messages.append(sid, "assistant", f"{SECRET} reply", tokens=5)
    alice.state.update(sid, {"s": SECRET})
    alice.state.update_user(APP, ALICE, {"u": SECRET})
    alice.state.update_app(APP, {"shared": SHARED})
    archived = alice.sessions.create("gpt", session_id="alice-archived", title=f"{SECRET} old")
    alice.messages.append(archived.session_id, "user", f"{SECRET} archived routers")
    alice.lifecycle.archive(archived.session_id)
    alice.lifecycle.reactivate(archived.session_id)
    snap = alice.lifecycle.archive(archived.session_id).snapshot_id
    purged = alice.sessions.create("gpt", session_id="alice-purged")
    alice.messages.append(purged.session_id, "user", f"{SECRET} purged")
    alice.lifecycle.archive(purged.session_id, now=datetime(2026, 1, 1, tzinfo=UTC))
    alice.lifecycle.purge(timedelta(days=1), app=APP, user_id=ALICE)
    assert not admin.sessions.exists("alice-purged")
    admin.lifecycle.acquire_lease("sweep", "alice", timedelta(hours=1))
    return Target(sid, archived.session_id, hello.message_id, snap, "alice-cid", APP, ALICE)


_ALICE_TABLES = {
    "sessions": "SELECT * FROM sessions WHERE app = 'app' AND user_id = 'alice'",
    "messages": "SELECT * FROM messages WHERE session_id LIKE 'alice-%'",
    "session_metadata": "SELECT * FROM session_metadata WHERE session_id LIKE 'alice-%'",
    "session_state": "SELECT * FROM session_state WHERE session_id LIKE 'alice-%'",
    "user_state": "SELECT * FROM user_state WHERE app = 'app' AND user_id = 'alice'",
    "session_snapshots": "SELECT * FROM session_snapshots WHERE session_id LIKE 'alice-%'",
    "lifecycle_events": "SELECT * FROM lifecycle_events WHERE session_id LIKE 'alice-%'",
    "lifecycle_leases": "SELECT * FROM lifecycle_leases WHERE holder = 'alice'",
}


def alice_dump(engine: Engine, with_app_state: bool) -> dict[str, list[str]]:
    """Alice's rows, read through an admin engine of the test's own (not the store's)."""
    tables = dict(_ALICE_TABLES)
    if with_app_state:
        tables["app_state"] = "SELECT * FROM app_state WHERE app = 'app'"
    with engine.connect() as conn:
        return {
            name: sorted(repr(tuple(row)) for row in conn.execute(text(sql)))
            for name, sql in tables.items()
        }


# --- calling, and judging ---------------------------------------------------------------


def _outcome(world: World, call: Call, view: Any, target: Target) -> tuple[str, str, Any]:
    """("raised", class, text) or ("returned", type, value); never an untyped exception."""
    try:
        result = call(view, target, world)
    except SessionStoreError as exc:
        return ("raised", type(exc).__name__, str(exc))
    if isinstance(result, Iterator):
        result = list(result)
    if isinstance(result, Scheduler):
        result.stop()
        return ("returned", "Scheduler", None)
    return ("returned", type(result).__name__, result)


def _blank(value: Any, alice: Target) -> str:
    """The text with the ids of both targets (Alice's, the missing ones) blanked."""
    text_ = repr(value)
    for target in (alice, MISSING):
        for name in ("archived", "sid", "cid", "user"):
            text_ = text_.replace(str(getattr(target, name)), f"<{name}>")
        for name in ("mid", "snap"):
            text_ = text_.replace(f" {getattr(target, name)}", " <number>")
    return text_


def _marks(world: World) -> list[str]:
    marks = [SECRET, "alice-active", "alice-archived", "alice-purged"]
    if world.attacker[0] != APP:
        marks.append(SHARED)
    return marks


def judge(world: World, key: str, case: Case, call: Call, via: Callable[..., Any]) -> None:
    alice, attacker = world.alice, world.attacker
    with_app_state = attacker[0] != APP
    before = alice_dump(world.dumps, with_app_state)
    world.calls += 1
    got = via(lambda view: _outcome(world, call, view, alice))
    if alice_dump(world.dumps, with_app_state) != before:
        world.leaks.append(f"{key}: changed Alice's data ({got[:2]})")
    if case.namespace:
        # A chosen id another owner holds is taken, as any taken id: the same error as
        # for the attacker's own session, naming nothing of whose it is.
        world.namespace += 1
        mine = dataclasses.replace(alice, sid=world.own_other)
        own = via(lambda view: _outcome(world, call, view, mine))
        quoted = re.compile(r"'[^']*'")
        if (got[0], got[1]) != ("raised", "SessionExists") or quoted.sub("<id>", got[2]) != (
            quoted.sub("<id>", str(own[2]))
        ):
            world.leaks.append(f"{key}: {got} differs from a taken id of one's own: {own}")
        return
    shown = repr(got[2])
    if not case.aimed or got[0] == "returned":
        leaked = [mark for mark in _marks(world) if mark in shown]
        if leaked:
            world.leaks.append(f"{key}: the result holds {leaked}: {shown[:200]}")
    if case.aimed:
        if key.endswith(("get_app", "update_app")) and attacker[0] == APP:
            return  # the app's shared state: the attacker's app too
        missing = via(lambda view: _outcome(world, call, view, MISSING))
        if (got[0], got[1], _blank(got[2], alice)) != (
            missing[0],
            missing[1],
            _blank(missing[2], alice),
        ):
            world.leaks.append(f"{key}: {got[:2]} {str(got[2])[:150]!r} but for missing ids "
                               f"{missing[:2]} {str(missing[2])[:150]!r}")  # fmt: skip


def _direct(world: World) -> Callable[..., Any]:
    return lambda run: run(world.view())


def _in_transaction(world: World, repo: str) -> Callable[..., Any]:
    def via(run: Callable[[Any], Any]) -> Any:
        try:
            with world.view().transaction() as tx:
                outcome = run(_TxView(tx))
                if outcome[0] == "raised":
                    raise _Rollback(outcome)
                return outcome
        except _Rollback as stop:
            return stop.outcome

    return via


class _Rollback(Exception):
    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome


class _TxView:
    """A transaction's repositories where a call expects a view's."""

    def __init__(self, tx: Transaction) -> None:
        for f in dataclasses.fields(tx):
            setattr(self, f.name, getattr(tx, f.name))


def run_battery(world: World) -> None:
    view = world.view()
    world.own_sid = view.sessions.create("gpt", title="attacker's own").session_id
    view.messages.append(world.own_sid, "user", "the attacker's own routers")
    world.own_snap = view.lifecycle.archive(world.own_sid).snapshot_id
    view.lifecycle.reactivate(world.own_sid)
    world.own_other = view.sessions.create("gpt").session_id
    keys = [key for key, _ in surface(view)]
    missing = sorted(set(keys) - set(CASES))
    assert not missing, f"public methods of the scoped view with no entry in CASES: {missing}"
    stale = sorted(set(CASES) - set(keys))
    assert not stale, f"CASES entries for methods that no longer exist: {stale}"
    for key in keys:
        entry = CASES[key]
        via = _in_transaction(world, key.split(".")[1]) if key.startswith("tx.") else _direct(world)
        for case in entry if isinstance(entry, tuple) else (entry,):
            for call in case.calls:
                judge(world, key, case, call, via)


@pytest.fixture(params=["sqlite", "postgresql", "postgresql-rls"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., World]]:
    kind = request.param
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'owners.db'}"
    else:
        request.applymarker(pytest.mark.postgres)
        url = str(request.getfixturevalue("postgres_url"))
    admin = SessionStore.open(url)
    opened = [admin]
    alice = seed_alice(admin)
    views = admin
    if kind == "postgresql-rls":
        status = admin.enable_row_level_security()
        assert status.enabled
        views = SessionStore.open(restricted_url(url), upgrade=False)
        opened.append(views)

    dumps = create_engine(url, pool_size=1)

    def make(attacker: tuple[str, str | None]) -> World:
        return World(admin, views, dumps, tmp_path, alice, attacker)

    try:
        yield make
    finally:
        dumps.dispose()
        for store in reversed(opened):
            store.close()


@pytest.mark.slow
def test_no_owner_sees_another_owners_data(world: Callable[..., World]) -> None:
    total_calls = total_leaks = 0
    for attacker in ATTACKERS:
        w = world(attacker)
        run_battery(w)
        # Alice's own view still reaches all of it: the battery was aimed at real rows.
        alice = w.views.for_user(APP, ALICE)
        assert [m.content for m in alice.messages.history(w.alice.sid)][1].startswith(SECRET)
        assert alice.lifecycle.snapshots(w.alice.archived)
        assert alice.state.get_user(APP, ALICE) == {"u": SECRET}
        assert alice.search.sessions("secret").items
        total_calls += w.calls
        total_leaks += len(w.leaks)
        print(f"\nattacker {attacker}: {w.calls} calls, {len(w.leaks)} leaks, "
              f"{w.namespace} on the shared id namespace")  # fmt: skip
        assert not w.leaks, "\n".join(w.leaks)
    print(f"owner isolation: {total_calls} calls, {total_leaks} leaks")
    assert total_calls > 200


def test_every_public_method_has_a_case(tmp_path: Path) -> None:
    """A method added to a view's repositories without an entry fails here first."""
    with SessionStore.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        keys = {key for key, _ in surface(store.for_user(APP, "bob"))}
    assert not sorted(keys - set(CASES))
    assert not sorted(set(CASES) - keys)


@pytest.mark.slow
def test_the_battery_finds_a_missing_guard(
    world: Callable[..., World], monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """With the ownership check switched off the same battery reports leaks; with
    PostgreSQL's row-level security on, the policies alone still hold every row back
    (what is left is the id check, which reads the whole id namespace by design)."""
    if request.node.callspec.params["world"] == "postgresql":
        pytest.skip("the same checks as on SQLite; with row-level security is the other case")
    monkeypatch.setattr("sessionstore.owners._found", lambda *args: True)
    w = world(("app", "bob"))
    run_battery(w)
    print(f"\nwithout the ownership check: {w.calls} calls, {len(w.leaks)} leaks")
    if request.node.callspec.params["world"] == "postgresql-rls":
        assert w.leaks
        assert all("SessionIdRetired" in leak for leak in w.leaks), w.leaks
    else:
        assert len(w.leaks) > 20
