"""Transfer/compute overlap: how much of the host-to-device copying hides under kernels."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import intervals as iv
from .gpu import GpuBusy


def h2d_overlap(h2d: pd.DataFrame, compute: GpuBusy, windows: pd.DataFrame) -> pd.DataFrame:
    """Per device: ``h2d_busy_ns`` (union of its Host-to-Device copies ``h2d`` inside
    ``windows``), ``overlap_ns`` (that ∩ its kernel/graph busy time ``compute``) and
    ``overlap`` = overlap_ns / h2d_busy_ns (null without H2D copies)."""
    win = iv.union(windows["start_ns"], windows["end_ns"])
    rows = []
    for dev, copies in h2d.groupby("device", sort=True):  # one pass per device
        c = iv.intersect((copies["start_ns"].to_numpy(), copies["end_ns"].to_numpy()), win)
        k = compute.on(dev)
        both = iv.intersect(c, (k.starts, k.ends))
        busy = int((c[1] - c[0]).sum())
        ov = int((both[1] - both[0]).sum())
        rows.append({"device": int(dev), "h2d_busy_ns": busy, "overlap_ns": ov, "overlap": ov / busy if busy else float("nan")})
    return pd.DataFrame(rows, columns=["device", "h2d_busy_ns", "overlap_ns", "overlap"])


def step_h2d_overlap(h2d: pd.DataFrame, compute: GpuBusy, steps: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per step: ``h2d_busy_ns`` (union of each device's H2D copies inside the step,
    summed over devices) and ``h2d_overlap_ns`` (the part of it under that device's
    kernels or graph runs): the per-step terms of ``overlap_h2d_compute``."""
    busy = np.zeros(len(steps), dtype=np.int64)
    both = np.zeros(len(steps), dtype=np.int64)
    ws, we = steps["start_ns"].to_numpy(), steps["end_ns"].to_numpy()
    for dev, c in h2d.groupby("device", sort=True):  # one pass per device
        cs, ce = c["start_ns"].to_numpy(), c["end_ns"].to_numpy()
        k = compute.on(dev)
        os_, oe = iv.intersect((cs, ce), (k.starts, k.ends))
        busy += iv.clipped_union_per_window(cs, ce, ws, we)
        both += iv.clipped_union_per_window(os_, oe, ws, we)
    return busy, both
