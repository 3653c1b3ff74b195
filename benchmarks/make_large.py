"""Make a large Nsight Systems export from a real one: its rows k times over.

    python benchmarks/make_large.py SRC.sqlite DEST.sqlite -k 100

Copy ``i`` (0 <= i < k) of every event row is shifted in time by ``i * D``,
where ``D`` is the source's ``ANALYSIS_DETAILS.duration`` (the capture's
length; every timestamp lies in ``[0, D]``), so the copies follow one another
without overlapping and the new capture lasts ``k * D``. Ids that must stay
unique get fresh values in each copy: ``correlationId`` (+ ``i * C``, C above
every correlation id of the source), NVTX ``rangeId``, kernel ``gridId``,
``eventSyncId``, and callchain ids (``OSRT_CALLCHAINS.id`` and the
``callchainId`` pointing at it, 0 = "none" kept). Process and thread ids stay:
the result reads as one k-times-longer run of the same program.

What is replicated: every table with a ``start`` column (CUDA API, GPU ops,
NVTX ranges and marks, OS runtime calls, profiler overhead), tables keyed by a
correlation id (``CUPTI_ACTIVITY_KIND_CUDA_EVENT``) and ``*_CALLCHAINS``.
NVTX rows other than ranges and marks (domain and category registrations) are
written once, as a real long run writes them. Everything else (strings,
ENUM tables, system info) is copied once, untouched.

The answer is then predictable (``DEST.expect.json``): k times the steps,
GPU ops, API calls, NVTX ranges and memcpy bytes of the source, per link.

Rows are generated inside SQLite (``INSERT ... SELECT`` over a recursive
copy counter), never through Python: the 1000x copy of a 1.3 MB export
(1.3 GB) takes about a minute.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import time
from pathlib import Path

NVTX_REPLICATED_TYPES = (34, 59, 60)  # mark, push/pop range, start/end range
# columns holding ids that must be fresh in each copy (stride computed per column)
ID_COLUMNS = ("correlationId", "rangeId", "gridId", "eventSyncId")


def _columns(con: sqlite3.Connection, schema: str, table: str) -> list[str]:
    return [r[1] for r in con.execute(f'PRAGMA {schema}.table_info("{table}")')]


def _max(con: sqlite3.Connection, tables: dict[str, list[str]], column: str) -> int:
    best = 0
    for t, cols in tables.items():
        if column in cols:
            v = con.execute(f'SELECT MAX("{column}") FROM src."{t}"').fetchone()[0]
            if v is not None:
                best = max(best, int(v))
    return best


def plan(con: sqlite3.Connection) -> tuple[dict[str, list[str]], dict[str, int], int]:
    """The tables to replicate (name -> columns), the id strides, and the shift D."""
    names = [r[0] for r in con.execute("SELECT name FROM src.sqlite_master WHERE type = 'table'")]
    tables: dict[str, list[str]] = {}
    for t in names:
        cols = _columns(con, "src", t)
        if "start" in cols or "correlationId" in cols or t.endswith("_CALLCHAINS"):
            tables[t] = cols
    strides = {c: _max(con, tables, c) + 1 for c in ID_COLUMNS}
    cc = 0
    for t, cols in tables.items():
        if t.endswith("_CALLCHAINS") and "id" in cols:
            cc = max(cc, int(con.execute(f'SELECT COALESCE(MAX(id), 0) FROM src."{t}"').fetchone()[0]))
        if "callchainId" in cols:
            cc = max(cc, int(con.execute(f'SELECT COALESCE(MAX(callchainId), 0) FROM src."{t}"').fetchone()[0]))
    strides["callchain"] = cc + 1
    row = con.execute("SELECT MAX(duration) FROM src.ANALYSIS_DETAILS").fetchone()
    if row is None or row[0] is None:
        raise SystemExit("source has no ANALYSIS_DETAILS.duration: cannot place the copies")
    shift = int(row[0])
    # every timestamp must lie in [0, D] for copies not to overlap
    for t, cols in tables.items():
        if "start" in cols:
            lo, hi = con.execute(f'SELECT MIN(start), MAX(COALESCE("end", start)) FROM src."{t}"').fetchone()
            if lo is not None and (lo < 0 or hi > shift):
                raise SystemExit(f"{t}: timestamps [{lo}, {hi}] outside [0, {shift}]")
    return tables, strides, shift


def _expr(table: str, col: str, strides: dict[str, int], shift: int) -> str:
    q = f'r."{col}"'
    if col in ("start", "end"):
        return f"{q} + c.i * {shift}"
    if col in ID_COLUMNS:
        return f"{q} + c.i * {strides[col]}"
    if col == "callchainId" or (col == "id" and table.endswith("_CALLCHAINS")):
        return f"CASE WHEN {q} > 0 THEN {q} + c.i * {strides['callchain']} ELSE {q} END"
    return q


def make_large(src: Path, dest: Path, k: int, quiet: bool = False) -> dict[str, object]:
    """Write ``dest`` = ``src`` replicated ``k`` times; returns the expected counts."""
    if k < 1:
        raise SystemExit("k must be at least 1")
    t0 = time.perf_counter()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.copyfile(src, tmp)
    con = sqlite3.connect(tmp)
    try:
        con.execute("PRAGMA journal_mode = OFF")
        con.execute("PRAGMA synchronous = OFF")
        con.execute("PRAGMA cache_size = -262144")  # 256 MB page cache
        con.execute("ATTACH DATABASE ? AS src", (f"file:{src.resolve().as_posix()}?mode=ro",))
        tables, strides, shift = plan(con)
        copies = f"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {k - 1}) "
        with con:
            for t, cols in tables.items():
                if k == 1:
                    break
                sel = ", ".join(_expr(t, c, strides, shift) for c in cols)
                where = ""
                if t == "NVTX_EVENTS":
                    where = f" WHERE r.eventType IN ({', '.join(map(str, NVTX_REPLICATED_TYPES))})"
                names = ", ".join(f'"{c}"' for c in cols)
                # copies outermost (CROSS JOIN fixes the loop order): rows stay in
                # time order, as nsys writes them
                con.execute(f'INSERT INTO main."{t}" ({names}) {copies}SELECT {sel} FROM c CROSS JOIN src."{t}" r{where}')
            con.execute(
                "UPDATE main.ANALYSIS_DETAILS SET duration = duration * ?, stopTime = startTime + duration * ?",
                (k, k),
            )
        expect = expected(con, k)
    finally:
        con.close()
    tmp.replace(dest)
    expect.update({"source": str(src), "k": k, "size": dest.stat().st_size,
                   "seconds": round(time.perf_counter() - t0, 2)})
    dest.with_name(dest.name + ".expect.json").write_text(json.dumps(expect, indent=2) + "\n")
    if not quiet:
        print(f"{dest}: {expect['size'] / 1e6:.1f} MB, k={k}, {expect['seconds']} s", file=sys.stderr)
    return expect


def expected(con: sqlite3.Connection, k: int) -> dict[str, object]:
    """What the source holds, times k: the checks bench.py makes on the report."""
    out: dict[str, object] = {}
    for t in ("CUPTI_ACTIVITY_KIND_RUNTIME", "CUPTI_ACTIVITY_KIND_KERNEL", "CUPTI_ACTIVITY_KIND_MEMCPY",
              "CUPTI_ACTIVITY_KIND_MEMSET", "CUPTI_ACTIVITY_KIND_GRAPH_TRACE"):
        exists = con.execute("SELECT 1 FROM src.sqlite_master WHERE name = ?", (t,)).fetchone()
        out[t] = k * con.execute(f'SELECT COUNT(*) FROM src."{t}"').fetchone()[0] if exists else 0
    out["nvtx_ranges"] = k * con.execute("SELECT COUNT(*) FROM src.NVTX_EVENTS WHERE eventType IN (59, 60)").fetchone()[0]
    out["memcpy_bytes_by_copy_kind"] = {
        str(label): k * int(b)
        for label, b in con.execute(
            "SELECT e.label, SUM(m.bytes) FROM src.CUPTI_ACTIVITY_KIND_MEMCPY m "
            "JOIN src.ENUM_CUDA_MEMCPY_OPER e ON e.id = m.copyKind GROUP BY e.label"
        )
    }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", type=Path)
    p.add_argument("dest", type=Path)
    p.add_argument("-k", type=int, required=True, help="how many copies (10, 100, 1000)")
    a = p.parse_args(argv)
    make_large(a.src, a.dest, a.k)
    return 0


if __name__ == "__main__":
    sys.exit(main())
