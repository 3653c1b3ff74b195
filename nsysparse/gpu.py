"""GPU busy and idle time: per step over all devices together, per device, and
per time bin for the busy-over-time chart.

The kernels and graph runs are put in start order once by
:func:`compute_intervals`; the time they keep the GPU busy, and the time any
op does (:meth:`GpuBusy.plus`: the copies and fills added), their union over
all devices and on each device, is made once by :class:`GpuBusy` and read in
any windows by every analysis that needs it (millions of kernels are unioned
once, not once per analysis).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from . import intervals as iv
from . import schema as S

OP_COLUMNS = ["start_ns", "end_ns", "device", "pid"]
# Calls that put a kernel (or a graph of them) on the GPU, by base name: with
# such calls and no kernel or graph table, kernels ran but were not recorded.
KERNEL_LAUNCH_CALLS = frozenset({
    "cudaLaunchKernel", "cudaLaunchKernelExC", "cudaLaunchCooperativeKernel", "cudaLaunchCooperativeKernelMultiDevice",
    "cuLaunchKernel", "cuLaunchKernelEx", "cuLaunchCooperativeKernel", "cudaGraphLaunch", "cuGraphLaunch",
})
GPU_BINS = 200
BUSY_BIN_COLUMNS = ["panel", "device", "bin", "start_ns", "end_ns", "kernel_share", "any_share"]


def compute_intervals(kernels: pd.DataFrame, graph_runs: pd.DataFrame) -> pd.DataFrame:
    """Kernel and graph-run intervals (``start_ns``, ``end_ns``, ``device``, ``pid``),
    in start order: the GPU computing. A graph-level graph run is compute: its
    kernels are not recorded."""
    return _in_start_order([kernels, graph_runs])


def _in_start_order(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """The OP_COLUMNS of ``tables`` as one frame sorted by start (stable: ties keep
    the tables' order), so the unions built on it skip their sort. One non-empty
    table in start order (the loader's are) is returned as a column selection,
    which copies nothing (:func:`schema.sorted_by_start`); the merge of several
    sorted runs is a stable sort that finds the runs."""
    parts = [t[OP_COLUMNS] for t in tables if len(t)] or [tables[0][OP_COLUMNS]]
    if len(parts) == 1:
        return S.sorted_by_start(parts[0])
    if not all(str(d) == "int64" for p in parts for d in p.dtypes):
        return S.sorted_by_start(pd.concat(parts, ignore_index=True))
    # the merge made a column at a time through one stable order of the starts (as
    # sort_values orders them): one column's copy in flight, not the whole frame twice
    start = np.concatenate([p["start_ns"].to_numpy() for p in parts])
    order = None if iv.ascending(start) else np.argsort(start, kind="stable")
    cols = {}
    for c in OP_COLUMNS:
        v = start if c == "start_ns" else np.concatenate([p[c].to_numpy() for p in parts])
        cols[c] = v if order is None else v[order]
        del v
    return pd.DataFrame(cols, copy=False)


def unrecorded(has_kernels: bool, has_copies: bool, api_calls: pd.DataFrame, has_gpu_ops: bool = True) -> set[str]:
    """What the trace cannot say about the GPU: ``"kernels"`` when there is no
    kernel or graph table and either kernel launches were called or no GPU op
    was recorded at all (then nothing shows the GPU was traced); ``"copies"``
    when there is no memcpy table but copy calls were made."""
    base = pd.Categorical(api_calls["base_name"])  # the names called, from the codes: no string per row
    codes = np.asarray(base.codes)
    seen = np.bincount(codes[codes >= 0], minlength=len(base.categories)) > 0
    names = pd.Series(base.categories.to_numpy(dtype=object)[seen], dtype=object)
    missing = set()
    if not has_kernels and (not has_gpu_ops or names.isin(KERNEL_LAUNCH_CALLS).any()):
        missing.add("kernels")
    if not has_copies and names.str.startswith(S.MEMCPY_CALL_PREFIXES).any():
        missing.add("copies")
    return missing


class Busy:
    """The union of some ops' intervals (sorted, disjoint; an op of no length adds
    nothing) and its cumulative coverage, made when first read: how much of it
    lies in any window is two binary searches per window."""

    def __init__(self, starts: npt.ArrayLike, ends: npt.ArrayLike) -> None:
        self.starts, self.ends = iv.union(starts, ends)
        self._cum: np.ndarray | None = None

    def before(self, t: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Per time in ``t``: how much of the set lies before it."""
        if self.starts.size and self._cum is None:
            self._cum = iv.cumulative(self.starts, self.ends)
        return iv.covered_before(self.starts, self.ends, t, self._cum)

    def in_windows(self, starts: npt.ArrayLike, ends: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Per window ``[starts[i], ends[i])``: how much of the set lies in it."""
        return self.before(ends) - self.before(starts)

    def joined(self, starts: np.ndarray, ends: np.ndarray) -> "Busy":
        """The union of this set and the intervals ``[starts, ends)`` (in start
        order): put in place among this set's by a binary search, no sort."""
        at = np.searchsorted(self.starts, starts, side="right")
        return Busy(np.insert(self.starts, at, starts), np.insert(self.ends, at, ends))

    def fraction(self, edges: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Per bin ``[edges[i], edges[i+1])``: the fraction of it the set covers, in [0, 1]
        (overlapping intervals count once), from its coverage read at the edges."""
        e = np.asarray(edges, dtype=np.int64)
        covered = np.diff(self.before(e)).astype(np.float64)
        width = np.diff(e).astype(np.float64)
        return np.clip(np.divide(covered, width, out=np.zeros_like(covered), where=width > 0), 0.0, 1.0)


_NONE = Busy(np.zeros(0, np.int64), np.zeros(0, np.int64))


class GpuBusy:
    """The time some GPU ops (the kernels and graph runs, or every op) keep the
    GPU busy: their union over all devices (:attr:`all`) and on each device
    (:meth:`on`), each made once (:meth:`of`; :meth:`plus` adds ops). With one
    device (the usual case) its set is the all-device one.
    :attr:`first_start`/:attr:`last_end`: the earliest start and latest end of
    any op (one of no length too); None without ops."""

    def __init__(self, all_: Busy, on: dict[int, Busy], first_start: int | None, last_end: int | None) -> None:
        self.all, self._on = all_, on
        self.devices: list[int] = sorted(on)
        self.first_start, self.last_end = first_start, last_end

    @classmethod
    def of(cls, ops: pd.DataFrame) -> "GpuBusy":
        """The busy time of ``ops`` (``start_ns``, ``end_ns``, ``device``; a null device counts in :attr:`all` only)."""
        s, e = ops["start_ns"].to_numpy(np.int64), ops["end_ns"].to_numpy(np.int64)
        all_ = Busy(s, e)
        on = {}
        for d in sorted(int(d) for d in pd.unique(ops["device"].dropna())) if s.size else []:
            mine = (ops["device"] == d).to_numpy(dtype=bool, na_value=False)
            on[d] = all_ if mine.all() else Busy(s[mine], e[mine])
        return cls(all_, on, int(s.min()) if s.size else None, int(e.max()) if s.size else None)

    def plus(self, *tables: pd.DataFrame) -> "GpuBusy":
        """This busy time with the ops of ``tables`` (``start_ns``, ``end_ns``,
        ``device``) added: the kernels' with the copies and fills is any op's.
        Made from this one's sets with the (fewer) added ops put in place, not
        from a table of every op: millions of kernels are not copied again."""
        parts = [t for t in tables if len(t)]
        if not parts:
            return self
        s = np.concatenate([t["start_ns"].to_numpy(np.int64) for t in parts])
        e = np.concatenate([t["end_ns"].to_numpy(np.int64) for t in parts])
        dev = pd.concat([t["device"] for t in parts], ignore_index=True)
        if not iv.ascending(s):
            order = np.argsort(s, kind="stable")
            s, e, dev = s[order], e[order], dev.iloc[order].reset_index(drop=True)
        all_ = self.all.joined(s, e)
        on = {}
        for d in sorted(set(self.devices) | {int(d) for d in pd.unique(dev.dropna())}):
            mine = (dev == d).to_numpy(dtype=bool, na_value=False)
            # every op on this device, added and before (or none before): its set is the whole one
            whole = mine.all() and (self.on(d) is self.all or self.all.starts.size == 0)
            on[d] = all_ if whole else self.on(d).joined(s[mine], e[mine]) if mine.any() else self.on(d)
        first = min(v for v in (self.first_start, int(s.min())) if v is not None)
        last = max(v for v in (self.last_end, int(e.max())) if v is not None)
        return GpuBusy(all_, on, first, last)

    def on(self, device: int) -> Busy:
        """The busy set of one device (empty for a device without ops)."""
        return self._on.get(int(device), _NONE)


def devices_of(anyop: GpuBusy, gpus: pd.DataFrame) -> list[int]:
    """Every device that ran an op or that the trace lists as a GPU."""
    listed = gpus["device"].dropna().astype(int).tolist() if "device" in gpus else []
    return sorted(set(anyop.devices) | set(listed))


def step_devices(compute: GpuBusy, anyop: GpuBusy, gpus: pd.DataFrame, steps: pd.DataFrame) -> pd.DataFrame:
    """Per step and device: ``gpu_busy_kernel_ns``, ``gpu_idle_ratio``, ``gpu_busy_any_ns``
    (``compute``: the kernels' and graph runs' busy time, ``anyop``: every op's)."""
    rows = []
    dur = steps["dur_ns"].to_numpy()
    ws, we = steps["start_ns"].to_numpy(), steps["end_ns"].to_numpy()
    for d in devices_of(anyop, gpus):  # one pass per device
        busy_k = compute.on(d).in_windows(ws, we)
        busy_a = anyop.on(d).in_windows(ws, we)
        rows.append(
            pd.DataFrame(
                {
                    "step": steps["step"].to_numpy(),
                    "device": d,
                    "gpu_busy_kernel_ns": busy_k,
                    "gpu_idle_ratio": np.where(dur > 0, 1 - busy_k / np.maximum(dur, 1), 1.0),
                    "gpu_busy_any_ns": busy_a,
                }
            )
        )
    if not rows:
        return pd.DataFrame({"step": pd.Series(dtype="int64"), "device": pd.Series(dtype="int64"),
                             "gpu_busy_kernel_ns": pd.Series(dtype="int64"), "gpu_idle_ratio": pd.Series(dtype="float64"),
                             "gpu_busy_any_ns": pd.Series(dtype="int64")})
    return pd.concat(rows, ignore_index=True).sort_values(["step", "device"], ignore_index=True)


def bin_edges(lo: int, hi: int, bins: int = GPU_BINS) -> npt.NDArray[np.int64]:
    """``bins`` + 1 increasing int64 edges from ``lo`` to ``hi`` (fewer bins when the
    span has fewer nanoseconds than ``bins``)."""
    n = max(1, min(int(bins), int(hi - lo)))
    edges = np.unique(np.round(np.linspace(lo, hi, n + 1)).astype(np.int64))
    return edges if edges.size >= 2 else np.array([lo, lo + 1], dtype=np.int64)


def busy_panels(anyop: GpuBusy, steps: pd.DataFrame) -> list[tuple[str, int, int]]:
    """The spans the busy-over-time chart shows: ``("run", first, last GPU op)``
    and, when the non-warm-up steps fill less than 80% of it, ``("steps", first
    non-warm-up step start, last one's end)``."""
    if anyop.first_start is None or anyop.last_end is None:
        return []
    lo, hi = anyop.first_start, anyop.last_end
    panels = [("run", lo, hi)]
    live = steps[~steps["warmup"].astype(bool)]
    if len(live):
        zlo, zhi = int(live["start_ns"].min()), int(live["end_ns"].max())
        if zhi > zlo and (zhi - zlo) < 0.8 * (hi - lo):
            panels.append(("steps", zlo, zhi))
    return panels


def gpu_busy_bins(compute: GpuBusy, anyop: GpuBusy, steps: pd.DataFrame, bins: int = GPU_BINS) -> pd.DataFrame:
    """Per panel (:func:`busy_panels`), device and time bin: ``start_ns``/``end_ns``
    of the bin, ``kernel_share`` (fraction of the bin with a kernel or graph run
    on that device) and ``any_share`` (with any GPU op), from :meth:`Busy.fraction`."""
    parts = []
    for panel, lo, hi in busy_panels(anyop, steps):
        edges = bin_edges(lo, hi, bins)
        for dev in anyop.devices:  # one pass per panel and device
            parts.append(pd.DataFrame({
                "panel": panel, "device": dev, "bin": np.arange(edges.size - 1, dtype=np.int64),
                "start_ns": edges[:-1], "end_ns": edges[1:],
                "kernel_share": compute.on(dev).fraction(edges),
                "any_share": anyop.on(dev).fraction(edges),
            }))
    if not parts:
        return pd.DataFrame({"panel": pd.Series(dtype=object), "device": pd.Series(dtype="int64"),
                             "bin": pd.Series(dtype="int64"), "start_ns": pd.Series(dtype="int64"),
                             "end_ns": pd.Series(dtype="int64"), "kernel_share": pd.Series(dtype="float64"),
                             "any_share": pd.Series(dtype="float64")})
    return pd.concat(parts, ignore_index=True)[BUSY_BIN_COLUMNS]
