"""The summary metrics, each defined once: name -> unit, label and how it is
computed from sums of per-step columns over the measured (non-warm-up) steps.

The report's summary evaluates each on the measured steps; ``diff`` evaluates
the same function on every bootstrap resample of them. Each ``fn`` takes
``sums`` (step column -> array of sums, one per resample), ``ms`` (the step
durations in ms drawn, resamples x steps) and ``n`` (steps per resample), and
returns one value per resample (NaN where undefined: a zero denominator).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# Per-step columns (steps.parquet) the metrics are ratios of.
STEP_SUM_COLUMNS = ("dur_ns", "wait_ns", "sync_ns", "gpu_busy_kernel_ns", "gpu_busy_any_ns", "io_floor_ns",
                    "h2d_busy_ns", "h2d_overlap_ns")

Fn = Callable[[dict[str, np.ndarray], np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str   # "ms" or "ratio"
    label: str  # how the text reports name it
    fn: Fn


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, NaN where den is not positive (an undefined share)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("step_ms_p50", "ms", "step time p50", lambda s, ms, n: np.percentile(ms, 50, axis=-1)),
    Metric("step_ms_p95", "ms", "step time p95", lambda s, ms, n: np.percentile(ms, 95, axis=-1)),
    Metric("step_ms_mean", "ms", "step time mean", lambda s, ms, n: s["dur_ns"] / n / 1e6),
    Metric("bubble_ratio", "ratio", "host wait (bubble ratio)", lambda s, ms, n: ratio(s["wait_ns"], s["dur_ns"])),
    Metric("gpu_idle_ratio", "ratio", "GPU idle ratio", lambda s, ms, n: 1 - ratio(s["gpu_busy_kernel_ns"], s["dur_ns"])),
    Metric("gpu_busy_any_ratio", "ratio", "GPU busy with anything",
           lambda s, ms, n: ratio(s["gpu_busy_any_ns"], s["dur_ns"])),
    Metric("sync_share", "ratio", "sync share", lambda s, ms, n: ratio(s["sync_ns"], s["dur_ns"])),
    Metric("overlap_h2d_compute", "ratio", "H2D hidden under kernels",
           lambda s, ms, n: ratio(s["h2d_overlap_ns"], s["h2d_busy_ns"])),
    Metric("io_floor_share", "ratio", "I/O floor / step time", lambda s, ms, n: ratio(s["io_floor_ns"], s["dur_ns"])),
)}


def evaluate(live: pd.DataFrame, columns: tuple[str, ...] = STEP_SUM_COLUMNS) -> dict[str, Any]:
    """Every metric over the measured steps ``live`` (one row per step): a plain
    float, or None where it is undefined (no steps, a zero denominator)."""
    n = len(live)
    if n == 0:
        return {name: None for name in METRICS}
    sums = {c: np.array([live[c].sum()], dtype=np.float64) for c in columns if c in live}
    ms = live["dur_ns"].to_numpy(dtype=np.float64)[None, :] / 1e6
    out: dict[str, Any] = {}
    for name, m in METRICS.items():
        v = float(np.asarray(m.fn(sums, ms, n)).reshape(-1)[0])
        out[name] = None if not np.isfinite(v) else v
    return out
