"""The benchmark report: one compact table from pytest-benchmark's JSON, and the README block.

One test runs a real quick-mode benchmark module (``--quick``, the session
benchmarks: a few seconds) and reads its JSON through ``benchmarks/report.py``
as ``make bench`` does. The others feed the report small JSON files in
pytest-benchmark's format, to pin the pairing rules (by ``extra_info``, the
hostile row), the verdicts and the errors.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "benchmarks" / "report.py"
BEGIN = "<!-- benchmarks: begin (written by `make bench`) -->"
END = "<!-- benchmarks: end -->"
PEERS_BEGIN = "<!-- peers: begin (written by `make bench`) -->"
PEERS_END = "<!-- peers: end -->"
WIDTH = 112


def _report(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPORT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _bench(name: str, median: float, **info: Any) -> dict[str, Any]:
    return {"name": name, "stats": {"median": median}, "extra_info": info}


def _write(path: Path, benchmarks: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"benchmarks": benchmarks}), encoding="utf-8")
    return path


def _rows(stdout: str) -> dict[str, list[str]]:
    """The table's rows by operation: the cells after the operation, split on 2+ spaces."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("operation"))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        cells = [c for c in line.split("  ") if c.strip()]
        rows[cells[0].strip()] = [c.strip() for c in cells[1:]]
    return rows


@pytest.mark.slow
def test_quick_run_ends_in_one_compact_table(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    command = [sys.executable, "-m", "pytest", "benchmarks/test_bench_sessions.py", "-q"]
    command += ["-p", "no:cacheprovider", "--quick", "--benchmark-only", "--benchmark-quiet"]
    command += [f"--benchmark-json={output}", f"--basetemp={tmp_path / 'run'}"]
    run = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "passed" in run.stdout
    data = json.loads(output.read_text(encoding="utf-8"))
    assert data["run"]["mode"] == "quick"

    result = _report(output)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= WIDTH
    assert lines[0].startswith("quick mode, ")
    rows = _rows(result.stdout)
    # Quick sizes in the titles, each paired with its raw side and the floor by extra_info.
    for title in (
        "sessions.list p. 1 (20 of 2,000)",
        "sessions.list p. 20",
        "sessions.list(rare model, active)",
        "sessions.get(id), 2,000 sessions",
    ):
        ours, baseline, floor, ratio, floor_ratio, target, verdict = rows[title]
        assert ours.endswith("us") and baseline.endswith("us") and floor.endswith("us")
        assert ratio.endswith("x") and floor_ratio.endswith("x") and target.startswith("<=")
        assert verdict in {"pass", "MISS"}
    assert rows["sessions.get(id), 2,000 sessions"][5] == "<=2x"
    assert rows["sessions.list p. 1 (20 of 2,000)"][5] == "<=2x,F<=2x"
    # A depth row compares ours with ours: no floor.
    _ours, _shallow, floor, _ratio, floor_ratio, target, _verdict = rows[
        "depth: sessions.list p. 20 / p. 1"
    ]
    assert (floor, floor_ratio, target) == ("-", "-", "<=1.25x")
    assert "of 5 targets met" in result.stdout


_FIND = {"op": "find", "side": "ours", "title": "find", "target": "search"}


def test_pairs_by_extra_info_and_prints_a_missed_target(tmp_path: Path) -> None:
    data = _write(
        tmp_path / "b.json",
        [
            _bench("test_get[ours]", 3e-6, op="get", side="ours", title="get", target="read"),
            _bench("test_get[raw_dict]", 1e-6, op="get", side="raw_dict", title="get"),
            _bench("test_get[raw_tuple]", 5e-7, op="get", side="raw_tuple", title="get"),
            _bench("test_put[ours]", 1e-4, op="put", side="ours", title="put", target="write"),
            _bench("test_put[raw_dict]", 8e-5, op="put", side="raw_dict", title="put"),
            _bench("test_stage", 1.0, kind="search_stage", title="a stage"),
            # Raw timed interleaved with ours (same load) wins over its separate run.
            _bench("find[raw]", 0.002, op="find", side="raw", title="find"),
            _bench("find[ours]", 0.010, **_FIND, paired_raw_p50_ms=8.0),
        ],
    )
    result = _report(data)
    assert result.returncode == 0, result.stderr  # a missed target is a verdict, not an error
    rows = _rows(result.stdout)
    assert rows["get"] == ["3.00 us", "1.00 us", "-", "3.00x", "-", "<=2x", "MISS"]
    assert rows["put"] == ["100 us", "80.0 us", "-", "1.25x", "-", "<=2x", "pass"]
    assert "a stage" not in rows
    assert rows["find"] == ["10.0 ms", "8.00 ms", "-", "1.25x", "-", "<=1.5x", "pass"]
    assert "2 of 3 targets met, 1 missed" in result.stdout
    assert "bare tuples" in result.stdout and "6.00x" in result.stdout
    assert max(map(len, result.stdout.splitlines())) <= WIDTH


def test_hostile_searches_make_one_row_against_the_worst_legitimate(tmp_path: Path) -> None:
    def search(name: str, median: float, side: str = "ours", op: str | None = None) -> Any:
        return _bench(
            name, median, kind="search", op=op or name, side=side, title=name, target="search"
        )

    data = _write(
        tmp_path / "b.json",
        [
            search("common", 0.050),
            search("common", 0.040, side="raw"),
            search("rare", 0.001),
            search("rare", 0.001, side="raw"),
            search("test_hostile_prefixes[ours]", 0.030, op="hostile_prefixes"),
            search("test_hostile_prefixes[raw]", 0.020, side="raw", op="hostile_prefixes"),
            search("test_hostile_near[ours]", 0.045, op="hostile_near"),
        ],
    )
    result = _report(data)
    assert result.returncode == 0, result.stderr
    rows = _rows(result.stdout)
    assert rows["search: worst hostile / worst legitimate"] == [
        "45.0 ms", "50.0 ms", "-", "0.90x", "-", "<=1x", "pass",
    ]  # fmt: skip
    assert not [title for title in rows if "hostile" in title and title.startswith("test_")]
    assert rows["common"][3:] == ["1.25x", "-", "<=1.5x", "pass"]


def test_hostile_and_legitimate_by_role(tmp_path: Path) -> None:
    def bound(name: str, median: float, role: str) -> dict[str, Any]:
        return _bench(f"test_{role}[{name}]", median, kind="search_bound", op=name, role=role)

    data = _write(
        tmp_path / "b.json",
        [
            # An ordinary search slower than every legitimate worst case: not the baseline.
            _bench("common[ours]", 0.9, kind="search", op="common", side="ours", title="common"),
            bound("commonest_word", 0.080, "legit"),
            bound("commonest_prefix", 0.120, "legit"),
            bound("prefix_x200", 0.150, "hostile"),
            bound("or_4_commonest", 0.060, "hostile"),
        ],
    )
    result = _report(data)
    assert result.returncode == 0, result.stderr
    rows = _rows(result.stdout)
    assert rows["search: worst hostile / worst legitimate"] == [
        "150 ms", "120 ms", "-", "1.25x", "-", "<=1x", "MISS",
    ]  # fmt: skip
    assert not {"commonest_word", "prefix_x200"} & set(rows)
    assert "Worst hostile search: prefix_x200 (150 ms)." in result.stdout
    assert "Worst legitimate search: commonest_prefix (120 ms)." in result.stdout


def test_writes_the_table_between_the_readme_markers_only(tmp_path: Path) -> None:
    data = _write(
        tmp_path / "b.json",
        [
            _bench("a[ours]", 2e-6, op="a", side="ours", title="op a", target="read"),
            _bench("a[raw]", 1e-6, op="a", side="raw", title="op a"),
        ],
    )
    readme = tmp_path / "README.md"
    before, after = "# Title\n\ntext before\n\n", "\n\n## Next\ntext after\n"
    readme.write_text(f"{before}{BEGIN}\nold table\n{END}{after}", encoding="utf-8")
    for _ in range(2):  # writing again replaces the block, it does not add one
        result = _report(data, "--readme", readme)
        assert result.returncode == 0, result.stderr
    text = readme.read_text(encoding="utf-8")
    assert text.startswith(before + BEGIN) and text.endswith(END + after)
    assert "old table" not in text and text.count("op a") == 1
    block = text[text.index(BEGIN) : text.index(END)]
    assert "```text" in block and "op a" in block


def test_errors_are_one_line_and_leave_the_readme_alone(tmp_path: Path) -> None:
    missing = _report(tmp_path / "nope.json")
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "nope.json" in missing.stderr
    assert missing.stdout == ""

    empty = _write(tmp_path / "empty.json", [])
    result = _report(empty)
    assert result.returncode == 2 and "holds no benchmarks" in result.stderr

    data = _write(
        tmp_path / "b.json",
        [_bench("a[ours]", 2e-6, op="a", side="ours", title="op a", target="read")],
    )
    readme = tmp_path / "README.md"
    readme.write_text("# no markers here\n", encoding="utf-8")
    result = _report(data, "--readme", readme)
    assert result.returncode == 2 and "README.md" in result.stderr
    assert readme.read_text(encoding="utf-8") == "# no markers here\n"


def test_every_row_states_both_ratios_and_is_held_to_both_ceilings(tmp_path: Path) -> None:
    def side(op: str, side: str, median: float, **info: Any) -> dict[str, Any]:
        return _bench(f"{op}[{side}]", median, op=op, side=side, title=op, **info)

    data = _write(
        tmp_path / "b.json",
        [
            side("append", "ours", 60e-6, target="write", floor_target="append"),
            side("append", "raw_dict", 50e-6),
            side("append", "floor", 50e-6),
            side("recent", "ours", 90e-6, target="read", floor_target="read"),
            side("recent", "raw_dict", 80e-6),
            side("recent", "floor", 50e-6),
            # A figure, not a median: errors must be zero.
            side("errors", "ours", 1.0, kind="user", unit="n", value=0, target="zero"),
            side("errors", "floor", 1.0, kind="user", unit="n", value=0),
            side("busy", "ours", 1.0, kind="user", unit="n", value=3, target="zero"),
        ],
    )
    result = _report(data)
    assert result.returncode == 0, result.stderr
    rows = _rows(result.stdout)
    assert rows["append"] == ["60.0 us", "50.0 us", "50.0 us", "1.20x", "1.20x", "<=2x,F<=1.25x",
                              "pass"]  # fmt: skip
    # Within 2x of the raw layer, but 1.8x the floor: missed.
    assert rows["recent"] == ["90.0 us", "80.0 us", "50.0 us", "1.12x", "1.80x", "<=2x,F<=1.5x",
                              "MISS"]  # fmt: skip
    assert rows["errors"] == ["0", "-", "0", "-", "-", "=0", "pass"]
    assert rows["busy"] == ["3", "-", "-", "-", "-", "=0", "MISS"]
    assert "2 of 4 targets met, 2 missed" in result.stdout
    assert "floor: the minimal hand-written sqlite3 layer" in result.stdout


def test_peers_make_a_second_table_written_into_its_own_readme_block(tmp_path: Path) -> None:
    def user(side: str, value: float) -> dict[str, Any]:
        return _bench(f"u[{side}]", 1.0, kind="user", op="user_append", side=side,
                      title="append p50", value=value)  # fmt: skip

    def peer(name: str, title: str, value: float) -> dict[str, Any]:
        return _bench(f"p[{name}]", 1.0, kind="peer", op="user_append", side=name,
                      peer_title=title, title="append p50", value=value)  # fmt: skip

    data = _write(
        tmp_path / "b.json",
        [
            user("ours", 100e-6),
            user("floor", 80e-6),
            user("raw", 90e-6),
            peer("openai_sqlite", "OpenAI SQLiteSession", 500e-6),
            peer("adk", "ADK DatabaseSessionService", 4e-3),
        ],
    )
    readme = tmp_path / "README.md"
    readme.write_text(f"{BEGIN}\nold\n{END}\n\n{PEERS_BEGIN}\nold peers\n{PEERS_END}\n")
    result = _report(data, "--readme", readme)
    assert result.returncode == 0, result.stderr
    header = (
        "| workload | floor | ours | OpenAI SQLiteSession | ADK DatabaseSessionService"
        " | best peer/ours |"
    )
    row = "| append p50 | 80.0 us | 100 us | 500 us | 4.00 ms | 5.00x |"
    assert header in result.stdout and row in result.stdout
    text = readme.read_text(encoding="utf-8")
    assert "old" not in text and text.count(row) == 1
    assert text.index(PEERS_BEGIN) < text.index(row) < text.index(PEERS_END)
    # The main table keeps ours against the raw layer and the floor; no peer in it.
    assert _rows(result.stdout)["append p50"][:5] == ["100 us", "90.0 us", "80.0 us", "1.11x",
                                                      "1.25x"]  # fmt: skip
