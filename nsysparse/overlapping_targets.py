"""Top optimisation targets, ranked by the step time each costs."""

from __future__ import annotations

import numpy as np
import pandas as pd


def top_targets(
    live: pd.DataFrame,
    idle_other_ns: np.ndarray,
    step_links: pd.DataFrame,
    links: pd.DataFrame,
    n: int = 3,
) -> list[dict[str, object]]:
    """The ``n`` largest costs in ms per non-warm-up step, each with its ``share``
    of the mean step: ``host_wait`` (bubble), ``sync``, ``gpu_idle_other`` (GPU
    idle while the host is neither waiting nor synchronising) and, per link with
    a peak, ``link:<label>``: its busy time minus bytes / peak, the time lost to
    running below the peak."""
    k = len(live)
    if k == 0:
        return []
    mean_step_ms = live["dur_ns"].sum() / k / 1e6
    cand: list[tuple[str, float]] = [
        ("host_wait", live["wait_ns"].sum() / k / 1e6),
        ("sync", live["sync_ns"].sum() / k / 1e6),
        ("gpu_idle_other", float(np.sum(idle_other_ns)) / k / 1e6),
    ]
    peaks = links.set_index("link")["peak_gbps"]
    sl = step_links[step_links["step"].isin(live["step"])]
    for label, df in sl.groupby("link", sort=True):
        peak = peaks.get(label, np.nan)
        if not np.isfinite(peak) or peak <= 0:
            continue
        lost_ns = (df["busy_ns"] - df["bytes"] / peak).clip(lower=0).sum()
        cand.append((f"link:{label}", float(lost_ns) / k / 1e6))
    cand.sort(key=lambda c: c[1], reverse=True)
    return [
        {"what": w, "ms_per_step": float(ms), "share": float(ms / mean_step_ms) if mean_step_ms > 0 else 0.0}
        for w, ms in cand[:n]
    ]
