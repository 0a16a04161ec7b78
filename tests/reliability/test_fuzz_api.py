"""Every public method, every parameter, every hostile value: a typed error or success.

The public surface is found by introspection, so a method added later is
fuzzed without anyone remembering to: every public method of
:class:`SessionStore`, of its repositories (``sessions``, ``messages``,
``search``, ``lifecycle``, ``health``), of the repositories a
:class:`Transaction` hands out, of :class:`sessionstore.compat.SessionManager`,
and every public callable of ``sessionstore`` and ``sessionstore.compat``
that is not an error or a data record. A method without an entry in
``SPECS`` (how to call it validly) fails the test instead of being skipped.

Each parameter, in each position it can take (keyword, and positional where
allowed), gets every value of :data:`tests.fuzzkit.HOSTILE` while the other
parameters hold valid values (a real session, message and snapshot of the
database under test). Every call must return or raise a
:class:`SessionStoreError`; when it raises — or when the method only reads —
the logical dump of the database must be what it was before. A bounded,
derandomized Hypothesis pass then draws values from wider strategies. The
full run is on a SQLite file; a sample runs on PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import signal
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sessionstore
from sessionstore import SessionStore, SessionStoreError, StoreConfig, compat
from sessionstore.compat import SessionManager
from sessionstore.health import Health
from sessionstore.lifecycle import Lifecycle
from sessionstore.messages import MessageRepository
from sessionstore.scheduler import Scheduler
from sessionstore.search import SearchRepository
from sessionstore.sessions import SessionRepository
from sessionstore.state import StateRepository

from ..fuzzkit import HOSTILE, ChangeProbe, Ctx
from .conftest import logical_dump

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

SRC = str(Path(sessionstore.__file__).parent)


# --- the database under test, and valid values for every parameter -------------------------


def _record(ctx: Ctx) -> Any:
    return ctx.record


# Valid values by parameter name, for every method …
COMMON: dict[str, Callable[[Ctx], Any]] = {
    "session_id": lambda c: c.sid,
    "message_id": lambda c: c.mid,
    "snapshot_id": lambda c: c.snap,
    "role": lambda c: "user",
    "content": lambda c: "fuzz content",
    "query": lambda c: "needle",
    "model_id": lambda c: "gpt",
    "key": lambda c: "owner",
    "value": lambda c: "v",
    "title": lambda c: "a title",
    "name": lambda c: "fuzz-lease",
    "holder": lambda c: "fuzz-holder",
    "ttl": lambda c: timedelta(seconds=30),
    "within": lambda c: timedelta(minutes=5),
    "older_than": lambda c: timedelta(days=3650),
    "every": lambda c: timedelta(hours=1),
    "horizon": lambda c: datetime(2026, 1, 1, tzinfo=UTC),
    "session": _record,
    "messages": lambda c: [{"role": "user", "content": "one"}],
    "source": lambda c: c.export_text,
    "path": lambda c: c.tmp / c.fresh_id("backup"),
    "backup": lambda c: c.backup_file,
    "target": lambda c: str(c.tmp / "restore-target.db"),
    "config": lambda c: StoreConfig(url=c.url),
    "engine": lambda c: c.store.engine,
    "url": lambda c: c.url,
    "db_path": lambda c: c.store.path,
    "models_dir": lambda c: c.tmp / "models",
}


def _fresh_export(ctx: Ctx) -> str:
    """The export of a real session, under an id no session has yet."""
    document = json.loads(ctx.export_text)
    document["session"]["session_id"] = ctx.fresh_id("imported")
    return json.dumps(document)


@dataclass(frozen=True)
class Spec:
    """How to call one method: valid values beyond COMMON, and what a success may do."""

    #: The method only reads: even a success leaves the dump unchanged.
    reads: bool = False
    args: dict[str, Callable[[Ctx], Any]] = field(default_factory=dict)
    #: Keys fuzzed into a ``**options`` parameter.
    var_keywords: tuple[str, ...] = ()
    #: Backends the method is fuzzed on (restore_backup targets a scratch file).
    backends: tuple[str, ...] = ("sqlite", "postgresql")


STORE_OPTIONS = tuple(f.name for f in dataclasses.fields(StoreConfig) if f.name != "url")
READ = Spec(reads=True)
WRITE = Spec()

# … and one entry per public method: a new method fails the test until it has one.
SPECS: dict[str, Spec] = {
    "store.backup": Spec(reads=True),
    "store.close": WRITE,  # called last, on its own
    "store.export": READ,
    "store.export_file": Spec(reads=True, args={"path": lambda c: c.tmp / c.fresh_id("export")}),
    "store.erase_user": Spec(args={"app": lambda c: "fuzz-app", "user_id": lambda c: "fuzz-user"}),
    "store.for_user": Spec(
        reads=True, args={"app": lambda c: "fuzz-app", "user_id": lambda c: "fuzz-user"}
    ),
    # Row-level security is PostgreSQL's (SQLite refuses it: InvalidStateError); turning it
    # on or off changes the catalog, not a row.
    "store.enable_row_level_security": Spec(reads=True, backends=("postgresql",)),
    "store.disable_row_level_security": Spec(reads=True, backends=("postgresql",)),
    "store.row_level_security": READ,
    "store.from_config": WRITE,
    "store.from_engine": Spec(var_keywords=STORE_OPTIONS),
    "store.import_session": Spec(args={"source": _fresh_export}),
    "store.open": Spec(var_keywords=STORE_OPTIONS),
    "store.pool_status": READ,
    "store.restore_backup": Spec(backends=("sqlite",)),
    "store.stats": READ,
    "store.transaction": READ,
    "store.upgrade": WRITE,
    "sessions.count": READ,
    "sessions.create": WRITE,
    "sessions.delete": WRITE,
    "sessions.delete_metadata": WRITE,
    "sessions.exists": READ,
    "sessions.fork": Spec(args={"through_sequence": lambda c: 1}),
    "sessions.get": READ,
    "sessions.get_metadata": READ,
    "sessions.list": READ,
    "sessions.metadata": READ,
    "sessions.rename": WRITE,
    "sessions.set_metadata": WRITE,
    "messages.append": WRITE,
    "messages.append_many": WRITE,
    "messages.clear": WRITE,
    "messages.delete": WRITE,
    "messages.delete_by_client_id": Spec(args={"client_msg_id": lambda c: "fuzz-cid"}),
    "messages.edit": WRITE,
    "messages.get": READ,
    "messages.get_by_client_id": Spec(reads=True, args={"client_msg_id": lambda c: "fuzz-cid"}),
    "messages.history": READ,
    "messages.items": READ,
    "messages.iterate": READ,
    "messages.pop": WRITE,
    "messages.recent": READ,
    "messages.since": Spec(reads=True, args={"after": lambda c: datetime(2020, 1, 1, tzinfo=UTC)}),
    "messages.window": Spec(reads=True, args={"max_tokens": lambda c: 100}),
    "search.messages": READ,
    "search.sessions": READ,
    "lifecycle.acquire_lease": WRITE,
    "lifecycle.archive": WRITE,
    "lifecycle.due": READ,
    "lifecycle.expiring": READ,
    "lifecycle.history": READ,
    "lifecycle.prune_snapshots": WRITE,
    "lifecycle.purge": WRITE,
    "lifecycle.reactivate": Spec(args={"session_id": lambda c: c.snap_session}),
    "lifecycle.release_lease": WRITE,
    "lifecycle.restore": WRITE,
    "lifecycle.set_timeouts": WRITE,
    "lifecycle.snapshots": READ,
    "lifecycle.start_scheduler": WRITE,
    "lifecycle.stop_schedulers": WRITE,
    "lifecycle.sweep": WRITE,
    "state.get": READ,
    "state.get_app": Spec(reads=True, args={"app": lambda c: "fuzz-app"}),
    "state.get_many": Spec(reads=True, args={"session_ids": lambda c: [c.sid, "no-such-id"]}),
    "state.get_user": Spec(
        reads=True, args={"app": lambda c: "fuzz-app", "user_id": lambda c: "fuzz-user"}
    ),
    "state.merged": READ,
    "state.update": Spec(args={"delta": lambda c: {"step": 1, "seen": [True, None]}}),
    "state.update_app": Spec(args={"app": lambda c: "fuzz-app", "delta": lambda c: {"k": 1}}),
    "state.update_user": Spec(
        args={
            "app": lambda c: "fuzz-app",
            "user_id": lambda c: "fuzz-user",
            "delta": lambda c: {"k": {"nested": "v"}},
        }
    ),
    "health.check": READ,
    "health.repair": WRITE,
    "compat.SessionManager": Spec(backends=("sqlite",)),
    "compat.create_session_manager": Spec(backends=("sqlite",)),
    "manager.add_message": Spec(backends=("sqlite",)),
    "manager.cleanup_old_sessions": Spec(backends=("sqlite",), args={"days": lambda c: 36_500}),
    "manager.close": Spec(backends=("sqlite",)),
    "manager.create_session": Spec(backends=("sqlite",)),
    "manager.delete_session": Spec(backends=("sqlite",)),
    "manager.export_session": Spec(reads=True, backends=("sqlite",)),
    "manager.fix_orphaned_records": Spec(backends=("sqlite",)),
    "manager.get_session": Spec(reads=True, backends=("sqlite",)),
    "manager.get_session_history": Spec(reads=True, backends=("sqlite",)),
    "manager.get_session_metadata": Spec(reads=True, backends=("sqlite",)),
    "manager.get_statistics": Spec(reads=True, backends=("sqlite",)),
    "manager.list_sessions": Spec(reads=True, backends=("sqlite",)),
    "manager.search_sessions": Spec(reads=True, backends=("sqlite",)),
    "manager.set_session_metadata": Spec(backends=("sqlite",)),
    "manager.update_session_title": Spec(backends=("sqlite",)),
    "sessionstore.StoreConfig": Spec(reads=True, var_keywords=()),
    "sessionstore.StoreConfig.from_env": Spec(reads=True, var_keywords=STORE_OPTIONS),
    "sessionstore.StoreConfig.with_options": Spec(reads=True, var_keywords=STORE_OPTIONS),
}
for _repo in ("sessions", "messages", "search", "state"):
    for _key in [k for k in SPECS if k.startswith(f"{_repo}.")]:
        SPECS[f"tx.{_key}"] = SPECS[_key]

# Exported names that are errors or plain data records: constructed by the store, not
# entry points. Anything else exported must be fuzzed.
RECORDS = {
    "BackupReport", "Check", "ErasureReport", "Expiry", "HealthReport", "LifecycleRecord",
    "MessageHit",
    "MessageRecord", "NewMessage", "Page", "PurgeReport", "RepairReport", "RestoreReport",
    "SearchHit", "SessionRecord", "SnapshotInfo", "StateDelta", "SweepReport", "Transaction",
    "UpgradeReport",
}  # fmt: skip


# --- the surface, by introspection ------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    key: str
    signature: inspect.Signature
    #: Calls the target on a context with the given arguments.
    call: Callable[[Ctx, tuple[Any, ...], dict[str, Any]], Any]


def _public_methods(cls: type) -> Iterator[tuple[str, Any]]:
    for name, member in inspect.getmembers(cls):
        if name.startswith("_") or isinstance(inspect.getattr_static(cls, name), property):
            continue
        if callable(member):
            yield name, member


def _bound(owner: Callable[[Ctx], Any], name: str) -> Callable[..., Any]:
    return lambda ctx, args, kwargs: getattr(owner(ctx), name)(*args, **kwargs)


def _in_transaction(repo: str, name: str) -> Callable[..., Any]:
    def call(ctx: Ctx, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        with ctx.store.transaction() as tx:
            return getattr(getattr(tx, repo), name)(*args, **kwargs)

    return call


def _signature(func: Any) -> inspect.Signature:
    signature = inspect.signature(func)
    params = [p for p in signature.parameters.values() if p.name not in ("self", "cls")]
    return signature.replace(parameters=params)


def surface() -> list[Target]:
    """Every public callable the fuzz covers, and names of exports nobody classified."""
    owners: list[tuple[str, type, Callable[[Ctx], Any]]] = [
        ("store", SessionStore, lambda c: c.store),
        ("sessions", SessionRepository, lambda c: c.store.sessions),
        ("messages", MessageRepository, lambda c: c.store.messages),
        ("search", SearchRepository, lambda c: c.store.search),
        ("state", StateRepository, lambda c: c.store.state),
        ("lifecycle", Lifecycle, lambda c: c.store.lifecycle),
        ("health", Health, lambda c: c.store.health),
        ("manager", SessionManager, lambda c: c.manager),
    ]
    targets = []
    for label, cls, owner in owners:
        for name, member in _public_methods(cls):
            targets.append(Target(f"{label}.{name}", _signature(member), _bound(owner, name)))
    tx_fields = {f.name: f.type for f in dataclasses.fields(sessionstore.Transaction)}
    tx_classes = {"sessions": SessionRepository, "messages": MessageRepository}
    tx_classes["search"] = SearchRepository
    tx_classes["state"] = StateRepository
    assert set(tx_fields) == set(tx_classes), "Transaction has repositories the fuzz lacks"
    for repo, cls in tx_classes.items():
        for name, member in _public_methods(cls):
            targets.append(
                Target(f"tx.{repo}.{name}", _signature(member), _in_transaction(repo, name))
            )
    for module in (sessionstore, compat):
        for name in module.__all__:
            value = getattr(module, name)
            if not callable(value) or name in RECORDS:
                continue
            if isinstance(value, type) and issubclass(value, BaseException):
                continue
            if value in (SessionStore,):  # its methods are fuzzed above
                continue
            key = f"{module.__name__.rsplit('.', 1)[-1]}.{name}"
            targets.append(Target(key, _signature(value), _plain(value)))
            if isinstance(value, type) and module is sessionstore:
                for method, member in _public_methods(value):
                    targets.append(
                        Target(f"{key}.{method}", _signature(member), _config_method(method))
                    )
    return targets


def _plain(func: Callable[..., Any]) -> Callable[..., Any]:
    return lambda ctx, args, kwargs: func(*args, **kwargs)


def _config_method(name: str) -> Callable[..., Any]:
    return lambda ctx, args, kwargs: getattr(StoreConfig(url=ctx.url), name)(*args, **kwargs)


# --- calling, and judging the outcome --------------------------------------------------------


class Blocked(Exception):
    """A call ran past the alarm: hostile input made it wait (or loop) for good."""


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Blocked("the call did not return within 20 s")


@dataclass
class Finding:
    call: str
    error: str
    where: str

    def __str__(self) -> str:
        return f"{self.call}: {self.error} at {self.where}"


@dataclass
class Fuzzer:
    ctx: Ctx
    probe: ChangeProbe
    dialect: str
    findings: dict[tuple[str, str, str], Finding] = field(default_factory=dict)
    calls: int = 0
    methods: set[str] = field(default_factory=set)
    closed: bool = False

    def valid(self, key: str, param: inspect.Parameter) -> Any:
        spec = SPECS[key]
        make = spec.args.get(param.name) or COMMON.get(param.name)
        if make is None:
            raise LookupError(f"{key}: no valid value for parameter {param.name!r}")
        return make(self.ctx)

    def attempt(
        self, target: Target, label: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> BaseException | None:
        """Call once and judge it; the exception it raised, if any."""
        spec = SPECS[target.key]
        error: BaseException | None = None
        self.calls += 1
        self.methods.add(target.key)
        before = self.probe.token()
        raised = True
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(20)
        try:
            result = target.call(self.ctx, args, kwargs)
            raised = False
            self._finish(result)
        except SessionStoreError as exc:
            error = exc
        except Exception as exc:  # the finding itself: anything untyped escaping
            error = exc
            self._found(target.key, label, exc)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        if self.probe.token() == before:
            return error
        if raised or spec.reads:
            after = logical_dump(self.ctx.url)
            if after != self.ctx.dump:
                what = "raised" if raised else "only reads, yet"
                changed = sorted(k for k in after if after[k] != self.ctx.dump.get(k))
                self._note(target.key, label, f"{what} changed the data: {changed}", "-")
        if not self.closed:
            self.ctx.refresh()
        self.ctx.dump = logical_dump(self.ctx.url)
        return error

    def _finish(self, result: Any) -> None:
        """Stop what a successful call started: schedulers, stores, managers."""
        if isinstance(result, Scheduler):
            result.stop()
        elif isinstance(result, SessionStore | SessionManager) and result not in (
            self.ctx.store,
            self.ctx.manager,
        ):
            result.close()

    def _found(self, key: str, label: str, exc: BaseException) -> None:
        frames = traceback.extract_tb(exc.__traceback__)
        ours = [f for f in frames if f.filename.startswith(SRC)]
        frame = (ours or frames)[-1]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        text = f"{type(exc).__module__}.{type(exc).__name__}: {str(exc)[:120]!r}"
        self._note(key, label, text, where)

    def _note(self, key: str, label: str, error: str, where: str) -> None:
        group = (key, error.split(":", maxsplit=1)[0], where)
        self.findings.setdefault(group, Finding(f"{key}({label})", error, where))

    def fuzz(self, target: Target, values: dict[str, Callable[[], Any]]) -> None:
        """Each parameter of ``target`` gets each value, as keyword and positionally."""
        params = list(target.signature.parameters.values())
        required = {
            p.name: self.valid(target.key, p)
            for p in params
            if p.default is inspect.Parameter.empty
            and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        }
        # The valid call must work, or the hostile ones only ever test the first check.
        failed = self.attempt(target, "valid", (), dict(required))
        if failed is not None and target.key not in FAILS_WHEN_VALID:
            self._note(target.key, "valid", f"the valid call raised {failed!r:.150}", "-")
        for index, param in enumerate(params):
            if param.kind is param.VAR_POSITIONAL:
                continue
            names = [param.name]
            if param.kind is param.VAR_KEYWORD:
                names = [*SPECS[target.key].var_keywords, "no_such_option"]
            for name in names:
                for label, make in values.items():
                    kwargs = {**self._fresh_required(target, params), name: make()}
                    self.attempt(target, f"{name}={label}", (), kwargs)
                    if param.kind is param.POSITIONAL_OR_KEYWORD:
                        before = params[:index]
                        args = [
                            self._positional(target, p)
                            for p in before
                            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                        ]
                        rest = {
                            k: v for k, v in kwargs.items() if k not in {p.name for p in before}
                        }
                        del rest[name]
                        self.attempt(target, f"#{index}={label}", (*args, make()), rest)

    def _fresh_required(self, target: Target, params: list[inspect.Parameter]) -> dict[str, Any]:
        return {
            p.name: self.valid(target.key, p)
            for p in params
            if p.default is inspect.Parameter.empty
            and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        }

    def _positional(self, target: Target, param: inspect.Parameter) -> Any:
        if param.default is not inspect.Parameter.empty and param.name not in COMMON:
            return param.default
        return self.valid(target.key, param)


def report(fuzzer: Fuzzer) -> str:
    lines = [str(f) for f in fuzzer.findings.values()]
    return f"{len(lines)} untyped outcome(s) in {fuzzer.calls} calls:\n" + "\n".join(lines)


# --- the tests ---------------------------------------------------------------------------------


def test_every_public_method_has_a_spec() -> None:
    """A public method added without a way to call it fails here, not silently later."""
    keys = {t.key for t in surface()}
    missing = sorted(keys - set(SPECS))
    assert not missing, f"public methods with no argument strategy in SPECS: {missing}"
    stale = sorted(set(SPECS) - keys)
    assert not stale, f"SPECS entries for methods that no longer exist: {stale}"
    unclassified = [
        n
        for n in sessionstore.__all__
        if callable(getattr(sessionstore, n))
        and n not in RECORDS
        and not (
            isinstance(getattr(sessionstore, n), type)
            and issubclass(getattr(sessionstore, n), BaseException)
        )
        and n not in ("SessionStore", "StoreConfig")
    ]
    assert not unclassified, f"exported callables the fuzz does not know: {unclassified}"


@pytest.fixture
def fuzz_ctx(
    backend_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Ctx, ChangeProbe]]:
    # Relative paths the fuzz passes ("../../etc/passwd") land inside tmp_path.
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    (tmp_path / "models").mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("SESSIONSTORE_URL", raising=False)
    store = SessionStore.open(backend_url)
    ctx = Ctx(store=store, url=backend_url, tmp=tmp_path)
    ctx.seed()
    if store.dialect == "sqlite":
        ctx.manager = SessionManager(store.path or "")
    probe = ChangeProbe(backend_url)
    ctx.dump = logical_dump(backend_url)
    try:
        yield ctx, probe
    finally:
        if ctx.manager is not None:
            ctx.manager.close()
        store.close()
        probe.close()


# On PostgreSQL, a sample of the values keeps the run short.
PG_SAMPLE = (
    "None", "True", "-1", "2**64", "10**400", "nan", "inf", "str:empty", "str:nul",
    "str:surrogate", "str:1MB", "str:300 chars", "str:traversal", "bytes", "list-empty",
    "list-deep", "dict-empty", "dict-evil", "datetime-naive", "datetime-max-14",
    "timedelta-max", "timedelta-min", "path-dir", "evil", "closed-file",
)  # fmt: skip
# Methods whose valid call is refused by design.
FAILS_WHEN_VALID: set[str] = set()
LAST = ("store.close", "manager.close", "lifecycle.stop_schedulers")


def test_fuzz_every_public_method(fuzz_ctx: tuple[Ctx, ChangeProbe]) -> None:
    ctx, probe = fuzz_ctx
    dialect = ctx.store.dialect
    fuzzer = Fuzzer(ctx, probe, dialect)
    values = HOSTILE if dialect == "sqlite" else {k: HOSTILE[k] for k in PG_SAMPLE}
    targets = [t for t in surface() if dialect in SPECS[t.key].backends]
    for target in targets:
        if target.key not in LAST:
            fuzzer.fuzz(target, values)
    _hypothesis_pass(fuzzer, [t for t in targets if t.key not in LAST], dialect)
    # Closing, then every method once on the closed store: typed errors only.
    fuzzer.closed = True
    for key in LAST:
        for target in targets:
            if target.key == key:
                fuzzer.attempt(target, "valid", (), {})
    for target in targets:
        repos = ("store", "sessions", "messages", "search", "state", "lifecycle")
        if target.key.split(".")[0] in repos:
            params = list(target.signature.parameters.values())
            fuzzer.attempt(target, "closed store", (), fuzzer._fresh_required(target, params))
    print(f"\n{len(fuzzer.methods)} methods, {fuzzer.calls} calls on {dialect}")
    assert not fuzzer.findings, report(fuzzer)


WIDE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=50),
    st.binary(max_size=20),
    st.datetimes(timezones=st.none() | st.timezones()),
    st.timedeltas(),
    st.lists(st.integers() | st.text(max_size=5), max_size=4),
    st.dictionaries(st.text(max_size=5), st.none() | st.text(max_size=5), max_size=3),
    st.sampled_from(sorted(HOSTILE)).map(lambda k: HOSTILE[k]()),
)


def _hypothesis_pass(fuzzer: Fuzzer, targets: list[Target], dialect: str) -> None:
    fuzzable = [(t, p) for t in targets for p in t.signature.parameters.values()]
    fuzzable = [(t, p) for t, p in fuzzable if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]

    @settings(
        max_examples=300 if dialect == "sqlite" else 60,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(pick=st.sampled_from(fuzzable), value=WIDE)
    def run(pick: tuple[Target, inspect.Parameter], value: Any) -> None:
        target, param = pick
        params = list(target.signature.parameters.values())
        kwargs = {**fuzzer._fresh_required(target, params), param.name: value}
        fuzzer.attempt(target, f"{param.name}=hypothesis:{value!r:.60}", (), kwargs)

    run()
