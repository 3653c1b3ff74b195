"""Per-layer breakdown: the k-th layer range inside a step is layer k."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import intervals as iv
from .gpu import GpuBusy

LAYER_COLUMNS = ["layer", "count", "wait_ns", "sync_ns", "gpu_busy_kernel_ns", "bytes_h2d", "bytes_disk"]


LAYER_WINDOW_COLUMNS = ["step", "layer", "pid", "tid", "start_ns", "end_ns", "dur_ns"]


def layer_windows(ranges: pd.DataFrame, layer_name: str, steps: pd.DataFrame) -> pd.DataFrame:
    """Outermost layer ranges on each step's thread, inside the step, numbered from 0
    in time order within their step: ``step``, ``layer``, ``pid``, ``tid``,
    ``start_ns``, ``end_ns``, ``dur_ns``.

    Steps of one thread are outermost ranges and do not overlap, so the step that
    can hold a layer is the last one starting at or before it: one searchsorted
    per thread, never a layers x steps join.
    """
    empty = pd.DataFrame({c: pd.Series(dtype="int64") for c in LAYER_WINDOW_COLUMNS})
    lay = ranges[ranges["text"] == layer_name]
    if lay.empty or steps.empty:
        return empty
    lay = lay.sort_values(["pid", "tid", "start_ns", "end_ns"], ascending=[True, True, True, False])
    prev_end = lay.groupby(["pid", "tid"], sort=False)["end_ns"].transform(lambda e: e.cummax().shift(1))
    lay = lay[~(lay["start_ns"] < prev_end.fillna(np.iinfo(np.int64).min))]
    step_rows = steps.groupby(["pid", "tid"], sort=False).indices
    parts = []
    for key, rows in lay.groupby(["pid", "tid"], sort=False).indices.items():  # one pass per thread
        if key not in step_rows:
            continue
        sw = steps.iloc[step_rows[key]].sort_values("start_ns")
        lt = lay.iloc[rows]
        s_start, s_end, s_step = (sw[c].to_numpy() for c in ("start_ns", "end_ns", "step"))
        i = np.searchsorted(s_start, lt["start_ns"].to_numpy(), side="right") - 1
        ic = np.clip(i, 0, None)
        inside = (i >= 0) & (lt["end_ns"].to_numpy() <= s_end[ic])
        parts.append(lt[inside].assign(step=s_step[ic[inside]]))
    if not parts:
        return empty
    m = pd.concat(parts).sort_values(["step", "start_ns"], ignore_index=True)
    m["layer"] = m.groupby("step").cumcount()
    return m[LAYER_WINDOW_COLUMNS].reset_index(drop=True)


def layer_table(
    windows: pd.DataFrame,
    live_steps: pd.DataFrame,
    waits: pd.DataFrame,
    syncs: pd.DataFrame,
    compute: GpuBusy,
    h2d: pd.DataFrame,
    disk: pd.DataFrame,
) -> pd.DataFrame:
    """Per layer index, sums over the non-warm-up steps ``live_steps``: ``count``,
    ``wait_ns``/``sync_ns`` (unions on the step's thread, clipped to the layer),
    ``gpu_busy_kernel_ns`` (the kernels' and graph runs' busy time ``compute``, all devices, clipped to the layer),
    ``bytes_h2d``/``bytes_disk`` (transfers whose start lies in the layer)."""
    w = windows[windows["step"].isin(live_steps["step"])].reset_index(drop=True)
    if w.empty:
        return pd.DataFrame({c: pd.Series(dtype="int64") for c in LAYER_COLUMNS})
    w = w.assign(
        wait_ns=iv.clipped_union_by_thread(waits, w),
        sync_ns=iv.clipped_union_by_thread(syncs, w),
        gpu_busy_kernel_ns=compute.all.in_windows(w["start_ns"].to_numpy(), w["end_ns"].to_numpy()),
        bytes_h2d=_bytes_in(h2d, w),
        bytes_disk=_bytes_in(disk, w),
    )
    out = w.groupby("layer", sort=True).agg(
        count=("step", "size"), wait_ns=("wait_ns", "sum"), sync_ns=("sync_ns", "sum"),
        gpu_busy_kernel_ns=("gpu_busy_kernel_ns", "sum"), bytes_h2d=("bytes_h2d", "sum"), bytes_disk=("bytes_disk", "sum"),
    ).reset_index()
    return out[LAYER_COLUMNS].astype("int64")


def _bytes_in(xfer: pd.DataFrame, w: pd.DataFrame) -> np.ndarray:
    """Bytes of the transfers starting in each (non-overlapping) window."""
    if xfer.empty:
        return np.zeros(len(w), dtype=np.int64)
    x = xfer.sort_values("start_ns")
    b = x["bytes"].to_numpy(dtype=np.int64)
    if float(np.sum(b, dtype=np.float64)) >= 2.0 ** 62:  # corrupt byte counts: saturate, never wrap
        cumf = np.concatenate([[0.0], np.cumsum(b, dtype=np.float64)])
        t = x["start_ns"].to_numpy()
        d = cumf[np.searchsorted(t, w["end_ns"].to_numpy(), "left")] - cumf[np.searchsorted(t, w["start_ns"].to_numpy(), "left")]
        return np.minimum(d, float(np.iinfo(np.int64).max // 2)).astype(np.int64)
    cum = np.concatenate([[0], np.cumsum(b)])
    t = x["start_ns"].to_numpy()
    return cum[np.searchsorted(t, w["end_ns"].to_numpy(), "left")] - cum[np.searchsorted(t, w["start_ns"].to_numpy(), "left")]
