"""Every command of the command line, every argument and option, hostile values.

The commands are found by walking the ``sessionstore`` click group, so a
command added later is fuzzed too. Each argument and each value-taking
option gets every hostile string of :data:`tests.fuzzkit.HOSTILE_TEXT`
(``--db`` also gets directories, missing paths, junk files, malformed URLs,
``sqlite://relative.db``, unknown schemes and a PostgreSQL port nobody
listens on) while the others hold valid values. Each run must exit 0, or 2
with its error on one line of stderr (``doctor`` may exit 1: that is its
documented answer to damage), never print a traceback, and leave the
logical dump of the database as it was unless it succeeded at a write. A
handful of the same runs go through the installed ``sessionstore`` entry
point in a real subprocess.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import click
import pytest
from click.testing import CliRunner, Result

from sessionstore import SessionStore
from sessionstore.cli import main

from ..fuzzkit import HOSTILE_TEXT, ChangeProbe, Ctx
from .conftest import logical_dump

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

# Commands that change nothing when they succeed.
READS = {
    "sessions list",
    "show",
    "export",
    "stats",
    "search",
    "snapshots",
    "state",
    "doctor",
    "upgrade",
}
# Exit statuses a command may document besides 0 and 2.
DOCUMENTED = {"doctor": {1}}
# Commands whose valid call is refused on the SQLite file fuzzed here, by design.
SQLITE_REFUSES = {"rls enable", "rls disable"}  # row-level security is PostgreSQL's
# Flags a valid call needs (the fuzz otherwise leaves flags out).
NEEDED_FLAGS = {"erase-user": ["--yes"]}


def commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every leaf command's path under ``group``."""
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


def command_at(path: tuple[str, ...]) -> click.Command:
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bad_databases(tmp: Path) -> dict[str, str]:
    junk = tmp / "junk.txt"
    junk.write_text("this is not a database\n" * 100)
    empty = tmp / "empty.db"
    empty.touch()
    (tmp / "a-directory").mkdir(exist_ok=True)
    return {
        "directory": f"sqlite:///{tmp / 'a-directory'}",
        "missing-dir": f"sqlite:///{tmp / 'no' / 'such' / 'dir' / 'x.db'}",
        "junk-file": f"sqlite:///{junk}",
        "empty-file": f"sqlite:///{empty}",
        "relative-two-slashes": "sqlite://relative.db",
        "no-scheme": "just words",
        "unknown-scheme": "mongodb://localhost/x",
        "bare-path": str(junk),
        "closed-port": f"postgresql://fuzz:secret@127.0.0.1:{closed_port()}/nothing",
        "bad-port": "postgresql://localhost:99999999/x",
        "empty": "",
        "nul": "sqlite:///a\x00b.db",
        "surrogate": "sqlite:///\ud800.db",
        "long-name": f"sqlite:///{tmp / ('n' * 300)}.db",
    }


class Blocked(Exception):
    """A command ran past the alarm: it waits forever on hostile input."""


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Blocked("the command did not return within 20 s")


@dataclass
class CliFuzzer:
    ctx: Ctx
    probe: ChangeProbe
    runner: CliRunner
    findings: dict[tuple[str, str], str] = field(default_factory=dict)
    runs: int = 0

    def valid(self, path: tuple[str, ...], param: click.Parameter) -> str | None:
        """A valid value for a required parameter (``None``: leave it out)."""
        name = " ".join(path)
        ctx = self.ctx
        if param.name == "url":
            if name == "restore-backup":
                return f"sqlite:///{ctx.tmp / 'restore-target.db'}"
            return ctx.url
        if not param.required:
            return None
        make: dict[str, Callable[[], str]] = {
            # Reactivating needs an archived session: the snapshot's.
            "session_id": lambda: ctx.snap_session if name == "reactivate" else ctx.sid,
            "snapshot_id": lambda: str(ctx.snap),
            "query": lambda: "needle",
            "path": lambda: (
                str(ctx.backup_file)
                if name == "restore-backup"
                else str(ctx.tmp / ctx.fresh_id("cli-backup"))
            ),
            "older_than": lambda: "3650d",
            "app": lambda: "fuzz-app",
            "user_id": lambda: "fuzz-user",
        }
        if param.name not in make:
            raise LookupError(f"{name}: no valid value for {param.name!r}")
        return make[param.name]()

    def argv(
        self, path: tuple[str, ...], fuzzed: click.Parameter | None, value: str | None
    ) -> list[str]:
        args = [*path, *NEEDED_FLAGS.get(" ".join(path), [])]
        for param in command_at(path).params:
            if isinstance(param, click.Option) and (param.is_flag or param.name == "help"):
                continue
            text = value if param is fuzzed else self.valid(path, param)
            if text is None:
                continue
            if isinstance(param, click.Option):
                args += [param.opts[0], text]
            else:
                args.append(text)
        return args

    def run(self, path: tuple[str, ...], label: str, args: list[str]) -> Result:
        name = " ".join(path)
        self.runs += 1
        before = self.probe.token()
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(20)
        try:
            result = self.runner.invoke(main, args, catch_exceptions=True)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        self.judge(name, label, result)
        if self.probe.token() != before:
            failed_or_read = result.exit_code != 0 or name in READS
            if failed_or_read and logical_dump(self.ctx.url) != self.ctx.dump:
                self.note(name, label, f"exit {result.exit_code} but the data changed")
            self.ctx.refresh()
            self.ctx.dump = logical_dump(self.ctx.url)
        return result

    def judge(self, name: str, label: str, result: Result) -> None:
        allowed = {0, 2} | DOCUMENTED.get(name, set())
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            exc = result.exception
            frames = traceback.extract_tb(exc.__traceback__)
            where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
            kind = f"{type(exc).__module__}.{type(exc).__name__}"
            self.note(name, label, f"{kind}: {exc!s:.150} at {where}")
            return
        output = result.output + result.stderr
        if "Traceback" in output:
            self.note(name, label, "printed a traceback")
        if result.exit_code not in allowed:
            self.note(name, label, f"exit status {result.exit_code}")
        if result.exit_code not in (0, *DOCUMENTED.get(name, ())):
            errors = [
                line for line in result.stderr.splitlines() if line.lower().startswith("error")
            ]
            if len(errors) != 1:
                self.note(name, label, f"error is not one line: {result.stderr[-300:]!r}")
            else:
                at = result.stderr.splitlines().index(errors[0])
                tail = [line for line in result.stderr.splitlines()[at + 1 :] if line.strip()]
                if tail:
                    self.note(name, label, f"error runs over {1 + len(tail)} lines: {tail[:2]!r}")

    def note(self, name: str, label: str, problem: str) -> None:
        self.findings.setdefault((name, problem[:60]), f"{name} [{label}]: {problem}")


@pytest.fixture
def cli_ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Ctx, ChangeProbe]]:
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.delenv("SESSIONSTORE_URL", raising=False)
    url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    store = SessionStore.open(url)
    ctx = Ctx(store=store, url=url, tmp=tmp_path)
    ctx.seed()
    probe = ChangeProbe(url)
    ctx.dump = logical_dump(url)
    try:
        yield ctx, probe
    finally:
        store.close()
        probe.close()


def test_fuzz_every_command(cli_ctx: tuple[Ctx, ChangeProbe]) -> None:
    ctx, probe = cli_ctx
    fuzzer = CliFuzzer(ctx, probe, CliRunner())
    paths = list(commands(main))
    assert len(paths) >= 15, paths
    bad_dbs = bad_databases(ctx.tmp)
    for path in paths:
        valid = fuzzer.run(path, "valid", fuzzer.argv(path, None, None))
        if valid.exit_code != 0 and " ".join(path) not in SQLITE_REFUSES:
            fuzzer.note(" ".join(path), "valid", f"valid call failed: {valid.stderr[-200:]!r}")
        for param in command_at(path).params:
            if isinstance(param, click.Option) and (param.is_flag or param.name == "help"):
                continue
            values = {label: make() for label, make in HOSTILE_TEXT.items()}
            if param.name == "url":
                values.update({f"db:{k}": v for k, v in bad_dbs.items()})
            for label, value in values.items():
                fuzzer.run(path, f"{param.name}={label}", fuzzer.argv(path, param, value))
    print(f"\n{len(paths)} commands, {fuzzer.runs} runs")
    assert not fuzzer.findings, f"{len(fuzzer.findings)} finding(s):\n" + "\n".join(
        fuzzer.findings.values()
    )


def test_tampered_cursor_is_one_clean_line(cli_ctx: tuple[Ctx, ChangeProbe]) -> None:
    """A cursor of nested brackets once printed a RecursionError traceback."""
    ctx, _ = cli_ctx
    nested = HOSTILE_TEXT["cursor-nested"]()
    runner = CliRunner()
    for args in (
        ["sessions", "list", "--db", ctx.url, "--cursor", nested],
        ["search", "needle", "--db", ctx.url, "--cursor", nested],
        ["search", "needle", "--messages", "--db", ctx.url, "--cursor", nested],
    ):
        result = runner.invoke(main, args)
        assert result.exit_code == 2, (args, result.output, result.exception)
        assert result.stderr.startswith("error: malformed cursor"), result.stderr
        assert len(result.stderr.splitlines()) == 1


SUBPROCESS_CASES: dict[str, Callable[[Ctx, dict[str, str]], list[str]]] = {
    "nested cursor": lambda c, b: [
        "sessions", "list", "--db", c.url, "--cursor", HOSTILE_TEXT["cursor-nested"]()
    ],
    "relative url": lambda c, b: ["stats", "--db", b["relative-two-slashes"]],
    "junk file": lambda c, b: ["doctor", "--db", b["junk-file"]],
    "directory": lambda c, b: ["stats", "--db", b["directory"]],
    "closed port": lambda c, b: ["stats", "--db", b["closed-port"]],
    "unknown scheme": lambda c, b: ["show", "x", "--db", b["unknown-scheme"]],
    "surrogate id": lambda c, b: ["show", "\udcff", "--db", c.url],
    "long backup name": lambda c, b: ["backup", str(c.tmp / ("b" * 300)), "--db", c.url],
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(SUBPROCESS_CASES))
def test_entry_point_in_a_subprocess(case: str, cli_ctx: tuple[Ctx, ChangeProbe]) -> None:
    ctx, _ = cli_ctx
    entry = Path(sys.executable).parent / "sessionstore"
    args = SUBPROCESS_CASES[case](ctx, bad_databases(ctx.tmp))
    env = {k: v for k, v in os.environ.items() if k != "SESSIONSTORE_URL"}
    # A lone surrogate crosses into argv the way a shell would pass the raw byte.
    argv = [os.fsencode(a) for a in (str(entry), *args)]
    done = subprocess.run(argv, check=False, capture_output=True, timeout=60, env=env, cwd=ctx.tmp)
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode in (0, 2), (done.returncode, stderr)
    assert b"Traceback" not in done.stderr + done.stdout, stderr
    if done.returncode == 2:
        assert len(stderr.strip().splitlines()) == 1, stderr
    assert logical_dump(ctx.url) == ctx.dump
