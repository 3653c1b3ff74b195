"""Steps: which NVTX ranges are decode steps, and which step owns a moment.

A step is one instance of the step range, matched on its text without the
domain; only the outermost instance on its thread counts (a same-named range
nested in another is not a second step). With no step range at all, the whole
profiled span (first to last GPU op or CUDA API call) is one step on the main
thread (tid = pid) of the process with the most CUDA API calls.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .trace import Trace

STEP_COLUMNS = ["step", "warmup", "pid", "tid", "start_ns", "end_ns", "dur_ns", "range_id"]


def find_steps(trace: Trace, step_name: str, warmup: int | None = None) -> pd.DataFrame:
    """Steps in time order: ``step`` (0-based), ``warmup`` (bool), ``pid``, ``tid``,
    ``start_ns``, ``end_ns``, ``dur_ns``, ``range_id`` (null for a whole-span step).

    ``warmup`` None means the default: 1 when there are 3 or more steps, else 0.
    An empty frame means no range matched ``step_name``.
    """
    r = trace.nvtx_ranges
    cand = r[r["text"] == step_name]
    if cand.empty:
        return pd.DataFrame({c: pd.Series(dtype="int64") for c in STEP_COLUMNS}).astype(
            {"warmup": bool, "range_id": "Int64"}
        )
    cand = cand.sort_values(["pid", "tid", "start_ns", "end_ns"], ascending=[True, True, True, False])
    # nested in an earlier step of the same thread: its start falls before the latest end so far
    prev_end = cand.groupby(["pid", "tid"], sort=False)["end_ns"].transform(lambda e: e.cummax().shift(1))
    outer = cand[~(cand["start_ns"] < prev_end.fillna(np.iinfo(np.int64).min))]
    steps = outer.sort_values(["start_ns", "pid", "tid"], ignore_index=True)
    out = pd.DataFrame(
        {
            "step": np.arange(len(steps), dtype=np.int64),
            "pid": steps["pid"].to_numpy(),
            "tid": steps["tid"].to_numpy(),
            "start_ns": steps["start_ns"].to_numpy(),
            "end_ns": steps["end_ns"].to_numpy(),
            "dur_ns": steps["dur_ns"].to_numpy(),
            "range_id": pd.array(steps["range_id"].to_numpy(), dtype="Int64"),
        }
    )
    return _mark_warmup(out, warmup)


def whole_span_step(trace: Trace) -> pd.DataFrame:
    """The whole profiled span as one step, on the busiest process's main thread."""
    span = trace.activity_span
    api = trace.api_calls
    pid = int(api["pid"].value_counts().idxmax()) if not api.empty else 0
    lo, hi = (span[0], span[1]) if span[0] is not None and span[1] is not None else (0, 0)
    out = pd.DataFrame(
        {
            "step": [0],
            "pid": [pid],
            "tid": [pid],
            "start_ns": [int(lo)],
            "end_ns": [int(hi)],
            "dur_ns": [int(hi) - int(lo)],
            "range_id": pd.array([pd.NA], dtype="Int64"),
        }
    )
    return _mark_warmup(out, 0)


def _mark_warmup(steps: pd.DataFrame, warmup: int | None) -> pd.DataFrame:
    n = len(steps)
    w = (1 if n >= 3 else 0) if warmup is None else max(0, int(warmup))
    steps.insert(1, "warmup", steps["step"].to_numpy() < w)
    return steps[STEP_COLUMNS]


def assign_to_steps(steps: pd.DataFrame, t_ns: np.ndarray, pid: np.ndarray) -> np.ndarray:
    """For each moment ``t_ns`` of process ``pid``, the step whose window holds it, or -1.

    By time, whatever thread did the work: engines copy from a fetch thread. Where
    windows of one process overlap (steps on two threads), the latest-started wins.
    A moment of a process without steps falls to any step of any process.
    """
    t_ns = np.asarray(t_ns, dtype=np.int64)
    pid = np.asarray(pid, dtype=np.int64)
    out = np.full(t_ns.size, -1, dtype=np.int64)
    if steps.empty or t_ns.size == 0:
        return out
    step_pids = set(steps["pid"].tolist())
    groups = [(p, steps[steps["pid"] == p], pid == p) for p in step_pids]
    groups.append((None, steps, ~np.isin(pid, list(step_pids))))
    for _, st, sel in groups:
        if not sel.any():
            continue
        st = st.sort_values("start_ns")
        s, e, k = st["start_ns"].to_numpy(), st["end_ns"].to_numpy(), st["step"].to_numpy()
        i = np.searchsorted(s, t_ns[sel], side="right") - 1
        ic = np.clip(i, 0, None)
        inside = (i >= 0) & (t_ns[sel] < e[ic])
        out[np.flatnonzero(sel)] = np.where(inside, k[ic], -1)
    return out
