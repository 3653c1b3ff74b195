"""Transfer/compute overlap: how much of the host-to-device copying hides under kernels."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import intervals as iv
from . import schema as S
from .trace import Trace
from .gpu import compute_intervals


def h2d_overlap(trace: Trace, windows: pd.DataFrame) -> pd.DataFrame:
    """Per device: ``h2d_busy_ns`` (union of its Host-to-Device copies inside
    ``windows``), ``overlap_ns`` (that ∩ its kernel/graph busy time) and
    ``overlap`` = overlap_ns / h2d_busy_ns (null without H2D copies)."""
    win = iv.union(windows["start_ns"], windows["end_ns"])
    m = trace.memcpy
    h2d = m[m["copy_kind"] == S.H2D]
    comp = compute_intervals(trace)
    rows = []
    for dev, copies in h2d.groupby("device", sort=True):
        c = iv.intersect((copies["start_ns"].to_numpy(), copies["end_ns"].to_numpy()), win)
        k = comp[comp["device"] == dev]
        both = iv.intersect(c, (k["start_ns"].to_numpy(), k["end_ns"].to_numpy()))
        busy = int((c[1] - c[0]).sum())
        ov = int((both[1] - both[0]).sum())
        rows.append({"device": int(dev), "h2d_busy_ns": busy, "overlap_ns": ov, "overlap": ov / busy if busy else float("nan")})
    return pd.DataFrame(rows, columns=["device", "h2d_busy_ns", "overlap_ns", "overlap"])


def step_h2d_overlap(trace: Trace, steps: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per step: ``h2d_busy_ns`` (union of each device's H2D copies inside the step,
    summed over devices) and ``h2d_overlap_ns`` (the part of it under that device's
    kernels or graph runs): the per-step terms of ``overlap_h2d_compute``."""
    busy = np.zeros(len(steps), dtype=np.int64)
    both = np.zeros(len(steps), dtype=np.int64)
    m = trace.memcpy
    h2d = m[m["copy_kind"] == S.H2D]
    comp = compute_intervals(trace)
    ws, we = steps["start_ns"].to_numpy(), steps["end_ns"].to_numpy()
    for dev, c in h2d.groupby("device", sort=True):  # one pass per device
        cs, ce = c["start_ns"].to_numpy(), c["end_ns"].to_numpy()
        k = comp[comp["device"] == dev]
        os_, oe = iv.intersect((cs, ce), (k["start_ns"].to_numpy(), k["end_ns"].to_numpy()))
        busy += iv.clipped_union_per_window(cs, ce, ws, we)
        both += iv.clipped_union_per_window(os_, oe, ws, we)
    return busy, both
