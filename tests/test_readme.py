"""The README's Python code blocks run as written, in order, against a fresh database.

Every fenced block marked ``python`` is taken from ``README.md`` as it is now
and run in one namespace (a later block may use what an earlier one made),
in a fresh temporary directory that is the working directory, so relative
SQLite URLs and files land there. ``SESSIONSTORE_URL`` points at a file
there too, and a block that names a PostgreSQL URL in its code is run
against that SQLite file instead. A block that raises fails the test with
the block's line number in the README.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
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
