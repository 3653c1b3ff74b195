"""Time ``nsysparse report`` on large traces against two floors.

    python benchmarks/bench.py                      # 1x, 10x, 100x of offload_disk
    python benchmarks/bench.py --sizes 1 10 100 1000 --reps 3 --json /tmp/bench/results.json

For each size k, ``make_large.py`` writes ``<workdir>/offload_disk_x<k>.sqlite``
(kept between runs; the workdir defaults to /tmp/nsysparse-bench, never the
repository), then each command runs ``--reps`` times in a child process and
we keep the fastest wall time and its peak RSS (``os.wait4``'s ``ru_maxrss``
of that child alone):

- ``report``: ``python -m nsysparse report TRACE --out DIR`` (charts included),
  and ``report --no-charts``;
- ``py_floor``: a plain Python ``sqlite3`` SELECT of the columns the report
  needs into tuples (``fetchall``), nothing else;
- ``c_floor``: the ``sqlite3`` command-line tool's own C scan of the same
  columns (``SELECT total(start), total(end), ...``), the physical limit of
  reading them through SQLite.

The page cache is warm (every command reads the file once before timing):
we compare compute, not disk. Each report run is checked against the
answer the replication makes predictable (``<trace>.expect.json``): k times
the steps, GPU ops and per-kind memcpy bytes of the 1x trace.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from make_large import make_large  # noqa: E402

SOURCE = ROOT / "tests" / "data" / "offload_disk.sqlite"

def needed_columns(path: Path) -> dict[str, list[str]]:
    """The tables and columns nsysparse's loader reads from ``path``, from its one
    declaration (nsysparse.schema.TABLES): each declared table the export has,
    with the first present name of each declared column."""
    sys.path.insert(0, str(ROOT))
    from nsysparse import schema as S

    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        out: dict[str, list[str]] = {}
        for decl in S.TABLES:
            t = next((n for n in decl.names if n in tables), None)
            if t is None or t in out:
                continue
            have = {r[1] for r in con.execute("SELECT * FROM pragma_table_info(?)", (t,))}
            cols = [next(n for n in c.names if n in have) for c in decl.cols if any(n in have for n in c.names)]
            out[t] = list(dict.fromkeys(cols))
        return out
    finally:
        con.close()


PY_FLOOR = """
import sqlite3, sys, json
path, needed = sys.argv[1], json.loads(sys.argv[2])
con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
n = 0
for t, cols in needed.items():
    rows = con.execute(f'SELECT {", ".join(chr(34) + c + chr(34) for c in cols)} FROM "{t}"').fetchall()
    n += len(rows)
print(n)
"""


ARROW_FLOOR = """
import sys, json
path, needed, reader = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
n = 0
for t, cols in needed.items():
    sql = f'SELECT {", ".join(chr(34) + c + chr(34) for c in cols)} FROM "{t}"'
    if reader == "adbc":
        import adbc_driver_sqlite.dbapi as adbc
        with adbc.connect(f"file:{path}?mode=ro") as con, con.cursor() as cur:
            cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": "65536"})
            cur.execute(sql)
            n += cur.fetch_arrow_table().num_rows
    else:
        import connectorx as cx
        n += cx.read_sql(f"sqlite://{path}", sql, return_type="arrow").num_rows
print(n)
"""


TEXT_COLUMNS = {"text", "value", "label", "name", "busLocation"}  # read as TEXT by the loader


def c_floor_sql(needed: dict[str, list[str]]) -> str:
    """One ``SELECT total(col), ...`` per table: SQLite decodes every value, in C."""
    parts = []
    for t, cols in needed.items():
        agg = ", ".join(f'total(length("{c}"))' if c in TEXT_COLUMNS else f'total("{c}")' for c in cols)
        parts.append(f'SELECT {agg} FROM "{t}";')
    return "\n".join(parts)


MEM_LIMIT_BYTES: int | None = None  # --mem-limit-gb: RLIMIT_DATA of every child


def _limit() -> None:
    if MEM_LIMIT_BYTES:
        import resource

        resource.setrlimit(resource.RLIMIT_DATA, (MEM_LIMIT_BYTES, MEM_LIMIT_BYTES))


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, int, str]:
    """Run ``cmd``; (wall s, peak RSS bytes of the command, exit code, stderr tail).

    The command runs under GNU ``/usr/bin/time -f %M`` when there is one: a child
    forked straight from this Python process starts with its parent's RSS as
    its high-water mark, so ``wait4``'s ``ru_maxrss`` would report at least our
    own size (~140 MB with pandas loaded) for a 2 MB ``sqlite3`` scan.
    """
    gnu_time = shutil.which("time", path="/usr/bin:/bin")
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file:
        full = [gnu_time, "-f", "%M", "-o", rss_file.name, *cmd] if gnu_time else cmd
        t0 = time.perf_counter()
        p = subprocess.Popen(full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, preexec_fn=_limit)
        err = p.stderr.read() if p.stderr else b""
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        rss_kb = ru.ru_maxrss
        if gnu_time:
            lines = [ln for ln in rss_file.read().splitlines() if ln.strip().isdigit()]
            rss_kb = int(lines[-1]) if lines else rss_kb
    return wall, rss_kb * 1024, p.returncode, err.decode(errors="replace")[-400:]


def best_of(cmd: list[str], reps: int, env: dict[str, str] | None = None) -> dict[str, float]:
    runs = []
    for _ in range(reps):
        wall, rss, rc, err = timed(cmd, env)
        if rc != 0:  # e.g. MemoryError under --mem-limit-gb: recorded, not fatal
            return {"failed": rc, "wall_s": round(wall, 3), "peak_rss_mb": round(rss / 1e6, 1),
                    "stderr": err.strip().splitlines()[-1] if err.strip() else ""}
        runs.append((wall, rss))
    wall, rss = min(runs)
    return {"wall_s": round(wall, 3), "peak_rss_mb": round(rss / 1e6, 1),
            "walls": [round(w, 3) for w, _ in runs]}


def check(out: Path, expect: dict, base_steps: int) -> list[str]:
    """Differences between the report in ``out`` and what the replication predicts."""
    import pandas as pd

    problems = []
    summary = json.loads((out / "summary.json").read_text())
    k = expect["k"]
    if summary["steps"] != k * base_steps:
        problems.append(f"steps {summary['steps']} != {k} x {base_steps}")
    for table, name in (("CUPTI_ACTIVITY_KIND_KERNEL", "kernels"), ("CUPTI_ACTIVITY_KIND_MEMCPY", "memcpy"),
                        ("CUPTI_ACTIVITY_KIND_RUNTIME", "api_calls")):
        n = pd.read_parquet(out / f"{name}.parquet", columns=["start_ns"]).shape[0]
        if n != expect[table]:
            problems.append(f"{name}: {n} rows != {expect[table]}")
    links = pd.DataFrame(summary["links"])
    for kind, b in expect["memcpy_bytes_by_copy_kind"].items():
        got = int(links.loc[links["copy_kind"] == kind, "bytes"].sum()) if len(links) else 0
        if got != b:
            problems.append(f"{kind} bytes {got} != {b}")
    return problems


def machine() -> dict[str, object]:
    import numpy
    import pandas
    import pyarrow

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = next(int(l.split()[1]) for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))
    except (OSError, StopIteration):
        mem = 0
    has_cli = shutil.which("sqlite3") is not None  # the GPU machine has none
    cli = subprocess.run(["sqlite3", "--version"], capture_output=True, text=True).stdout.split()[:1] if has_cli else []
    return {
        "cpu": cpu, "cores": os.cpu_count(), "mem_gb": round(mem / 1e6, 1),
        "python": platform.python_version(), "sqlite_lib": sqlite3.sqlite_version,
        "sqlite_cli": cli[0] if cli else None, "pandas": pandas.__version__,
        "pyarrow": pyarrow.__version__, "numpy": numpy.__version__, "os": platform.platform(),
    }


def _adbc_version(py: str, env: dict[str, str]) -> str | None:
    """adbc-driver-sqlite's version in the benchmarked interpreter (None: Trace.query uses pandas)."""
    done = subprocess.run([py, "-c", "import importlib.metadata as m; print(m.version('adbc-driver-sqlite'))"],
                          capture_output=True, text=True, env=env)
    return done.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", type=Path, default=SOURCE)
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "nsysparse-bench")
    p.add_argument("--json", type=Path, help="write the results here too")
    p.add_argument("--skip", nargs="*", default=[],
                   choices=["report", "no_charts", "py_floor", "c_floor", "adbc_floor", "cx_floor"])
    p.add_argument("--mem-limit-gb", type=float, help="RLIMIT_DATA of each command: a run past it fails, recorded")
    a = p.parse_args(argv)
    global MEM_LIMIT_BYTES
    MEM_LIMIT_BYTES = int(a.mem_limit_gb * 1e9) if a.mem_limit_gb else None

    py = sys.executable
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    a.workdir.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    results = {"machine": machine(), "source": str(a.source), "reps": a.reps, "sizes": [],
               "commit": commit.stdout.strip() or os.environ.get("NSYSPARSE_BENCH_COMMIT"),  # a snapshot has no .git
               "adbc": _adbc_version(py, env), "mem_limit_gb": a.mem_limit_gb}
    print(json.dumps(results["machine"]), file=sys.stderr)
    base_steps = None
    for k in a.sizes:
        trace = a.workdir / f"{a.source.stem}_x{k}.sqlite"
        expect_path = trace.with_name(trace.name + ".expect.json")
        if not trace.exists() or not expect_path.exists():
            make_large(a.source, trace, k)
        expect = json.loads(expect_path.read_text())
        needed = needed_columns(trace)
        with trace.open("rb") as fh:  # warm the page cache
            while fh.read(1 << 24):
                pass
        row: dict[str, object] = {"k": k, "size_mb": round(trace.stat().st_size / 1e6, 1),
                                  "loadavg_1m": round(os.getloadavg()[0], 2)}
        out = a.workdir / f"out_x{k}"
        cmds = {
            "report": [py, "-m", "nsysparse", "report", str(trace), "--out", str(out)],
            "no_charts": [py, "-m", "nsysparse", "report", str(trace), "--out", str(out), "--no-charts"],
            "py_floor": [py, "-c", PY_FLOOR, str(trace), json.dumps(needed)],
            "c_floor": ["sqlite3", "-readonly", str(trace), c_floor_sql(needed)],
            "adbc_floor": [py, "-c", ARROW_FLOOR, str(trace), json.dumps(needed), "adbc"],
            "cx_floor": [py, "-c", ARROW_FLOOR, str(trace), json.dumps(needed), "connectorx"],
        }
        for name, cmd in cmds.items():
            if name in a.skip:
                continue
            row[name] = best_of(cmd, a.reps, env)
            if name in ("report", "no_charts") and "failed" not in row[name]:
                if base_steps is None:
                    base_steps = json.loads((out / "summary.json").read_text())["steps"] // k
                row[f"{name}_check"] = check(out, expect, base_steps) or "ok"
        for name in ("report", "no_charts"):
            if name in row and "failed" not in row[name]:
                arrow = [row[f]["wall_s"] for f in ("adbc_floor", "cx_floor") if f in row and "failed" not in row[f]]
                if arrow:
                    row[f"{name}/arrow_floor"] = round(row[name]["wall_s"] / min(arrow), 2)
                for floor in ("py_floor", "c_floor", "adbc_floor", "cx_floor"):
                    if floor in row and "failed" not in row[floor]:
                        row[f"{name}/{floor}"] = round(row[name]["wall_s"] / row[floor]["wall_s"], 2)
        shutil.rmtree(out, ignore_errors=True)
        results["sizes"].append(row)
        print(json.dumps(row), flush=True)
        if a.json:  # after every size: a later size that takes the machine down keeps these
            a.json.write_text(json.dumps(results, indent=2) + "\n")
    if a.json:
        a.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
