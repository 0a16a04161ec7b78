"""The frameworks' test files: fetched verified, listed, ignored, or skipped with a reason.

``scripts/upstream-tests`` is loaded as a module and pointed at a temporary
tree (its ``CACHE`` and ``INTEGRATIONS``), with pins made for files written
here, so nothing is downloaded and the repository's own directories are not
touched. The ``upstream/`` conftests are run by pytest in a subprocess on a
copy of those directories holding no fetched file.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.machinery
import importlib.util
import io
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "upstream-tests"
INTEGRATIONS = ROOT / "tests" / "integrations"
SUITES = ("openai_agents", "langchain", "adk")

if not SCRIPT.is_file():  # a source distribution ships no scripts/
    pytest.skip("scripts/upstream-tests is not here", allow_module_level=True)


@pytest.fixture
def script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The script as a module, its cache and target tree under ``tmp_path``."""
    loader = importlib.machinery.SourceFileLoader("upstream_tests_script", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the script runs.
    monkeypatch.setitem(sys.modules, loader.name, module)
    loader.exec_module(module)
    monkeypatch.setattr(module, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(module, "INTEGRATIONS", tmp_path / "integrations")
    for suite in SUITES:
        (tmp_path / "integrations" / suite / "upstream").mkdir(parents=True)
    yield module


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sdist(module: ModuleType, files: dict[str, bytes]) -> object:
    """A pinned sdist of ``files`` (path in the archive -> content) for the langchain suite."""
    pins = tuple(
        module.Pinned(Path(source).name, source, _sha(data)) for source, data in files.items()
    )
    return module.Sdist("example==1.0", "example-1.0.tar.gz", "langchain", pins)


def _archive(path: Path, files: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for source, data in files.items():
            info = tarfile.TarInfo(f"example-1.0/{source}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _literal(path: Path, name: str) -> object:
    """The literal value a module assigns to ``name`` (read, not imported)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == name for target in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{path} assigns no {name}")


def test_every_pinned_file_is_in_its_notice_ignored_by_git_and_expected_by_its_conftest() -> None:
    loader = importlib.machinery.SourceFileLoader("upstream_tests_pins", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module
    try:
        loader.exec_module(module)
    finally:
        del sys.modules[loader.name]
    pinned: dict[str, list[str]] = {suite: [] for suite in SUITES}
    for sdist in module.SDISTS:
        pinned[sdist.suite] += [file.name for file in sdist.files]
    pinned["adk"] += [file.name for file in module.ADK.files]
    ignored = set((ROOT / ".gitignore").read_text(encoding="utf-8").splitlines())
    for suite, names in pinned.items():
        upstream = INTEGRATIONS / suite / "upstream"
        assert sorted(names) == sorted(_literal(upstream / "conftest.py", "UPSTREAM"))  # type: ignore[arg-type]
        notice = (upstream / "NOTICE").read_text(encoding="utf-8")
        for name in names:
            assert name in notice
            assert f"/tests/integrations/{suite}/upstream/{name}" in ignored


def test_files_come_out_of_a_cached_sdist_verified_without_a_download(
    script: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"tests/a/test_one.py": b"def test_one(): pass\n", "tests/helper.py": b"X = 1\n"}
    sdist = _sdist(script, files)
    monkeypatch.setattr(script, "SDISTS", (sdist,))
    _archive(script.CACHE / "example-1.0.tar.gz", files)
    monkeypatch.setattr(script, "download", lambda sdists: pytest.fail("downloaded"))

    assert script.fetch_sdists() is True
    target = script.INTEGRATIONS / "langchain" / "upstream"
    assert (target / "test_one.py").read_bytes() == files["tests/a/test_one.py"]
    assert (target / "helper.py").read_bytes() == files["tests/helper.py"]
    assert sorted(p.name for p in target.iterdir()) == ["helper.py", "test_one.py"]


def test_an_sdist_whose_file_is_not_the_pinned_one_writes_nothing_and_fails(
    script: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"tests/test_one.py": b"def test_one(): pass\n"}
    monkeypatch.setattr(script, "SDISTS", (_sdist(script, files),))
    tampered = {"tests/test_one.py": b"def test_one(): assert True\n"}
    _archive(script.CACHE / "example-1.0.tar.gz", tampered)
    downloads: list[str] = []

    def download_the_same(sdists: list[object]) -> None:  # the index serves it too
        downloads.append("again")
        _archive(script.CACHE / "example-1.0.tar.gz", tampered)

    monkeypatch.setattr(script, "download", download_the_same)
    assert script.fetch_sdists() is False
    assert downloads == ["again"]  # the cached archive is fetched once more first
    assert list((script.INTEGRATIONS / "langchain" / "upstream").iterdir()) == []


def test_without_network_a_suite_is_left_to_skip_and_a_stale_copy_is_removed(
    script: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {"tests/test_one.py": b"def test_one(): pass\n"}
    monkeypatch.setattr(script, "SDISTS", (_sdist(script, files),))
    target = script.INTEGRATIONS / "langchain" / "upstream"
    (target / "test_one.py").write_bytes(b"an edited copy\n")
    monkeypatch.setattr(script, "download", lambda sdists: "network is unreachable")

    assert script.fetch_sdists() is True
    assert not (target / "test_one.py").exists()
    assert "its tests will be skipped: network is unreachable" in capsys.readouterr().out


def test_adk_files_are_copied_from_the_named_directory_only_when_both_match(
    script: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    checkout = tmp_path / "adk-python" / "tests" / "unittests" / "sessions"
    checkout.mkdir(parents=True)
    contents = {"test_session_service.py": b"def test_x(): pass\n", "_conformance.py": b"B = []\n"}
    for name, data in contents.items():
        (checkout / name).write_bytes(data)
    pins = tuple(script.Pinned(name, name, _sha(data)) for name, data in contents.items())
    monkeypatch.setattr(script, "ADK", script.Suite("adk", pins))
    monkeypatch.setenv(script.ADK_ENV, str(checkout))
    target = script.INTEGRATIONS / "adk" / "upstream"

    (checkout / "_conformance.py").write_bytes(b"B = ['ours']\n")  # an edited registry
    assert script.fetch_adk() is False
    assert list(target.iterdir()) == []  # neither is written

    (checkout / "_conformance.py").write_bytes(contents["_conformance.py"])
    assert script.fetch_adk() is True
    assert {p.name: p.read_bytes() for p in target.iterdir()} == contents


def test_without_the_adk_directory_the_suite_is_skipped_in_one_line(
    script: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(script.ADK_ENV, raising=False)
    assert script.fetch_adk() is True
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1
    assert "ADK conformance suite skipped: SESSIONSTORE_ADK_TESTS is not set" in out[0]
    assert script.ADK_COMMIT in out[0]


@pytest.mark.slow  # a pytest subprocess importing the three frameworks: 3 to 10 s
def test_upstream_directories_without_their_files_are_skipped_with_the_reason(
    tmp_path: Path,
) -> None:
    # A copy of tests/integrations with the project's own files only, plus
    # one file of an incomplete LangChain set, which must not be collected.
    copy = tmp_path / "tests" / "integrations"
    copy.mkdir(parents=True)
    (tmp_path / "tests" / "__init__.py").touch()
    for name in ("__init__.py", "upstream_files.py"):
        shutil.copy(INTEGRATIONS / name, copy / name)
    for suite in SUITES:
        (copy / suite / "upstream").mkdir(parents=True)
        (copy / suite / "__init__.py").touch()
        for name in ("__init__.py", "conftest.py", "NOTICE"):
            shutil.copy(INTEGRATIONS / suite / "upstream" / name, copy / suite / "upstream" / name)
    (copy / "langchain" / "upstream" / "test_sql.py").write_text("raise ImportError('partial')\n")

    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(copy)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 skipped" in done.stdout
    for suite in SUITES:
        assert f"SKIPPED [1] tests/integrations/{suite}/upstream/NOTICE: " in done.stdout
    assert "pydantic_utils.py not fetched (run scripts/upstream-tests)" in done.stdout
    assert "SESSIONSTORE_ADK_TESTS" in done.stdout
