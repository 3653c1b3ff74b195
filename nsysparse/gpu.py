"""GPU busy and idle time per step, over all devices together and per device."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import intervals as iv
from .trace import Trace


def compute_intervals(trace: Trace) -> pd.DataFrame:
    """Kernel and graph-run intervals (``start_ns``, ``end_ns``, ``device``): the
    GPU computing. A graph-level graph run is compute: its kernels are not recorded."""
    cols = ["start_ns", "end_ns", "device"]
    return pd.concat([trace.kernels[cols], trace.graph_runs[cols]], ignore_index=True)


def any_intervals(trace: Trace) -> pd.DataFrame:
    """Compute intervals plus memcpy and memset: the GPU doing anything."""
    cols = ["start_ns", "end_ns", "device"]
    return pd.concat([compute_intervals(trace), trace.memcpy[cols], trace.memset[cols]], ignore_index=True)


def busy_in_windows(ops: pd.DataFrame, windows: pd.DataFrame) -> np.ndarray:
    """Per window: |union of ``ops`` intervals clipped to it|, all devices together."""
    if ops.empty or windows.empty:
        return np.zeros(len(windows), dtype=np.int64)
    return iv.clipped_union_per_window(ops["start_ns"], ops["end_ns"], windows["start_ns"], windows["end_ns"])


def step_devices(trace: Trace, steps: pd.DataFrame) -> pd.DataFrame:
    """Per step and device: ``gpu_busy_kernel_ns``, ``gpu_idle_ratio``, ``gpu_busy_any_ns``."""
    comp, anyop = compute_intervals(trace), any_intervals(trace)
    devices = sorted(set(anyop["device"].tolist()) | set(trace.gpus.get("device", pd.Series(dtype="int64")).dropna().astype(int).tolist()))
    rows = []
    for d in devices:  # one pass per device
        busy_k = busy_in_windows(comp[comp["device"] == d], steps)
        busy_a = busy_in_windows(anyop[anyop["device"] == d], steps)
        dur = steps["dur_ns"].to_numpy()
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
        return pd.DataFrame({"step": [], "device": [], "gpu_busy_kernel_ns": [], "gpu_idle_ratio": [], "gpu_busy_any_ns": []})
    return pd.concat(rows, ignore_index=True).sort_values(["step", "device"], ignore_index=True)
