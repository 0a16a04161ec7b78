"""Summarise a pytest-benchmark JSON: ours against the raw baseline, depth ratios, resources.

Usage::

    .venv/bin/python benchmarks/report.py .benchmarks/bench.json [--strict]

Reads the file ``--benchmark-json`` wrote and prints:

1. per operation: our median, the raw baseline's median with rows as dicts
   and as bare tuples, both ratios, the target, and pass/fail (judged against
   the dict baseline, which does the caller's work; the tuple verdict is shown
   next to it);
2. depth ratios: an operation at depth against the same operation shallow
   (ours/ours, and raw/raw for context), against its 1.25x ceiling;
3. memory per pooled connection, bytes on disk per message (ours vs legacy),
   and the 10 x 100 threaded append run.

``--strict`` exits 1 when a judged figure fails its target.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

SIDES = ("ours", "raw_dict", "raw_tuple")
MIB = 1024 * 1024


def _us(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e6:,.1f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _verdict(value: float | None, target: float | None) -> str:
    if value is None or target is None:
        return "-"
    return "pass" if value <= target else "FAIL"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *map(line, rows)])


def collect(data: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Operations by name (each side's median and labels), and the resource figures by kind."""
    ops: dict[str, dict[str, Any]] = {}
    resources: dict[str, dict[str, Any]] = {}
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info", {})
        kind = info.get("kind")
        if kind == "op":
            entry = ops.setdefault(info["op"], {"info": info, "median": {}, "extra": {}})
            entry["median"][info["side"]] = bench["stats"]["median"]
            entry["extra"][info["side"]] = info
        elif kind is not None:
            resources[kind] = info
    return ops, resources


def ratio_table(ops: dict[str, dict[str, Any]]) -> tuple[str, int]:
    rows, failures = [], 0
    for name, entry in ops.items():
        info, median = entry["info"], entry["median"]
        if name == "threads_10x100":
            continue
        vs_dict = _ratio(median.get("ours"), median.get("raw_dict"))
        vs_tuple = _ratio(median.get("ours"), median.get("raw_tuple"))
        target = info.get("target")
        verdict = _verdict(vs_dict, target)
        failures += verdict == "FAIL"
        rows.append(
            [
                info["title"],
                _us(median.get("ours")),
                _us(median.get("raw_dict")),
                _us(median.get("raw_tuple")),
                _fmt_ratio(vs_dict),
                _fmt_ratio(vs_tuple),
                "-" if target is None else f"<= {target:.2f}x",
                verdict,
                _verdict(vs_tuple, target),
            ]
        )
    headers = [
        "operation",
        "ours us",
        "raw(dict) us",
        "raw(tuple) us",
        "ours/dict",
        "ours/tuple",
        "target",
        "pass (dict)",
        "pass (tuple)",
    ]
    return _table(headers, rows), failures


def depth_table(ops: dict[str, dict[str, Any]]) -> tuple[str, int]:
    rows, failures = [], 0
    for _name, entry in ops.items():
        info = entry["info"]
        base_name = info.get("depth_of")
        if not base_name or base_name not in ops:
            continue
        base = ops[base_name]
        ours = _ratio(entry["median"].get("ours"), base["median"].get("ours"))
        raw = _ratio(entry["median"].get("raw_dict"), base["median"].get("raw_dict"))
        target = info.get("depth_target")
        verdict = _verdict(ours, target)
        failures += verdict == "FAIL"
        rows.append(
            [
                f"{info['title']}  vs  {base['info']['title']}",
                _us(base["median"].get("ours")),
                _us(entry["median"].get("ours")),
                _fmt_ratio(ours),
                _fmt_ratio(raw),
                "-" if target is None else f"<= {target:.2f}x",
                verdict,
            ]
        )
    headers = [
        "deep vs shallow",
        "ours shallow us",
        "ours deep us",
        "ours ratio",
        "raw(dict) ratio",
        "target",
        "pass",
    ]
    return _table(headers, rows), failures


def threads_section(ops: dict[str, dict[str, Any]]) -> tuple[str, int]:
    entry = ops.get("threads_10x100")
    if entry is None:
        return "", 0
    rows, failures = [], 0
    for side in ("ours", "raw_dict"):
        info = entry["extra"].get(side)
        if info is None:
            continue
        ok = info["errors"] == 0 and info["seq_ok"] and set(info["final_counts"]) == {1000}
        failures += not ok
        rows.append(
            [
                side,
                f"{entry['median'][side] * 1000:,.1f}",
                str(info["errors"]),
                "/".join(str(c) for c in info["final_counts"]),
                "yes" if info["seq_ok"] else "NO",
                f"{info['append_p50_ms']:.2f}",
                f"{info['append_p99_ms']:.1f}",
                f"{info['append_max_ms']:.1f}",
                "pass" if ok else "FAIL",
            ]
        )
    headers = [
        "side",
        "wall ms (median of 3)",
        "errors",
        "final counts",
        "seq 1..1000",
        "append p50 ms",
        "p99 ms",
        "max ms",
        "correct",
    ]
    ratio = _ratio(entry["median"].get("ours"), entry["median"].get("raw_dict"))
    text = _table(headers, rows)
    if ratio is not None:
        text += f"\nours/raw wall time: {ratio:.2f}x (raw: one sqlite3 connection per thread)"
    return text, failures


def memory_section(info: dict[str, Any]) -> str:
    def kib(key: str) -> str:
        return f"{info[key] / 1024:,.0f} KiB"

    lines = [
        f"pool of {info['pool']} connections, all open at once "
        f"(SQLite heap via sqlite3_memory_used: {'yes' if info['sqlite_heap_measured'] else 'no'})",
        _table(
            ["per connection", "SQLite heap", "RSS", "Python heap (tracemalloc)"],
            [
                [
                    stage,
                    kib(f"sqlite_heap_{key}_per_conn"),
                    kib(f"rss_{key}_per_conn"),
                    kib(f"python_heap_{key}_per_conn"),
                ]
                for stage, key in (
                    ("opened (pragmas set)", "opened"),
                    ("after a hot query", "hot_query"),
                    ("page cache filled", "full_cache"),
                )
            ],
        ),
        f"PRAGMA cache_size = {info['cache_size_pragma']} -> bound "
        f"{info['cache_bound_bytes_per_conn'] / MIB:.0f} MiB per connection; default pool "
        f"(pool_size + max_overflow = {info['default_pool_max_connections']}) can hold "
        f"{info['default_pool_worst_case_cache_bytes'] / MIB:.0f} MiB of page cache "
        f"(file: {info['db_file_bytes'] / MIB:.0f} MiB)",
    ]
    return "\n".join(lines)


def disk_section(info: dict[str, Any]) -> str:
    rows = []
    for side in ("ours", "legacy"):
        rows.append(
            [
                side,
                f"{info[f'{side}_file_checkpointed']:,}",
                f"{info[f'{side}_file_vacuumed']:,}",
                f"{info[f'{side}_schema_only']:,}",
                f"{info[f'{side}_bytes_per_message']:,.0f}",
            ]
        )
    text = _table(
        ["layout", "bytes after checkpoint", "bytes after VACUUM", "schema only", "bytes/message"],
        rows,
    )
    ratio = info["ours_bytes_per_message"] / info["legacy_bytes_per_message"]
    text += (
        f"\n{info['messages']:,} messages, {info['content_bytes_per_message']:.0f} content bytes"
        f" each on average; ours/legacy = {ratio:.2f}x"
    )
    for side in ("ours", "legacy"):
        top = sorted(info[f"{side}_objects"].items(), key=lambda kv: -kv[1])[:6]
        text += f"\n  {side:6} largest: " + ", ".join(f"{k} {v / MIB:.1f} MiB" for k, v in top)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, help="the file --benchmark-json wrote")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    data = json.loads(args.json.read_text(encoding="utf-8"))
    ops, resources = collect(data)
    machine = data.get("machine_info", {})
    print(
        f"# sessionstore benchmarks ({data.get('datetime', '?')}; "
        f"{machine.get('python_implementation', '')} {machine.get('python_version', '')}, "
        f"{machine.get('cpu', {}).get('count', '?')} cpus; medians)\n"
    )
    failures = 0
    table, failed = ratio_table(ops)
    failures += failed
    print("## ours vs raw sqlite3 (same file, SQL, pragmas, triggers)\n")
    print(table)
    table, failed = depth_table(ops)
    failures += failed
    print("\n## depth (ours deep / ours shallow)\n")
    print(table)
    text, failed = threads_section(ops)
    failures += failed
    if text:
        print("\n## 10 threads x 100 appends to one session, one store\n")
        print(text)
    if "memory" in resources:
        print("\n## memory per pooled connection\n")
        print(memory_section(resources["memory"]))
    if "disk" in resources:
        print("\n## bytes on disk per message (same messages, after checkpoint and VACUUM)\n")
        print(disk_section(resources["disk"]))
    print(f"\n{failures} judged figure(s) missed their target.")
    return 1 if failures and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
