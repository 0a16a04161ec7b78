"""The built wheel, installed in a fresh virtualenv, adopts a legacy file on its own.

The wheel is built from the checkout (``python -m build --wheel``; isolated
if hatchling can be fetched, else ``--no-isolation`` with the venv's own),
installed with ``pip`` into a new virtualenv (dependencies from the package
index), and run from a working directory outside the checkout:

* the wheel carries the Alembic scripts as ``sessionstore/_alembic``;
* ``SessionStore.open()`` with the default URL adopts the legacy
  ``.ai-router-sessions.db`` of the working directory: backup made, orphans
  quarantined, every live message kept, every health check green, and the
  migration scripts it ran are the installed ones in site-packages, not the
  checkout's;
* the installed ``sessionstore upgrade`` console script does the same;
* ``alembic -c`` with the ``alembic.ini`` the package ships upgrades a legacy
  file, says ``current`` in one line, and downgrades one step and back;
* the LICENSE travels in the wheel's metadata.

One virtualenv serves the whole module. Slow (about half a minute): marked ``slow``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from .legacy import LegacyFacts, build_legacy_db

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"

PROBE = """
import json
import sessionstore
from sessionstore import SessionStore
from sessionstore.migrations import alembic_config, head_revision

with SessionStore.open() as store:  # the default: ./.ai-router-sessions.db
    report = store.upgrade_report
    health = store.health.check()
    with store.engine.connect() as conn:
        messages = conn.exec_driver_sql("SELECT COUNT(*) FROM messages").scalar()
        quarantined = conn.exec_driver_sql("SELECT COUNT(*) FROM quarantined_messages").scalar()
        conn.rollback()
print(json.dumps({
    "module": sessionstore.__file__,
    "scripts": alembic_config().get_main_option("script_location"),
    "head": head_revision(),
    "found": report.found,
    "to_revision": report.to_revision,
    "backup": str(report.backup_path),
    "orphans": report.orphaned_messages_quarantined,
    "health_ok": health.ok,
    "checks": {c.name: [c.ok, c.detail] for c in health.checks},
    "messages": messages,
    "quarantined": quarantined,
}))
"""


@dataclass(frozen=True)
class Installed:
    wheel: Path
    python: Path
    bin: Path
    site_packages: Path


def _clean_env() -> dict[str, str]:
    """The environment without anything pointing back at the checkout or a database."""
    drop = {"PYTHONPATH", "SESSIONSTORE_URL", "VIRTUAL_ENV", "PYTHONHOME"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _run(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = _clean_env()
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    out = tmp_path_factory.mktemp("dist")
    build = [str(PROJECT_PYTHON), "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)]
    done = _run(build, ROOT, 120)
    if done.returncode != 0:  # no index to fetch hatchling from: use the venv's own
        done = _run([*build[:4], "--no-isolation", *build[4:]], ROOT, 120)
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = out.glob("sessionstore-*.whl")

    venv = tmp_path_factory.mktemp("venv") / "env"
    done = _run([sys.executable, "-m", "venv", str(venv)], out, 120)
    assert done.returncode == 0, done.stderr
    python = venv / "bin" / "python"
    done = _run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        out,
        150,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], out, 60
    )
    return Installed(wheel, python, venv / "bin", Path(found.stdout.strip()))


def _legacy_elsewhere(directory: Path) -> LegacyFacts:
    assert not directory.resolve().is_relative_to(ROOT)
    return build_legacy_db(
        directory / ".ai-router-sessions.db", sessions=40, messages_per_session=10, seed=99
    )


def test_the_wheel_carries_the_migration_scripts(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
    assert {
        "sessionstore/__init__.py",
        "sessionstore/migrations.py",
        "sessionstore/py.typed",
        "sessionstore/_alembic/env.py",
        "sessionstore/_alembic/script.py.mako",
        "sessionstore/_alembic/versions/0001_legacy_baseline.py",
        "sessionstore/_alembic/versions/0002_adopt.py",
        "sessionstore/alembic.ini",
    } <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "alembic/")) for n in names)


def test_the_installed_package_adopts_a_legacy_file_outside_the_checkout(
    installed: Installed, tmp_path: Path
) -> None:
    work = tmp_path / "elsewhere"
    work.mkdir()
    facts = _legacy_elsewhere(work)
    (work / "probe.py").write_text(PROBE, encoding="utf-8")
    done = _run([str(installed.python), "probe.py"], work, 120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])

    package = installed.site_packages / "sessionstore"
    assert Path(out["module"]) == package / "__init__.py"
    assert Path(out["scripts"]) == package / "_alembic"
    assert not Path(out["scripts"]).resolve().is_relative_to(ROOT)
    assert (package / "_alembic" / "versions" / "0002_adopt.py").is_file()

    assert out["found"] == "legacy"
    assert out["to_revision"] == out["head"]
    assert out["health_ok"], out["checks"]
    assert out["messages"] == len(facts.messages)
    assert out["orphans"] == out["quarantined"] == len(facts.orphan_messages)
    backup = Path(out["backup"])
    assert backup.parent.resolve() == work.resolve()
    assert backup.is_file()


def test_the_installed_console_script_upgrades_a_legacy_file(
    installed: Installed, tmp_path: Path
) -> None:
    work = tmp_path / "elsewhere"
    work.mkdir()
    facts = _legacy_elsewhere(work)
    url = f"sqlite:///{facts.path}"
    done = _run([str(installed.bin / "sessionstore"), "upgrade", "--db", url, "--json"], work, 120)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["found"] == "legacy"
    assert report["orphaned_messages_quarantined"] == len(facts.orphan_messages)
    assert report["index_rows_rebuilt"] == len(facts.messages)
    assert Path(report["backup_path"]).is_file()


def test_alembic_with_the_shipped_config_works_outside_the_checkout(
    installed: Installed, tmp_path: Path
) -> None:
    work = tmp_path / "elsewhere"
    work.mkdir()
    facts = _legacy_elsewhere(work)
    ini = installed.site_packages / "sessionstore" / "alembic.ini"
    alembic = [str(installed.bin / "alembic"), "-c", str(ini), "-x", f"url=sqlite:///{facts.path}"]

    done = _run([*alembic, "upgrade", "head"], work, 120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list(work.glob("*.bak-legacy-*"))) == 1

    done = _run([*alembic, "current"], work, 60)
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = done.stdout.splitlines()
    assert line.endswith("(head)") and done.stderr == ""
    head = line.split()[0]

    done = _run([*alembic, "downgrade", "-1"], work, 60)
    assert done.returncode == 0, done.stderr[-3000:]
    done = _run([*alembic, "downgrade", "base"], work, 60)
    assert done.returncode != 0 and done.stdout.startswith("FAILED: refused")
    done = _run([str(installed.bin / "sessionstore"), "upgrade", "--db", f"sqlite:///{facts.path}"],
                work, 60)  # fmt: skip
    assert done.returncode == 0 and head in done.stdout
