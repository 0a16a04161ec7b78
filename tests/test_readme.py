"""The README's Python code blocks run as written, in order, against a fresh database.

Every fenced block marked ``python`` is taken from ``README.md`` as it is now
and run in one namespace (a later block may use what an earlier one made),
in a fresh temporary directory that is the working directory, so relative
SQLite URLs and files land there. ``SESSIONSTORE_URL`` points at a file
there too, and a block that names a PostgreSQL URL in its code is run
against that SQLite file instead. A block that raises fails the test with
the block's line number in the README.

The README's other promises that drift as the project grows are checked
against their sources: every extra of ``pyproject.toml`` has its ``pip
install`` line, every Alembic revision a row in the downgrade table, and the
Performance section holds the table ``make bench`` writes (full mode), whose
recorded run time the stated durations of ``make bench`` match.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
# A PostgreSQL URL as a string literal in code (not in a comment).
_POSTGRES_LITERAL = re.compile(r"""(["'])postgres(?:ql)?(?:\+\w+)?://[^"']*\1""")


def python_blocks(text: str) -> list[tuple[int, str]]:
    """Each ``python`` block of ``text``, with the README line its code starts on."""
    return [
        (text.count("\n", 0, match.start(1)) + 1, match.group(1)) for match in _FENCE.finditer(text)
    ]


def test_the_readme_has_python_blocks() -> None:
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 2
    assert any("store.lifecycle.restore" in code for _, code in blocks)
    assert any("import_session" in code for _, code in blocks)


def test_readme_python_blocks_run_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'readme.db'}"
    monkeypatch.setenv("SESSIONSTORE_URL", url)
    namespace: dict[str, object] = {"__name__": "readme"}
    ran = 0
    for line, code in python_blocks(README.read_text(encoding="utf-8")):
        runnable = _POSTGRES_LITERAL.sub(repr(url), code)
        compiled = compile(runnable, f"README.md (block at line {line})", "exec")
        try:
            exec(compiled, namespace)
        except BaseException as exc:
            pytest.fail(f"README.md block at line {line} raised {type(exc).__name__}: {exc}")
        ran += 1
    assert ran >= 2
    store = namespace.get("store")
    close = getattr(store, "close", None)
    if callable(close):
        close()


def _section(text: str, heading: str) -> str:
    """The body of the section under ``heading`` (up to the next heading of any level)."""
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    following = re.search(r"^#{1,6} ", text[start:], re.MULTILINE)
    return text[start : start + following.start()] if following else text[start:]


def test_every_extra_has_its_install_line() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = set(project["optional-dependencies"])
    section = _section(README.read_text(encoding="utf-8"), "### Installing, and the extras")
    documented = set(re.findall(r"pip install 'sessionstore\[([\w-]+)\]'", section))
    assert extras <= documented, f"extras without a line in the README: {extras - documented}"
    assert documented <= extras, f"the README names extras that do not exist: {documented - extras}"


def test_the_downgrade_table_has_a_row_for_every_revision() -> None:
    from sessionstore import migrations

    revisions = [r.revision for r in migrations._scripts().walk_revisions()]
    text = README.read_text(encoding="utf-8")
    table = text[text.index("| revision | downgrade |") :].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE)
    assert rows == revisions  # newest first, each once


def test_the_performance_section_holds_the_full_benchmark_table() -> None:
    text = README.read_text(encoding="utf-8")
    begin, end = "<!-- benchmarks: begin (written by `make bench`) -->", "<!-- benchmarks: end -->"
    block = text[text.index(begin) + len(begin) : text.index(end)].strip()
    assert block.startswith("```text\n") and block.endswith("\n```")
    lines = block.splitlines()[1:-1]
    heading = re.match(r"full mode, started .* UTC, ([\d.]+) min, load average", lines[0])
    assert heading, lines[0]
    header = lines[lines.index("") + 1].split()
    assert header == [
        "operation", "ours", "baseline", "floor", "/base", "/floor", "target", "verdict",
    ]  # fmt: skip
    rows = lines[lines.index("") + 3 : lines.index("", lines.index("") + 1)]
    assert len(rows) >= 40
    assert all(row.split()[-1] in {"pass", "MISS", "?", "-"} for row in rows)
    assert re.search(r"^\d+ of \d+ targets met", block, re.MULTILINE)

    # What the Makefile and the docs say a full run takes, against what this one took.
    took = float(heading.group(1))
    claims = {
        "Makefile": (
            (ROOT / "Makefile").read_text(encoding="utf-8"),
            r"# make bench +the full benchmarks \(about (\d+) minutes",
        ),
        "README.md": (
            _section(text, "## Performance"),
            r"`make bench` runs the full\s+suite \(about (\d+) minutes\)",
        ),
        "benchmarks/README.md": (
            (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8"),
            r"about (\d+) for `make bench`",
        ),
    }
    for where, (source, pattern) in claims.items():
        said = re.search(pattern, source)
        assert said, f"{where} no longer says how long `make bench` takes"
        assert took / 1.5 <= int(said.group(1)) <= took * 1.5, (
            f"{where} says `make bench` takes about {said.group(1)} minutes; the README's "
            f"table took {took} min"
        )
