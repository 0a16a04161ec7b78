"""Partial files are written only inside a fresh private directory, never at a guessable name.

A partial copy opened through a path someone else can predict can be
redirected by a symbolic link planted there (SQLite follows links when it
opens a file). So, at every step boundary (``sessionstore.files.step``) of a
backup, a restore, an export to a file and the pre-upgrade backup of a legacy
file, up to the step that puts the finished file in place, the only new
entry in the destination's directory is a directory that the operation made
(mode 0700, owned by this user) under a name that differs from run to run;
and it is gone afterwards.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from sessionstore import SessionStore, files

from .legacy import build_legacy_db


class Watch:
    """Records, at each step until the first ``place``, the new entries of a directory."""

    def __init__(self, directory: Path, ignore: tuple[str, ...] = ()) -> None:
        self.directory = directory
        self.ignore = ignore
        self.before = set(os.listdir(directory))
        self.placed = False
        self.steps = 0
        self.private: set[str] = set()

    def __call__(self, label: str) -> None:
        if label == "place":
            self.placed = True
        if self.placed:
            return
        self.steps += 1
        for name in set(os.listdir(self.directory)) - self.before:
            if name.startswith(self.ignore):
                continue  # SQLite's own -wal, -shm, -journal beside the live database
            info = os.lstat(self.directory / name)
            assert stat.S_ISDIR(info.st_mode), f"{name} written outside a private directory"
            assert stat.S_IMODE(info.st_mode) == 0o700, f"{name} is {info.st_mode:o}"
            assert info.st_uid == os.geteuid()
            self.private.add(name)


def watched(
    monkeypatch: pytest.MonkeyPatch, directory: Path, work: Callable[[], object], *ignore: str
) -> str:
    """Run ``work`` under a :class:`Watch`; the one private directory it used."""
    watch = Watch(directory, ignore)
    monkeypatch.setattr(files, "step", watch)
    work()
    monkeypatch.undo()
    assert watch.placed and watch.steps >= 2
    assert len(watch.private) == 1, watch.private
    (name,) = watch.private
    assert not (directory / name).exists(), "the private directory was left behind"
    return name


@pytest.fixture
def live(tmp_path: Path) -> Path:
    path = tmp_path / "live.db"
    with SessionStore.open(f"sqlite:///{path}") as store:
        sid = store.sessions.create("m", session_id="s").session_id
        store.messages.append_many(sid, [{"role": "user", "content": f"m{i}"} for i in range(20)])
    return path


def test_backup_writes_its_partial_copy_in_a_private_directory(
    tmp_path: Path, live: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with SessionStore.open(f"sqlite:///{live}") as store:
        first = watched(monkeypatch, out, lambda: store.backup(out / "a.db"))
        second = watched(monkeypatch, out, lambda: store.backup(out / "b.db"))
    assert first != second  # not a name anyone could plant a link at in advance


def test_restore_stages_the_backup_in_a_private_directory(
    tmp_path: Path, live: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    with SessionStore.open(f"sqlite:///{live}") as store:
        store.backup(backups / "b.db")
    names = {
        watched(
            monkeypatch,
            tmp_path,
            lambda: SessionStore.restore_backup(backups / "b.db", live, force=True),
            "live.db-",
        )
        for _ in range(2)
    }
    assert len(names) == 2


def test_export_file_is_written_in_a_private_directory(
    tmp_path: Path, live: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "exports"
    out.mkdir()
    with SessionStore.open(f"sqlite:///{live}") as store:
        first = watched(monkeypatch, out, lambda: store.export_file("s", out / "s.json"))
        second = watched(monkeypatch, out, lambda: store.export_file("s", out / "t.json"))
    assert first != second


def test_the_pre_upgrade_backup_is_written_in_a_private_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    legacy = build_legacy_db(tmp_path / "legacy.db", sessions=2, messages_per_session=3).path
    url = f"sqlite:///{legacy}"
    watched(monkeypatch, tmp_path, lambda: SessionStore.open(url).close(), "legacy.db-")
    assert len(list(tmp_path.glob("legacy.db.bak-legacy-*"))) == 1
