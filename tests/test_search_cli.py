"""``sessionstore search``: a readable score, the snippet under its header, "(none)".

The table's columns are checked exactly: each row's snippet starts at the
column of the ``snippet`` header, the score is the engine's rank turned
round (higher is better), and an empty search prints the headers and
``(none)`` in both modes. ``--json`` keeps the raw rank.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sessionstore import SessionStore
from sessionstore.cli import main


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    with SessionStore.open(url) as store:
        for n, text in enumerate(
            ["the router drops packets", "routers, routers and one more router here", "none"]
        ):
            sid = store.sessions.create("m", title=f"Notes {n}").session_id
            store.messages.append(sid, "user", text)
            store.messages.append(sid, "assistant", "filler text " * (n + 1))
        # Enough unrelated messages that the word is rare and ranks are not ~0.
        other = store.sessions.create("m", title="Elsewhere").session_id
        store.messages.append_many(
            other, [{"role": "user", "content": f"unrelated line {i}"} for i in range(30)]
        )
    return url


def search(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["search", *args, "--db", url], catch_exceptions=False)
    return result.exit_code, result.output


def columns(out: str) -> tuple[str, list[str]]:
    lines = [line for line in out.splitlines() if line]
    return lines[0], [line for line in lines[2:] if not line.startswith("next page")]


@pytest.mark.parametrize("mode", [(), ("--messages",)])
def test_snippet_starts_under_its_header(url: str, mode: tuple[str, ...]) -> None:
    code, out = search(url, "router", *mode)
    assert code == 0, out
    header, rows = columns(out)
    assert header.split() == (
        ["session", "#", "role", "score", "snippet"]
        if mode
        else ["session", "title", "#", "score", "snippet"]
    )
    start = header.index("snippet")
    assert len(rows) == 2
    snippets = sorted(row[start:] for row in rows)
    # Plain text on a pipe: the marks are taken out, the words stay where they were.
    assert snippets == ["routers, routers and one more router here", "the router drops packets"]
    for row in rows:
        assert row[start - 2 : start] == "  " and row[start] != " "


def test_score_is_readable_and_higher_is_better(url: str) -> None:
    _, out = search(url, "router")
    header, rows = columns(out)
    at, end = header.index("score"), header.index("snippet")
    scores = [float(row[at:end]) for row in rows]
    assert all(score > 0 for score in scores)
    assert scores == sorted(scores, reverse=True)  # best first
    _, raw = search(url, "router", "--json")
    ranks = [item["rank"] for item in json.loads(raw)["items"]]
    assert all(rank < 0 for rank in ranks)
    assert [f"{-rank:.3g}" for rank in ranks] == [row[at:end].strip() for row in rows]


@pytest.mark.parametrize("mode", [(), ("--messages",), ("--recent",), ("--advanced",)])
def test_no_hits_prints_none(url: str, mode: tuple[str, ...]) -> None:
    code, out = search(url, "walrus", *mode)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[-1] == "snippet"
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2:] == ["(none)"]


def test_bounds_are_one_clean_line(url: str) -> None:
    result = CliRunner().invoke(main, ["search", " ".join(f"w{i}" for i in range(40)), "--db", url])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "at most 16" in result.output


@pytest.mark.parametrize("mode", [(), ("--messages",)])
def test_line_separators_in_stored_text_stay_on_their_row(
    tmp_path: Path, mode: tuple[str, ...]
) -> None:
    url = f"sqlite:///{tmp_path / 'breaks.db'}"
    with SessionStore.open(url) as store:
        sid = store.sessions.create("m", title="a\x1cb\u2028c\rd").session_id
        store.messages.append(sid, "user", "first\u2029line\x0bof the gateway\nsecond")
    code, out = search(url, "gateway", *mode)
    assert code == 0, out
    _header, rows = columns(out)
    assert len(rows) == 1, out
    assert "\\u2029" in rows[0] and "\\x0b" in rows[0] and "\\n" in rows[0]
    if not mode:
        assert "a\\x1cb\\u2028c\\rd" in rows[0]
