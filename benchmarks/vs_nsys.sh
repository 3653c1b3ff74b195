#!/usr/bin/env bash
# nsysparse report vs `nsys stats` on one large trace, on the GPU machine (issue 6, item 2).
#
#   bash benchmarks/vs_nsys.sh [K] [REPS]      # K copies of offload_disk (default 1050: 1.04 GB)
#   SRC=tests/data/runs/deepseek_disk_stream.sqlite bash benchmarks/vs_nsys.sh 700 2   # the 2 GB curve point
#   SKIP=py_floor,c_floor SRC=... bash benchmarks/vs_nsys.sh 1750 1                     # 5 GB within 10 minutes
#
# Needs, carried with the working tree: .device-libs (nsys-env.sh sets $NSYS) and, when the
# machine's python3 lacks pandas/pyarrow, .whl/device-site.tar.xz (bash benchmarks/device_site.sh).
# Writes $OUT/vs_nsys.json (or ./vs_nsys.json): wall s and peak RSS of each command, the best of REPS.
set -euo pipefail
K=${1:-1050}
SRC=${SRC:-tests/data/offload_disk.sqlite}
REPS=${2:-2}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
source "${NSYS_ENV:-.device-libs/nsys-env.sh}" >/dev/null  # NSYS_ENV: a stub, for a dry run off the GPU machine
if ! python3 -c "import pandas, pyarrow.parquet, adbc_driver_sqlite" 2>/dev/null; then
  mkdir -p /tmp/device-site
  tar -C /tmp/device-site -xJf .whl/device-site.tar.xz
  export PYTHONPATH="/tmp/device-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "import sys, numpy, pandas, pyarrow; print('python', sys.version.split()[0], 'numpy', numpy.__version__, 'pandas', pandas.__version__, 'pyarrow', pyarrow.__version__)"
"$NSYS" --version

W=/tmp/vs_nsys
rm -rf "$W" && mkdir -p "$W"
python3 benchmarks/make_large.py "$SRC" "$W/trace.sqlite" -k "$K"
cp "$W/trace.sqlite" "$W/trace_nsys.sqlite"   # nsys stats gets its own copy: it may add to the file

REPORTS=nvtx_sum,nvtx_gpu_proj_trace,cuda_gpu_mem_size_sum,cuda_gpu_mem_time_sum,cuda_api_sum,cuda_gpu_kern_sum
RESULT=${OUT:-.}/vs_nsys.json
K=$K SRC=$SRC REPS=$REPS W=$W REPORTS=$REPORTS RESULT=$RESULT SKIP=${SKIP:-} python3 - <<'PY'
import json, os, shutil, subprocess, sys
sys.path.insert(0, "benchmarks")
import bench  # timed(): wall s and peak RSS of one child, under /usr/bin/time when there is one

W, reps, nsys = os.environ["W"], int(os.environ["REPS"]), os.environ["NSYS"]
trace, ntrace = f"{W}/trace.sqlite", f"{W}/trace_nsys.sqlite"
for f in (trace, ntrace):  # warm the page cache: compare compute, not disk
    with open(f, "rb") as fh:
        while fh.read(1 << 24):
            pass
needed = bench.needed_columns(bench.Path(trace))
py = sys.executable
cmds = {
    "nsys_stats": lambda i: [nsys, "stats", "--report", os.environ["REPORTS"], "--format", "csv",
                             "--output", f"{W}/nsys{i}/stats", ntrace],
    "nsysparse_no_charts": lambda i: [py, "-m", "nsysparse", "report", trace, "--out", f"{W}/np{i}", "--no-charts"],
    "py_floor": lambda i: [py, "-c", bench.PY_FLOOR, trace, json.dumps(needed)],
    "c_floor": lambda i: ["sqlite3", "-readonly", trace, bench.c_floor_sql(needed)],
    "adbc_floor": lambda i: [py, "-c", bench.ARROW_FLOOR, trace, json.dumps(needed), "adbc"],
}
try:
    import connectorx  # noqa: F401  (not in the device bundle; timed where it is there)
    cmds["cx_floor"] = lambda i: [py, "-c", bench.ARROW_FLOOR, trace, json.dumps(needed), "connectorx"]
except ImportError:
    pass
try:
    import matplotlib  # noqa: F401
    cmds["nsysparse_report"] = lambda i: [py, "-m", "nsysparse", "report", trace, "--out", f"{W}/npc{i}"]
except ImportError:
    pass
if shutil.which("sqlite3") is None:
    del cmds["c_floor"]
for name in filter(None, os.environ.get("SKIP", "").split(",")):  # commands left out (a long trace's time)
    cmds.pop(name, None)
res = {"k": int(os.environ["K"]), "source": os.environ["SRC"], "size_mb": round(os.path.getsize(trace) / 1e6, 1), "cores": os.cpu_count(),
       "nsys": subprocess.run([nsys, "--version"], capture_output=True, text=True).stdout.strip(),
       "machine": bench.machine()}
for name, cmd in cmds.items():
    runs = []
    for i in range(reps):
        os.makedirs(f"{W}/nsys{i}", exist_ok=True)
        wall, rss, rc, err = bench.timed(cmd(i))
        runs.append({"wall_s": round(wall, 2), "peak_rss_mb": round(rss / 1e6, 1), "rc": rc,
                     **({"stderr": err.strip()[-300:]} if rc else {})})
        print(name, runs[-1], flush=True)
    ok = [r for r in runs if r["rc"] == 0]
    res[name] = min(ok, key=lambda r: r["wall_s"]) if ok else runs[-1]
    res[name]["walls"] = [r["wall_s"] for r in runs]
    with open(os.environ["RESULT"], "w") as fh:  # what is measured so far, should the run be cut short
        json.dump(res, fh, indent=2)
ns = res["nsys_stats"].get("wall_s") if res["nsys_stats"].get("rc") == 0 else None
for name in ("nsysparse_no_charts", "nsysparse_report"):
    if ns and name in res and res[name].get("rc") == 0:
        res[f"nsys/{name}"] = round(ns / res[name]["wall_s"], 2)
print(json.dumps(res, indent=2))
with open(os.environ["RESULT"], "w") as fh:
    json.dump(res, fh, indent=2)
PY
