"""Steps: which NVTX ranges are decode steps, and which step owns a moment.

A step is one instance of the step range, matched on its text without the
domain; only the outermost instance on its thread counts (a same-named range
nested in another is not a second step). With no step range at all, the whole
profiled span (first to last GPU op or CUDA API call) is one step of the
process with the most CUDA API calls, on the thread of that process that makes
the most of them (the main thread when it makes none: a program may drive CUDA
from a worker thread, and on Windows no thread id equals the pid).

:func:`step_table` adds every per-step figure to the steps: each is computed
here once, and the summary, the charts and ``diff`` read these columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import intervals as iv
from . import schema as S
from .gpu import GpuBusy
from .overlap import step_h2d_overlap

STEP_COLUMNS = ["step", "warmup", "pid", "tid", "start_ns", "end_ns", "dur_ns", "range_id"]


def find_steps(ranges: pd.DataFrame, step_name: str, warmup: int | None = None) -> pd.DataFrame:
    """Steps in time order: ``step`` (0-based), ``warmup`` (bool), ``pid``, ``tid``,
    ``start_ns``, ``end_ns``, ``dur_ns``, ``range_id`` (null for a whole-span step).

    ``warmup`` None means the default: 1 when there are 3 or more steps, else 0.
    An empty frame means no range matched ``step_name``.
    """
    cand = ranges[ranges["text"] == step_name]
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


def whole_span_step(span: tuple[int | None, int | None], api_calls: pd.DataFrame) -> pd.DataFrame:
    """The whole profiled span ``span`` (first, last activity) as one step of the
    process with the most CUDA API calls, on its thread with the most calls (its
    main thread, tid = pid, when there are none)."""
    pid, tid = cuda_thread(api_calls)
    lo, hi = (span[0], span[1]) if span[0] is not None and span[1] is not None else (0, 0)
    out = pd.DataFrame(
        {
            "step": [0],
            "pid": [pid],
            "tid": [tid],
            "start_ns": [int(lo)],
            "end_ns": [int(hi)],
            "dur_ns": [int(hi) - int(lo)],
            "range_id": pd.array([pd.NA], dtype="Int64"),
        }
    )
    return _mark_warmup(out, 0)


def cuda_thread(api_calls: pd.DataFrame) -> tuple[int, int]:
    """``(pid, tid)`` of the thread that makes the CUDA calls: the process with
    the most calls, and its thread with the most (ties: the first to call);
    ``(0, 0)`` without calls."""
    return busiest_thread(thread_calls(api_calls["pid"].to_numpy(), api_calls["tid"].to_numpy()))


def thread_calls(pid: np.ndarray, tid: np.ndarray) -> pd.Series:
    """Calls per thread: a Series indexed by ``(pid, tid)``, in the order of each
    thread's first call (the calls of a trace streamed batch by batch add up to
    the same: :func:`add_thread_calls`)."""
    key = (np.asarray(pid, np.int64) << 24) | np.asarray(tid, np.int64)  # a tid has 24 bits (schema.tid_of)
    codes, uniq = pd.factorize(key)
    counts = np.bincount(codes, minlength=len(uniq)) if len(uniq) else np.zeros(0, np.int64)
    return pd.Series(counts.astype(np.int64),
                     index=pd.MultiIndex.from_arrays([uniq >> 24, uniq & 0xFFFFFF], names=["pid", "tid"]))


def add_thread_calls(a: pd.Series, b: pd.Series) -> pd.Series:
    """:func:`thread_calls` of two stretches of calls, ``b`` after ``a``."""
    if a.empty:
        return b
    both = pd.concat([a, b])
    return both.groupby(level=["pid", "tid"], sort=False).sum()


def busiest_thread(calls: pd.Series) -> tuple[int, int]:
    """:func:`cuda_thread` from :func:`thread_calls`."""
    if calls.empty:
        return 0, 0
    per_pid = calls.groupby(level="pid", sort=False).sum()
    pid = int(per_pid.idxmax())
    return pid, int(calls.xs(pid, level="pid").idxmax())


def _mark_warmup(steps: pd.DataFrame, warmup: int | None) -> pd.DataFrame:
    n = len(steps)
    w = (1 if n >= 3 else 0) if warmup is None else max(0, int(warmup))
    steps.insert(1, "warmup", steps["step"].to_numpy() < w)
    return steps[STEP_COLUMNS]


def assign_to_steps(steps: pd.DataFrame, t_ns: np.ndarray, pid: np.ndarray) -> np.ndarray:
    """For each moment ``t_ns`` of process ``pid``, the step whose window holds it, or -1.

    By time, whatever thread did the work: engines copy from a fetch thread. Where
    windows of one process overlap (steps on two threads), the latest-started of those
    that hold the moment wins.
    A moment of a process without steps falls to any step of any process.
    """
    t_ns = np.asarray(t_ns, dtype=np.int64)
    pid = np.asarray(pid, dtype=np.int64)
    out = np.full(t_ns.size, -1, dtype=np.int64)
    if steps.empty or t_ns.size == 0:
        return out
    step_pids = sorted(set(steps["pid"].tolist()))
    # per process with steps (then every other process): its steps in start order
    groups = [(p, steps[steps["pid"] == p].sort_values("start_ns")) for p in step_pids]
    groups.append((None, steps.sort_values("start_ns")))
    # per window, the latest end of it and every window started before it (a moment past that
    # lies in none of them: one prefix maximum, kept beside the range maxima so that the many
    # moments between steps skip the search), and the range maxima of the ends to find which
    # window holds a moment
    windows = [(p, st["start_ns"].to_numpy(), st["end_ns"].to_numpy(), st["step"].to_numpy(),
                np.maximum.accumulate(st["end_ns"].to_numpy()), _RangeMax(st["end_ns"].to_numpy()))
               for p, st in groups]
    for lo in range(0, t_ns.size, _ASSIGN_ROWS):  # a stretch of moments at a time: millions of kernels, few temporaries
        t, who, mine = t_ns[lo:lo + _ASSIGN_ROWS], pid[lo:lo + _ASSIGN_ROWS], out[lo:lo + _ASSIGN_ROWS]
        for p, s, e, k, reach, ends in windows:
            sel = ~np.isin(who, step_pids) if p is None else who == p
            if not sel.any():
                continue
            ts = t if sel.all() else t[sel]
            i = np.searchsorted(s, ts, side="right") - 1  # the latest window started by then
            ic = np.clip(i, 0, None)
            got = np.where((i >= 0) & (ts < e[ic]), k[ic], -1)
            # where that one ended before the moment, an earlier one may still hold it (a long
            # step of one thread around the short ones of another): the latest that does
            late = np.flatnonzero((got < 0) & (i >= 0) & (reach[ic] > ts))
            if late.size:
                got[late] = k[ends.last_above(i[late], ts[late])]
            if sel.all():
                mine[:] = got
            else:
                mine[sel] = got
    return out


_ASSIGN_ROWS = 1 << 16  # rows assigned at a time: their working arrays (half a megabyte) come from the heap, reused


class _RangeMax:
    """Maxima of ``values`` over any stretch ``[a, b]`` in constant time (a sparse
    table: level ``l`` holds the maxima of stretches of ``2**l``), for many stretches at once."""

    def __init__(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.int64)
        n = values.size
        levels = max(1, int(n).bit_length())
        self.table = np.full((levels, n), np.iinfo(np.int64).min, dtype=np.int64)
        self.table[0] = values
        for lv in range(1, levels):
            half = 1 << (lv - 1)
            self.table[lv, : n - 2 * half + 1] = np.maximum(self.table[lv - 1, : n - 2 * half + 1],
                                                            self.table[lv - 1, half: n - half + 1])

    def max(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The maximum of ``values[a..b]`` (inclusive, ``a <= b``), per pair."""
        lv = np.frexp((b - a + 1).astype(np.float64))[1] - 1  # floor(log2(length)), exact
        return np.maximum(self.table[lv, a], self.table[lv, b - (1 << lv) + 1])

    def last_above(self, i: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Per pair, the largest ``j <= i`` with ``values[j] > t`` (one must exist): a
        binary search on ``j``, for the maximum of ``values[j..i]`` only grows as ``j`` falls."""
        lo, hi = np.zeros_like(i), i.copy()
        while True:
            open_ = lo < hi
            if not open_.any():
                return lo
            mid = (lo + hi + 1) // 2
            above = self.max(np.where(open_, mid, i), i) > t
            lo = np.where(open_ & above, mid, lo)
            hi = np.where(open_ & ~above, mid - 1, hi)


def step_table(
    steps: pd.DataFrame,
    waits: pd.DataFrame,
    syncs: pd.DataFrame,
    compute: GpuBusy,
    anyop: GpuBusy,
    h2d: pd.DataFrame,
) -> pd.DataFrame:
    """``steps`` with the time figures of each step (ns unless a ratio):
    ``wait_ns`` (union of wait ranges on the step's thread), ``bubble_ratio``,
    ``gpu_busy_kernel_ns`` (union of kernels and graph runs, all devices),
    ``gpu_idle_ratio``, ``gpu_busy_any_ns`` (any GPU op), ``sync_ns`` (union of
    synchronising calls on the step's thread), ``sync_share``,
    ``sync_outside_wait_ns`` (sync calls outside the wait ranges),
    ``h2d_busy_ns``/``h2d_overlap_ns`` (the terms of the H2D/compute overlap).
    Ratios of a zero-length step are 0 (idle: 1). ``compute``: the kernels' and graph
    runs' busy time, ``anyop``: every op's."""
    st = steps.copy()
    dur = st["dur_ns"].to_numpy()
    safe = np.maximum(dur, 1)
    st["wait_ns"] = iv.clipped_union_by_thread(waits, st)
    st["bubble_ratio"] = np.where(dur > 0, st["wait_ns"] / safe, 0.0)
    ws, we = st["start_ns"].to_numpy(), st["end_ns"].to_numpy()
    st["gpu_busy_kernel_ns"] = compute.all.in_windows(ws, we)
    st["gpu_idle_ratio"] = np.where(dur > 0, 1 - st["gpu_busy_kernel_ns"] / safe, 1.0)
    st["gpu_busy_any_ns"] = anyop.all.in_windows(ws, we)
    st["sync_ns"] = iv.clipped_union_by_thread(syncs, st)
    st["sync_share"] = np.where(dur > 0, st["sync_ns"] / safe, 0.0)
    cols = ["start_ns", "end_ns", "pid", "tid"]
    stalled = pd.concat([waits[cols], syncs[cols]], ignore_index=True).astype("int64")
    st["sync_outside_wait_ns"] = iv.clipped_union_by_thread(stalled, st.reset_index(drop=True)) - st["wait_ns"].to_numpy()
    st["h2d_busy_ns"], st["h2d_overlap_ns"] = step_h2d_overlap(h2d, compute, st)
    return st


STEP_BYTES = {"H2D": "bytes_h2d", "D2H": "bytes_d2h", "D2D": "bytes_d2d", "P2P": "bytes_p2p", "disk": "bytes_disk"}


def with_step_bytes(st: pd.DataFrame, copies: pd.DataFrame, step_of: np.ndarray, step_links: pd.DataFrame) -> pd.DataFrame:
    """``st`` with the bytes each step moved per link kind (``bytes_h2d``,
    ``bytes_d2h``, ``bytes_d2d``, ``bytes_p2p``, ``bytes_disk``; a transfer belongs
    to the step holding its start, ``step_of``) and ``io_floor_ns``: the largest of
    the step's per-link floors (``step_links.floor_ns``), capped at the step's
    duration (a copy that runs past its step's end can ask for more than the step
    holds: the step is then wholly I/O-bound)."""
    st = st.copy()
    kind_of = {**S.LINK_KIND_OF_COPY, S.DISK_TO_HOST: "disk"}
    kinds = copies["copy_kind"].astype(object).map(kind_of).to_numpy(dtype=object)
    nbytes = copies["bytes"].to_numpy(dtype=np.int64)
    for kind, col in STEP_BYTES.items():
        sel = (kinds == kind) & (step_of >= 0)
        st[col] = iv.saturating_sums(step_of[sel], nbytes[sel], len(st))
    floor = step_links.groupby("step")["floor_ns"].max() if not step_links.empty else pd.Series(dtype="float64")
    st["io_floor_ns"] = np.minimum(floor.reindex(st["step"]).fillna(0.0).to_numpy(), st["dur_ns"].to_numpy())
    return st


def with_step_kernels(st: pd.DataFrame, compute: pd.DataFrame) -> pd.DataFrame:
    """``st`` with ``kernels`` (kernels and graph runs whose GPU start lies in the
    step, by time, whatever thread launched them) and ``kernel_mean_ns`` (their
    mean duration; null for a step without any)."""
    st = st.copy()
    step_of = assign_to_steps(st, compute["start_ns"].to_numpy(), compute["pid"].to_numpy())
    sel = step_of >= 0
    n = np.bincount(step_of[sel], minlength=len(st)).astype(np.int64)
    # the durations as one int64 difference, then those a step holds (two float64 copies of the times
    # were made before: the same sums, as every time below 2**53 ns is exact in float64)
    dur = (compute["end_ns"].to_numpy(np.int64) - compute["start_ns"].to_numpy(np.int64))[sel]
    total = np.bincount(step_of[sel], weights=dur, minlength=len(st))
    st["kernels"] = n
    with np.errstate(invalid="ignore", divide="ignore"):
        st["kernel_mean_ns"] = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    return st


def representative_step(steps: pd.DataFrame) -> pd.Series | None:
    """The step a timeline shows: of the non-warm-up steps (all steps when every
    one is warm-up), the one whose duration is the median. With an even count the
    two middle steps are equally close to the median; the shorter one (the lower
    median) is taken, then the earlier one. None when there are no steps."""
    if steps.empty:
        return None
    live = steps[~steps["warmup"].astype(bool)]
    pool = live if not live.empty else steps
    ordered = pool.sort_values(["dur_ns", "step"], kind="stable")
    return ordered.iloc[(len(ordered) - 1) // 2]


def shown_steps(steps: pd.DataFrame) -> list[int]:
    """The steps the timelines show: the representative one, then the slowest and
    the fastest measured step (without repeats)."""
    rep = representative_step(steps)
    if rep is None:
        return []
    live = steps[~steps["warmup"].astype(bool)]
    pool = live if not live.empty else steps
    picks = [int(rep["step"]), int(pool.loc[pool["dur_ns"].idxmax(), "step"]), int(pool.loc[pool["dur_ns"].idxmin(), "step"])]
    return list(dict.fromkeys(picks))
