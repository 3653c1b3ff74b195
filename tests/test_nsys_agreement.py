"""Agreement with NVIDIA's own reports on the same files (CONTRACT.md,
"Agreement with NVIDIA's reports").

For every real trace in ``tests/data`` and every ``nsys stats`` report under
``tests/data/nsys-stats/<trace>/r_*.csv`` that the contract covers, the
nsys-equivalent aggregate is computed here from the Trace's normalised
tables: that is the point, the tables must carry what nsys's reports need.
Each trace x report is its own test id (``edge-nvtx_sum``, ...).
"""

from __future__ import annotations

import functools
import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nsysparse import open_trace
from nsysparse.projection import nvtx_projection

DATA = Path(__file__).resolve().parent / "data"
STATS = DATA / "nsys-stats"
TRACES = sorted(p.stem for p in DATA.glob("*.sqlite"))
REPORTS = (
    "nvtx_gpu_proj_trace",
    "nvtx_sum",
    "cuda_gpu_mem_size_sum",
    "cuda_gpu_mem_time_sum",
    "cuda_gpu_kern_sum",
    "cuda_api_sum",
)
STYLE = {"push_pop": "PushPop", "start_end": "StartEnd"}
NSYS_API_SUFFIX = re.compile(r"_v\d{4}$")  # exactly four digits, as nsys's cuda_api_sum strips


def test_every_trace_has_its_reports() -> None:
    """The parametrisation below covers every trace and every report it has."""
    assert TRACES == sorted(
        ["edge", "graphs", "hf_olmoe", "links", "offload_disk", "offload_event",
         "offload_host", "p2p", "tiny_matmul_copy"]
    )
    for name in TRACES:
        for report in REPORTS:
            assert (STATS / name / f"r_{report}.csv").stat().st_size > 0, (name, report)


@functools.lru_cache(maxsize=None)
def _trace(name: str):
    return open_trace(DATA / f"{name}.sqlite")


def _csv(name: str, report: str) -> pd.DataFrame:
    """An r_*.csv with every column as its printed text (to know its precision)."""
    return pd.read_csv(STATS / name / f"r_{report}.csv", dtype=str, keep_default_na=False)


def _int(col: pd.Series) -> np.ndarray:
    return col.astype("int64").to_numpy()


def _half_up(x: float, printed: str) -> Decimal:
    """``x`` rounded half-up to the number of decimals of ``printed``."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return Decimal(float(x)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def _assert_rounded(ours: pd.Series, theirs: pd.Series, what: str) -> None:
    bad = [
        (key, float(o), t)
        for key, o, t in zip(theirs.index, ours.reindex(theirs.index).to_numpy(), theirs.to_numpy())
        if _half_up(o, t) != Decimal(t)
    ]
    assert not bad, f"{what}: (key, ours, nsys) {bad}"


def _same_keys(ours: pd.Index, theirs: pd.Index, what: str) -> None:
    assert sorted(map(str, ours)) == sorted(map(str, theirs)), what


# ---- the reports -----------------------------------------------------------------------


def check_nvtx_gpu_proj_trace(name: str) -> None:
    """Name, Projected Start, Projected Duration, NumGPUOps, PID, TID equal row for row.

    Deliberate differences (METRICS.md): start/end ranges ended on another
    thread are projected here and dropped by nsys, so they are left out of the
    row-for-row comparison; graph-level CUDA graph runs are GPU ops here, so a
    range that launched one has exactly one more op per run than nsys's row and
    its projected interval is nsys's extended to cover the run.
    """
    t = _trace(name)
    nsys = _csv(name, "nvtx_gpu_proj_trace")
    proj = nvtx_projection(t)
    cross = t.nvtx_ranges.set_index("range_id")["end_tid"].notna()
    ours = proj[~cross.reindex(proj["range_id"]).to_numpy()].reset_index(drop=True)
    assert len(ours) == len(nsys)
    assert list(ours["name"]) == list(nsys["Name"])
    assert (ours["pid"].to_numpy() == _int(nsys["PID"])).all()
    assert (ours["tid"].to_numpy() == _int(nsys["TID"])).all()
    # the CPU range itself: same instance row for row
    assert (ours["start_ns"].to_numpy() == _int(nsys["Orig Start (ns)"])).all()
    assert (ours["dur_ns"].to_numpy() == _int(nsys["Orig Duration (ns)"])).all()

    n_start = _int(nsys["Projected Start (ns)"])
    n_end = n_start + _int(nsys["Projected Duration (ns)"])
    n_ops = _int(nsys["NumGPUOps"])
    o_start = ours["proj_start_ns"].to_numpy()
    o_end = o_start + ours["proj_dur_ns"].to_numpy()
    runs = ours["graph_runs"].to_numpy()
    plain = runs == 0
    assert (o_start[plain] == n_start[plain]).all()
    assert (o_end[plain] == n_end[plain]).all()
    assert (ours["num_gpu_ops"].to_numpy()[plain] == n_ops[plain]).all()

    if name != "graphs":
        assert plain.all(), "only the graphs trace replays CUDA graphs"
        return
    # graphs: every step launched one graph run and one D2H copy; nsys sees only the copy
    assert (runs == 1).all()
    assert (ours["num_gpu_ops"].to_numpy() == n_ops + 1).all()
    g = t.graph_runs
    ranges = t.nvtx_ranges.set_index("range_id")
    for i, row in ours.iterrows():
        r = ranges.loc[row["range_id"]]
        inside = g[(g["pid"] == r["pid"]) & (g["launch_tid"] == r["tid"])
                   & (g["api_start_ns"] >= r["start_ns"]) & (g["api_end_ns"] <= r["end_ns"])]
        assert len(inside) == 1, row["range_id"]
        run_start, run_end = int(inside["start_ns"].iloc[0]), int(inside["end_ns"].iloc[0])
        assert o_start[i] == min(n_start[i], run_start)
        assert o_end[i] == max(n_end[i], run_end)
        assert o_start[i] <= run_start and run_end <= o_end[i]  # covers the graph run


def check_nvtx_sum(name: str) -> None:
    """Per Range and Style, all processes and threads merged: Instances and Total
    Time equal; Avg, Med, StdDev (n-1) equal after half-up rounding; Min, Max equal."""
    t = _trace(name)
    nsys = _csv(name, "nvtx_sum").set_index(["Range", "Style"])
    r = t.nvtx_ranges.assign(style=t.nvtx_ranges["kind"].map(STYLE))
    g = r.groupby(["name", "style"])["dur_ns"]
    ours = pd.DataFrame({
        "n": g.size(),
        "total": g.sum(),
        "avg": g.mean(),
        "med": g.median(),
        "std": g.std(ddof=1).fillna(0.0),  # nsys prints 0.0 for a single instance
        "min": g.min(),
        "max": g.max(),
    })
    ours.index.names = ["Range", "Style"]
    _same_keys(ours.index, nsys.index, "ranges by (name, style)")
    ours = ours.reindex(nsys.index)
    assert (ours["n"].to_numpy() == _int(nsys["Instances"])).all()
    assert (ours["total"].to_numpy() == _int(nsys["Total Time (ns)"])).all()
    assert (ours["min"].to_numpy() == _int(nsys["Min (ns)"])).all()
    assert (ours["max"].to_numpy() == _int(nsys["Max (ns)"])).all()
    _assert_rounded(ours["avg"], nsys["Avg (ns)"], "Avg")
    _assert_rounded(ours["med"], nsys["Med (ns)"], "Med")
    _assert_rounded(ours["std"], nsys["StdDev (ns)"], "StdDev")


def _mem_ops(name: str) -> pd.DataFrame:
    t = _trace(name)
    copies = t.memcpy[["copy_kind", "dur_ns", "bytes"]].assign(
        Operation=lambda d: "[CUDA memcpy " + d["copy_kind"].astype(str) + "]"
    )
    sets = t.memset[["dur_ns", "bytes"]].assign(Operation="[CUDA memset]")
    ops = pd.concat([copies[["Operation", "dur_ns", "bytes"]], sets[["Operation", "dur_ns", "bytes"]]])
    return ops.groupby("Operation").agg(
        count=("dur_ns", "size"), total_ns=("dur_ns", "sum"), bytes=("bytes", "sum")
    )


def check_cuda_gpu_mem_size_sum(name: str) -> None:
    """Per Operation (pinned and pageable together, memset apart): Count equal,
    Total (MB) equal to 3 decimals with MB = 1e6 bytes."""
    nsys = _csv(name, "cuda_gpu_mem_size_sum").set_index("Operation")
    ours = _mem_ops(name)
    _same_keys(ours.index, nsys.index, "operations")
    ours = ours.reindex(nsys.index)
    assert (ours["count"].to_numpy() == _int(nsys["Count"])).all()
    _assert_rounded(ours["bytes"] / 1e6, nsys["Total (MB)"], "Total (MB)")


def check_cuda_gpu_mem_time_sum(name: str) -> None:
    """Per Operation: Count and Total Time equal."""
    nsys = _csv(name, "cuda_gpu_mem_time_sum").set_index("Operation")
    ours = _mem_ops(name)
    _same_keys(ours.index, nsys.index, "operations")
    ours = ours.reindex(nsys.index)
    assert (ours["count"].to_numpy() == _int(nsys["Count"])).all()
    assert (ours["total_ns"].to_numpy() == _int(nsys["Total Time (ns)"])).all()


def check_cuda_gpu_kern_sum(name: str) -> None:
    """Per demangled kernel name: Instances and Total Time equal.

    nsys's kernel summary reads the kernel table only: graph-level graph runs
    are not kernels there (on ``graphs`` it counts the 14 warm-up kernels and
    none of the 6 replays). Node-level graph kernels are kernel rows (with
    ``graphNodeId``) and count like any other; no fixture was traced that way.
    """
    t = _trace(name)
    nsys = _csv(name, "cuda_gpu_kern_sum").set_index("Name")
    g = t.kernels.groupby("name")["dur_ns"]
    ours = pd.DataFrame({"n": g.size(), "total": g.sum()})
    _same_keys(ours.index, nsys.index, "kernel names")
    ours = ours.reindex(nsys.index)
    assert (ours["n"].to_numpy() == _int(nsys["Instances"])).all()
    assert (ours["total"].to_numpy() == _int(nsys["Total Time (ns)"])).all()
    if name == "graphs":
        assert _int(nsys["Instances"]).sum() == len(t.kernels) == 14
        assert len(t.graph_runs) == 6


def check_cuda_api_sum(name: str) -> None:
    """Per name with exactly four trailing version digits stripped (not base_name):
    Num Calls and Total Time equal."""
    t = _trace(name)
    nsys = _csv(name, "cuda_api_sum").set_index("Name")
    api = t.api_calls
    key = api["name"].astype(str).str.replace(NSYS_API_SUFFIX, "", regex=True)
    g = api["dur_ns"].groupby(key.to_numpy())
    ours = pd.DataFrame({"n": g.size(), "total": g.sum()})
    _same_keys(ours.index, nsys.index, "API names")
    ours = ours.reindex(nsys.index)
    assert (ours["n"].to_numpy() == _int(nsys["Num Calls"])).all()
    assert (ours["total"].to_numpy() == _int(nsys["Total Time (ns)"])).all()


CHECKS = {r: globals()[f"check_{r}"] for r in REPORTS}


@pytest.mark.parametrize(
    ("trace", "report"),
    [pytest.param(n, r, id=f"{n}-{r}") for n in TRACES for r in REPORTS],
)
def test_agrees_with_nsys(trace: str, report: str) -> None:
    CHECKS[report](trace)


def test_api_suffix_rule_is_nsys_s() -> None:
    """The grouping rule above keeps suffixes that are not `_v` + four digits."""
    strip = lambda s: NSYS_API_SUFFIX.sub("", s)  # noqa: E731
    assert strip("cudaStreamSynchronize_v3020") == "cudaStreamSynchronize"
    assert strip("cudaEventRecordWithFlags_v11010") == "cudaEventRecordWithFlags_v11010"
    assert strip("cuGetProcAddress_v2") == "cuGetProcAddress_v2"
    edge = _csv("edge", "cuda_api_sum")["Name"]
    assert "cudaEventRecordWithFlags_v11010" in set(edge)
