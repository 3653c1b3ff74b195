"""kernel_summary: agreement with `nsys stats cuda_gpu_kern_sum` on every fixture that has it,
and a hand-worked table for what nsys does not report (per-step time, p95, share)."""

from __future__ import annotations

import functools
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nsysparse import open_trace
from nsysparse.kernels_summary import (
    COLUMNS,
    kernel_summary,
    kernel_summary_lines,
    short_kernel_name,
)
from nsysparse.steps import find_steps, whole_span_step

DATA = Path(__file__).resolve().parent / "data"
STATS = DATA / "nsys-stats"
WITH_CSV = sorted(p.parent.name for p in STATS.glob("*/r_cuda_gpu_kern_sum.csv")
                  if (DATA / f"{p.parent.name}.sqlite").is_file())


@functools.cache
def _summary(name: str) -> pd.DataFrame:
    t = open_trace(DATA / f"{name}.sqlite")
    steps = find_steps(t.nvtx_ranges, "step")
    return kernel_summary(t.kernels, steps if not steps.empty else whole_span_step(t.activity_span, t.api_calls))


def _half_up(x: float, printed: str) -> Decimal:
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return Decimal(float(x)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def test_every_fixture_with_a_kernel_summary_is_checked() -> None:
    assert len(WITH_CSV) == 9


@pytest.mark.parametrize("name", WITH_CSV)
def test_agrees_with_nsys_cuda_gpu_kern_sum(name: str) -> None:
    nsys = pd.read_csv(STATS / name / "r_cuda_gpu_kern_sum.csv", dtype=str, keep_default_na=False).set_index("Name")
    ours = _summary(name).set_index("name")
    assert sorted(ours.index) == sorted(nsys.index)
    ours = ours.reindex(nsys.index)
    for col, theirs in (("launches", "Instances"), ("total_ns", "Total Time (ns)"), ("min_ns", "Min (ns)"),
                        ("max_ns", "Max (ns)")):
        assert ours[col].tolist() == nsys[theirs].astype("int64").tolist(), col
    assert ours["p50_ns"].tolist() == nsys["Med (ns)"].astype(float).tolist()  # x.0 or x.5: exact
    for col, theirs in (("mean_ns", "Avg (ns)"), ("stddev_ns", "StdDev (ns)")):
        bad = [(k, o, t) for k, o, t in zip(nsys.index, ours[col], nsys[theirs]) if _half_up(o, t) != Decimal(t)]
        assert not bad, f"{col}: (kernel, ours, nsys) {bad}"
    # nsys's Time (%) is printed to 0.1; its rounding mode is not ours to know
    assert np.allclose(100 * ours["share"], nsys["Time (%)"].astype(float), atol=0.05 + 1e-9)
    # nsys sorts by total time too
    assert _summary(name)["total_ns"].is_monotonic_decreasing
    assert abs(_summary(name)["share"].sum() - 1) < 1e-9


def _kernels(rows: list[tuple[str, int, int]], pid: int = 1) -> pd.DataFrame:
    """(name, start_ns, dur_ns) rows as a Trace.kernels-like table."""
    names, starts, durs = zip(*rows)
    return pd.DataFrame({"start_ns": starts, "end_ns": np.add(starts, durs), "dur_ns": durs, "device": 0,
                         "stream": 7, "pid": pid, "correlation_id": range(len(rows)), "name": names,
                         "short_name": [n.split("(")[0] for n in names]})


STEPS = pd.DataFrame({"step": [0, 1, 2], "warmup": [True, False, False], "pid": 1, "tid": 1,
                      "start_ns": [0, 100, 200], "end_ns": [100, 200, 300], "dur_ns": 100})


def test_hand_worked_table() -> None:
    k = _kernels([
        ("gemm(int)", 10, 40),    # warm-up step: in the totals, not per step
        ("gemm(int)", 110, 20),
        ("gemm(int)", 150, 10),
        ("gemm(int)", 210, 30),
        ("relu(float)", 120, 5),
        ("relu(float)", 290, 15),  # starts inside step 2, ends after it: still step 2's
        ("copy_k()", 400, 80),     # after every step
    ])
    s = kernel_summary(k, STEPS)
    assert list(s.columns) == list(COLUMNS)
    assert s["name"].tolist() == ["gemm(int)", "copy_k()", "relu(float)"]  # by total time
    gemm, copy, relu = (s.iloc[i] for i in range(3))
    assert (gemm["launches"], gemm["total_ns"], gemm["min_ns"], gemm["max_ns"]) == (4, 100, 10, 40)
    assert gemm["per_step_ns"] == (20 + 10 + 30) / 2 and gemm["mean_ns"] == 25.0
    assert gemm["p50_ns"] == 25.0 and gemm["p95_ns"] == pytest.approx(np.percentile([40, 20, 10, 30], 95))
    assert gemm["stddev_ns"] == pytest.approx(np.std([40, 20, 10, 30], ddof=1))
    assert relu["per_step_ns"] == 10.0 and copy["per_step_ns"] == 0.0
    assert copy["stddev_ns"] == 0.0  # one launch: 0, as nsys prints it
    assert s["share"].tolist() == [100 / 200, 80 / 200, 20 / 200] and gemm["short_name"] == "gemm"


def test_no_measured_steps_leaves_per_step_null() -> None:
    k = _kernels([("a()", 10, 5)])
    assert kernel_summary(k, STEPS.assign(warmup=True))["per_step_ns"].isna().all()
    assert kernel_summary(k, STEPS.iloc[0:0])["per_step_ns"].isna().all()


def test_no_kernels_is_an_empty_table() -> None:
    s = kernel_summary(_kernels([("a()", 0, 1)]).iloc[0:0], STEPS)
    assert s.empty and list(s.columns) == list(COLUMNS)
    assert kernel_summary_lines(s) == []


def test_lines_are_aligned_and_names_shortened() -> None:
    long = "void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>, std::array<char *, 1>>(int, T2, T3)"
    k = _kernels([(long, 110, 2_000), (long, 210, 4_000), ("b()", 120, 1_000)])
    lines = kernel_summary_lines(kernel_summary(k, STEPS), k=1)
    assert len(lines) == 2
    head, row = lines
    assert head.split() == ["kernel", "launches", "total", "ms", "per", "step", "ms", "mean", "µs", "p50", "µs",
                            "p95", "µs", "share"]
    name = short_kernel_name(long)
    assert name == "vectorized_elementwise_kernel<4, FillFunctor<float>, array<char *, 1>>(int, T2, T3)"[:57] + "..."
    assert row.startswith(name)
    # launches 2, total 0.006 ms, per step 0.003 ms, mean 3.0 µs, p50 3.0, p95 3.9, share 85.7%
    assert row[len(name):].split() == ["2", "0.006", "0.003", "3.0", "3.0", "3.9", "85.7%"]
    assert len(head) == len(row)  # right-aligned numbers end in the same column
    assert len(kernel_summary_lines(kernel_summary(k, STEPS))) == 3
