"""Turn a pytest-benchmark JSON into one compact table: ours, the baseline, the ratio, a verdict.

Usage::

    .venv/bin/python benchmarks/report.py .benchmarks/bench-full.json [--readme README.md]

Every benchmark that belongs in the table says so in its ``extra_info``
(the benchmark modules' labels do this); no list of benchmarks is kept here:

* ``op``: the operation; the benchmarks that share an ``op`` form one row;
* ``side``: ``"ours"``, or the raw ``sqlite3`` baseline doing the same work
  (``"raw"``, or ``"raw_dict"`` whose rows are dicts; ``"raw_tuple"``, bare
  tuples, is summed up under the table, not judged);
* ``title``: the row's label; ``target``: a key of :data:`TARGETS`, or None
  for a figure that is reported, not judged;
* ``depth_of`` / ``depth_title``: the operation this one is compared with
  at depth; that gives a second row, ours deep against ours shallow, judged
  against ``TARGETS["depth"]``;
* ``value`` / ``baseline_value`` / ``unit``: a figure that is not the
  median time (bytes, or a time per item), in place of the medians;
* ``paired_raw_p50_ms`` (on our side): the raw side's median when it was
  timed interleaved with ours (the search benchmarks do this), preferred to
  its separate run because both then saw the same machine load.

Hostile searches give one row together: the slowest of them against the
slowest legitimate search, judged against ``TARGETS["hostile"]``. A
benchmark is hostile when its ``role`` is ``"hostile"`` (or, without a
``role``, when its name holds "hostile"); the legitimate side is the
benchmarks whose ``role`` is ``"legit"``, or else every search of ours.

A missed target is printed as ``MISS``; the exit status is 0 unless the
report itself fails (no file, no benchmarks, an unreadable README).
``--readme`` also writes the table into that file, between the lines
:data:`BEGIN` and :data:`END`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

#: The targets, in one place: the ceiling on each row's ratio (ours / baseline).
TARGETS: dict[str, float] = {
    # ours / raw sqlite3 doing the same work (rows as dicts)
    "write": 2.0,
    "read": 2.0,
    # ours / raw sqlite3 running the library's own search SQL
    "search": 1.5,
    # ours deep / ours shallow (append to a long session, a deep page)
    "depth": 1.25,
    # the slowest hostile query / the slowest legitimate search
    "hostile": 1.0,
    # PostgreSQL: ours / raw psycopg running the same statements
    "pg_write": 1.3,
    "pg_read": 1.5,
}
#: The ceilings on ours / the floor (``floor.py``: the minimal hand-written layer).
FLOOR_TARGETS: dict[str, float] = {
    "append": 1.25,
    "concurrent": 1.3,
    "read": 1.5,
    "list": 2.0,
    "bulk": 1.3,
    "processes": 1.3,
}
#: Absolute ceilings on our median, in seconds, for the rows that have one.
ABSOLUTE: dict[str, float] = {"search_rare": 0.020, "search_recent": 0.050}
#: ``search_rare`` is held to the search ratio as well as to its ceiling.
RATIO_OF = {"search_rare": "search", "search_recent": "search"}
#: Rows whose figure is a count that must be zero (errors).
ZERO = "zero"

BASELINE_SIDES = ("raw", "raw_dict")
FLOOR_SIDE = "floor"
BEGIN = "<!-- benchmarks: begin (written by `make bench`) -->"
END = "<!-- benchmarks: end -->"
PEERS_BEGIN = "<!-- peers: begin (written by `make bench`) -->"
PEERS_END = "<!-- peers: end -->"
WIDTH = 112
TITLE_WIDTH = 40


class ReportError(Exception):
    """The report cannot be made (a missing or malformed file)."""


@dataclass
class Row:
    title: str
    ours: float | None
    baseline: float | None
    unit: str = "s"
    target: str | None = None
    #: The minimal hand-written layer's figure, and the key of its ceiling in FLOOR_TARGETS.
    floor: float | None = None
    floor_target: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.ours is None or not self.baseline or self.unit == "n":
            return None
        return self.ours / self.baseline

    @property
    def floor_ratio(self) -> float | None:
        if self.ours is None or not self.floor or self.unit == "n":
            return None
        return self.ours / self.floor

    @property
    def judged(self) -> bool:
        return self.target is not None or self.floor_target is not None

    def target_text(self) -> str:
        parts = []
        ratio_key = RATIO_OF.get(self.target or "", self.target)
        if ratio_key in TARGETS:
            parts.append(f"<={TARGETS[ratio_key]:g}x")
        if self.target in ABSOLUTE:
            parts.append(f"<={ABSOLUTE[self.target or ''] * 1e3:g}ms")
        if self.target == ZERO:
            parts.append("=0")
        if self.floor_target in FLOOR_TARGETS:
            parts.append(f"F<={FLOOR_TARGETS[self.floor_target or '']:g}x")
        return ",".join(parts) or "-"

    def verdict(self) -> str:
        if not self.judged:
            return "-"
        checks: list[bool | None] = []
        ratio_key = RATIO_OF.get(self.target or "", self.target)
        if ratio_key in TARGETS:
            checks.append(None if self.ratio is None else self.ratio <= TARGETS[ratio_key])
        if self.target in ABSOLUTE:
            limit = ABSOLUTE[self.target or ""]
            checks.append(None if self.ours is None else self.ours <= limit)
        if self.target == ZERO:
            checks.append(None if self.ours is None else self.ours == 0)
        if self.floor_target in FLOOR_TARGETS:
            limit = FLOOR_TARGETS[self.floor_target or ""]
            ratio = self.floor_ratio
            checks.append(None if ratio is None else ratio <= limit)
        if not checks or None in checks:
            return "?"
        return "pass" if all(checks) else "MISS"


def _amount(value: float | None, unit: str, like: float | None = None) -> str:
    """A time in s/ms/us, or bytes in B/KiB/MiB, to three significant digits.

    The prefix is chosen for ``like`` when given, so both figures of a row share it.
    """
    if value is None:
        return "-"
    if unit == "n":
        return f"{value:,.0f}"
    steps: list[tuple[float, str]]
    if unit == "B":
        steps = [(1024**2, "MiB"), (1024, "KiB"), (1, "B")]
    else:
        steps = [(1.0, "s"), (1e-3, "ms"), (1e-6, "us")]
    pick = abs(like if like is not None else value)
    size, name = next(((s, n) for s, n in steps if pick >= s), steps[-1])
    scaled = value / size
    digits = 0 if abs(scaled) >= 100 else 1 if abs(scaled) >= 10 else 2
    return f"{scaled:,.{digits}f} {name}"


# --- reading ------------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ReportError(f"{path}: no such file (run `make bench` first)") from exc
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: not a pytest-benchmark JSON file ({exc})") from exc
    if not isinstance(data, dict) or not data.get("benchmarks"):
        raise ReportError(f"{path}: holds no benchmarks")
    return data


def _role(bench: dict[str, Any]) -> str | None:
    """``"hostile"``, ``"legit"`` or None: the benchmark's part in the worst-case row."""
    info = bench.get("extra_info", {})
    if info.get("role") in ("hostile", "legit"):
        return str(info["role"])
    if "hostile" in f"{bench.get('name', '')} {info.get('op', '')}".lower():
        return "hostile"
    return None


def _worst_case(data: dict[str, Any]) -> tuple[Row | None, list[str]]:
    """The slowest hostile search against the slowest legitimate one, and which they were."""
    found: dict[str, dict[str, float]] = {"hostile": {}, "legit": {}, "search": {}}
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        if info.get("side", "ours") != "ours":
            continue
        role = _role(bench) or ("search" if info.get("kind") == "search" else None)
        if role is not None:
            found[role][str(info.get("op") or bench.get("name"))] = bench["stats"]["median"]
    hostile, legit = found["hostile"], found["legit"] or found["search"]
    if not hostile:
        return None, []
    worst = max(hostile, key=hostile.__getitem__)
    row = Row("search: worst hostile / worst legitimate", hostile[worst], None, target="hostile")
    notes = [f"Worst hostile search: {worst} ({_amount(hostile[worst], 's')})."]
    if legit:
        legit_worst = max(legit, key=legit.__getitem__)
        row.baseline = legit[legit_worst]
        notes.append(f"Worst legitimate search: {legit_worst} ({_amount(row.baseline, 's')}).")
    return row, [_clip(note, WIDTH) for note in notes]


def rows(data: dict[str, Any]) -> tuple[list[Row], list[float], list[str]]:
    """The table's rows (by group, then in the order the benchmarks ran), the
    ours/raw-tuple ratios, and the lines naming the worst hostile and legitimate searches."""
    by_op: dict[str, dict[str, Any]] = {}
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        median = bench["stats"]["median"]
        if "op" not in info or "side" not in info or _role(bench) is not None:
            continue
        if info.get("kind") == "peer":
            continue
        entry = by_op.setdefault(info["op"], {"info": info, "median": {}})
        entry["median"][info["side"]] = info.get("value", median)
        if info["side"] == "ours":
            entry["info"] = info
    table: list[Row] = []
    tuple_ratios: list[float] = []
    depth: list[Row] = []
    for entry in by_op.values():
        info, median = entry["info"], entry["median"]
        baseline = info.get("baseline_value")
        if baseline is None and info.get("paired_raw_p50_ms") is not None:
            # The raw side timed just before each of our rounds: the same machine load.
            baseline = info["paired_raw_p50_ms"] / 1e3
        if baseline is None:
            baseline = next((median[s] for s in BASELINE_SIDES if s in median), None)
        ours = median.get("ours")
        unit = info.get("unit", "s")
        floor = median.get(FLOOR_SIDE, info.get("floor_value"))
        table.append(
            Row(info["title"], ours, baseline, unit, info.get("target"), floor,
                info.get("floor_target"))
        )  # fmt: skip
        if ours is not None and median.get("raw_tuple"):
            tuple_ratios.append(ours / median["raw_tuple"])
        shallow = by_op.get(info.get("depth_of") or "")
        if shallow is not None and ours is not None:
            title = info.get("depth_title") or f"depth: {info['title']}"
            depth.append(Row(title, ours, shallow["median"].get("ours"), unit, "depth"))
    worst, note = _worst_case(data)
    if worst is not None:
        table.append(worst)
    return sorted(table + depth, key=_group), tuple_ratios, note


def _group(row: Row) -> int:
    """User workloads, writes, reads, search, depth, then the figures reported, not judged."""
    key = RATIO_OF.get(row.target or "", row.target)
    if row.floor_target is not None and row.target in (None, ZERO, "user"):
        key = "user"
    order = ["user", "write", "read", "search", "hostile", "depth"]
    return order.index(key) if key in order else len(order)


# --- writing ------------------------------------------------------------------------


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def _larger(a: float | None, b: float | None) -> float | None:
    return max((x for x in (a, b) if x is not None), default=None)


def render(table: list[Row]) -> list[str]:
    headers = ["operation", "ours", "baseline", "floor", "/base", "/floor", "target", "verdict"]
    cells = []
    for row in table:
        like = _larger(_larger(row.ours, row.baseline), row.floor)
        cells.append(
            [
                _clip(row.title, TITLE_WIDTH),
                _amount(row.ours, row.unit, like),
                _amount(row.baseline, row.unit, like),
                _amount(row.floor, row.unit, like),
                "-" if row.ratio is None else f"{row.ratio:.2f}x",
                "-" if row.floor_ratio is None else f"{row.floor_ratio:.2f}x",
                row.target_text(),
                row.verdict(),
            ]
        )
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(headers)]

    def line(values: list[str]) -> str:
        return "  ".join(
            v.ljust(w) if i in (0, 7) else v.rjust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    return [line(headers), "  ".join("-" * w for w in widths), *map(line, cells)]


def heading(data: dict[str, Any]) -> list[str]:
    """When, how long and under what load the run was made; then on what machine."""
    run = data.get("run", {})
    machine = data.get("machine_info", {})
    cpu = machine.get("cpu", {})
    when = data.get("datetime", "")
    seconds = run.get("wall_seconds")
    with contextlib.suppress(ValueError):
        # pytest-benchmark stamps the file when it writes it, at the end of the run.
        started = datetime.fromisoformat(when) - timedelta(seconds=seconds or 0)
        when = started.strftime("%Y-%m-%d %H:%M UTC")
    first = [f"{run.get('mode', '?')} mode, started {when}"]
    if seconds is not None:
        first.append(f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min")
    load, load_end = run.get("loadavg_start"), run.get("loadavg_end")
    if load and load_end:
        first.append(f"load average {load[0]:.1f} at the start, {load_end[0]:.1f} at the end")
    cores = run.get("cpu_count", cpu.get("count", "?"))
    second = [f"{cores} cores"]
    if cpu.get("brand_raw"):
        second.append(f"{cpu['brand_raw']} {cpu.get('hz_advertised_friendly', '')}".strip())
    second.append(
        f"{machine.get('system', '')}; Python {machine.get('python_version', '?')}, "
        f"SQLite {run.get('sqlite_version', '?')}"
    )
    return [_clip(", ".join(first), WIDTH), _clip(", ".join(second), WIDTH)]


def report(data: dict[str, Any]) -> list[str]:
    table, tuple_ratios, worst_notes = rows(data)
    if not table:
        raise ReportError("no benchmark carries an `op` and a `side` in its extra_info")
    lines = [*heading(data), "", *render(table), ""]
    judged = [row.verdict() for row in table if row.judged]
    lines.append(
        f"{judged.count('pass')} of {len(judged)} targets met"
        + (f", {judged.count('MISS')} missed" if "MISS" in judged else "")
        + (f", {judged.count('?')} without figures" if "?" in judged else "")
        + "; medians; baseline: raw sqlite3 on our schema unless the row names another;"
    )
    lines.append(
        "floor: the minimal hand-written sqlite3 layer (benchmarks/floor.py); F: its ceiling."
    )
    lines += worst_notes
    if tuple_ratios:
        lines.append(
            f"Ours / a raw layer returning bare tuples (not judged): "
            f"{min(tuple_ratios):.2f}x-{max(tuple_ratios):.2f}x, "
            f"median {statistics.median(tuple_ratios):.2f}x."
        )
    return lines


def peers(data: dict[str, Any]) -> list[str]:
    """The peer table: each user workload for the floor, ours and every peer that ran.

    Peer benchmarks carry ``kind="peer"``; ours and the floor come from the
    user-workload rows (``kind="user"``) of the same ``op``. Empty when no
    peer ran (their packages are optional).
    """
    figures: dict[str, dict[str, float]] = {}
    titles: dict[str, str] = {}
    units: dict[str, str] = {}
    names: dict[str, str] = {}
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        if info.get("kind") not in ("peer", "user") or "op" not in info:
            continue
        side = str(info.get("side"))
        if info["kind"] == "user" and side not in ("ours", FLOOR_SIDE):
            continue
        op = str(info["op"])
        figures.setdefault(op, {})[side] = info.get("value", bench["stats"]["median"])
        titles.setdefault(op, str(info.get("title", op)))
        units[op] = str(info.get("unit", "s"))
        if info["kind"] == "peer":
            names[side] = str(info.get("peer_title", side))
    peer_names = list(names)
    ops = [op for op in figures if any(p in figures[op] for p in peer_names)]
    if not ops:
        return []
    headers = ["workload", "floor", "ours", *(names[p] for p in peer_names), "best peer/ours"]
    cells = []
    for op in ops:
        got = figures[op]
        unit = units[op]
        present = [got[p] for p in peer_names if p in got]
        best = min(present) if present else None
        ours = got.get("ours")
        ratio = "-" if best is None or not ours or unit == "n" else f"{best / ours:.2f}x"
        cells.append(
            [
                titles[op],
                *(_amount(got.get(side), unit) for side in (FLOOR_SIDE, "ours", *peer_names)),
                ratio,
            ]
        )
    table = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|",
    ]
    table += ["| " + " | ".join(cell) + " |" for cell in cells]
    return table


def _replace_block(text: str, begin: str, end: str, block: list[str], path: Path) -> str:
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise ReportError(f"{path}: needs exactly one {begin!r} line before one {end!r} line")
    before, rest = text.split(begin, 1)
    _old, after = rest.split(end, 1)
    return before + "\n".join([begin, "", *block, "", end]) + after


def write_readme(path: Path, lines: list[str], peer_lines: list[str] | None = None) -> None:
    """Replace what lies between :data:`BEGIN` and :data:`END` in ``path`` with the table
    (and, given peer lines, what lies between :data:`PEERS_BEGIN` and :data:`PEERS_END`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"{path}: {exc.strerror or exc}") from exc
    text = _replace_block(text, BEGIN, END, ["```text", *lines, "```"], path)
    if peer_lines:
        text = _replace_block(text, PEERS_BEGIN, PEERS_END, peer_lines, path)
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, help="the file --benchmark-json wrote")
    parser.add_argument("--readme", type=Path, help="also write the table into this file")
    args = parser.parse_args(argv)
    try:
        data = load(args.json)
        lines = report(data)
        peer_lines = peers(data)
        print("\n".join(lines))
        if peer_lines:
            print("\n" + "\n".join(peer_lines))
        if args.readme is not None:
            write_readme(args.readme, lines, peer_lines)
            print(f"(written to {args.readme})")
    except ReportError as exc:
        print(f"report.py: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
