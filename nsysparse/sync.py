"""Synchronisation: time the host spends inside synchronising CUDA calls."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import intervals as iv
from . import schema as S

SYNC_TABLE_COLUMNS = ["base_name", "pid", "tid", "calls", "total_ns", "union_ns", "share"]


SYNC_CALL_COLUMNS = ["pid", "tid", "start_ns", "end_ns", "dur_ns", "base_name"]


def sync_calls(api_calls: pd.DataFrame) -> pd.DataFrame:
    """API calls that block the host: ``cuda*Synchronize``/``cu*Synchronize`` and the
    blocking copies and fills (``cudaMemcpy``, ``cudaMemset`` and their 2D/3D/Symbol
    forms without ``Async``), matched by base name: ``pid``, ``tid``, ``start_ns``,
    ``end_ns``, ``dur_ns``, ``base_name``."""
    api = api_calls
    base = pd.Categorical(api["base_name"])  # matched per distinct name, not per row
    hit = np.asarray(base.categories.isin(S.SYNC_CALLS), dtype=bool)
    codes = np.asarray(base.codes)
    mask = (codes >= 0) & (hit[np.maximum(codes, 0)] if hit.size else False)
    cols = [c for c in SYNC_CALL_COLUMNS if c != "dur_ns"]  # the duration from the picked rows: the
    out = api.loc[mask, cols].reset_index(drop=True)          # analyses' API table may not hold it
    out.insert(cols.index("end_ns") + 1, "dur_ns", out["end_ns"] - out["start_ns"])
    return out


def step_sync_ns(calls: pd.DataFrame, steps: pd.DataFrame) -> np.ndarray:
    """Per step: |union of sync calls on the step's thread, clipped to the step| in ns."""
    return iv.clipped_union_by_thread(calls, steps)


def sync_table(calls: pd.DataFrame, steps: pd.DataFrame, span_ns: int) -> pd.DataFrame:
    """Per base name and thread: ``calls``, ``total_ns`` (sum of durations),
    ``union_ns`` (union of the calls), ``share`` (union within the thread's
    non-warm-up steps / their total time; for a thread that owns no step,
    union over the whole profiled span ``span_ns``). A share never sums threads."""
    if calls.empty:
        return pd.DataFrame({c: pd.Series(dtype=object if c == "base_name" else "int64") for c in SYNC_TABLE_COLUMNS}).astype({"share": "float64"})
    c = calls.assign(base_name=calls["base_name"].astype(object))
    g = c.groupby(["base_name", "pid", "tid"], sort=True)
    out = g.agg(calls=("start_ns", "size"), total_ns=("dur_ns", "sum")).reset_index()
    out["union_ns"] = g.apply(lambda d: iv.total(d["start_ns"].to_numpy(), d["end_ns"].to_numpy()), include_groups=False).to_numpy()
    live = steps[~steps["warmup"]]
    shares = np.full(len(out), np.nan)
    for i, row in enumerate(out.itertuples(index=False)):  # one row per (name, thread): small
        own = live[(live["pid"] == row.pid) & (live["tid"] == row.tid)]
        mine = c[(c["base_name"] == row.base_name) & (c["pid"] == row.pid) & (c["tid"] == row.tid)]
        if len(own):
            in_steps = iv.clipped_union_per_window(mine["start_ns"], mine["end_ns"], own["start_ns"], own["end_ns"]).sum()
            shares[i] = in_steps / own["dur_ns"].sum() if own["dur_ns"].sum() > 0 else 0.0
        else:
            shares[i] = min(row.union_ns / span_ns, 1.0) if span_ns > 0 else 0.0
    out["share"] = shares
    return out[SYNC_TABLE_COLUMNS]
