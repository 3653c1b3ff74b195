"""Per range name: how long it took on the CPU, and what it projected onto the GPU."""

from __future__ import annotations

import numpy as np
import pandas as pd

RANGE_COLUMNS = [
    "name", "count", "total_ns", "mean_ns", "p50_ns", "p95_ns", "p99_ns",
    "proj_total_ns", "proj_busy_total_ns", "proj_count",
    "proj_mean_ns", "proj_p50_ns", "proj_p95_ns", "proj_p99_ns",
    "proj_busy_mean_ns", "proj_busy_p50_ns", "proj_busy_p95_ns", "proj_busy_p99_ns",
]


def range_table(ranges: pd.DataFrame, projection: pd.DataFrame) -> pd.DataFrame:
    """One row per range name (``domain:text``) over the whole trace: ``count``,
    ``total_ns``, ``mean_ns``, ``p50_ns``/``p95_ns``/``p99_ns`` (numpy linear
    percentiles of the CPU duration), ``proj_total_ns`` (sum of projected
    durations) and ``proj_busy_total_ns`` (sum of projected busy time); over the
    ``proj_count`` instances that launched GPU work, ``proj_mean_ns`` and
    ``proj_p50/p95/p99_ns`` of the projected GPU time (envelope) and
    ``proj_busy_*`` of the projected busy time (null for names with no GPU work)."""
    if ranges.empty:
        return pd.DataFrame({c: pd.Series(dtype=object if c == "name" else "float64") for c in RANGE_COLUMNS})
    g = ranges.groupby("name", sort=True)["dur_ns"]
    out = pd.DataFrame(
        {
            "count": g.size(),
            "total_ns": g.sum(),
            "mean_ns": g.mean(),
            "p50_ns": g.quantile(0.50),
            "p95_ns": g.quantile(0.95),
            "p99_ns": g.quantile(0.99),
        }
    )
    proj = projection.groupby("name")[["proj_dur_ns", "proj_busy_ns"]].sum()
    out["proj_total_ns"] = proj["proj_dur_ns"].reindex(out.index).fillna(0).astype(np.int64)
    out["proj_busy_total_ns"] = proj["proj_busy_ns"].reindex(out.index).fillna(0).astype(np.int64)
    pg = projection.groupby("name")
    out["proj_count"] = pg.size().reindex(out.index).fillna(0).astype(np.int64)
    for col, prefix in (("proj_dur_ns", "proj"), ("proj_busy_ns", "proj_busy")):
        g2 = pg[col]
        out[f"{prefix}_mean_ns"] = g2.mean().reindex(out.index)
        for q in (50, 95, 99):
            out[f"{prefix}_p{q}_ns"] = g2.quantile(q / 100).reindex(out.index)
    return out.reset_index().sort_values("total_ns", ascending=False, ignore_index=True)[RANGE_COLUMNS]
