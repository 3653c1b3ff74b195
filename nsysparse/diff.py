"""Compare two runs: is a difference real, or within step-to-step noise?

For each summary metric, each range name and each link: the value in run A and
in run B, ``delta`` = B − A, and a 95% percentile-bootstrap interval of the
delta (CONTRACT.md, ``diff``). Each resample draws, with replacement, as many
non-warm-up steps of A as A has and as many of B as B has (links: copies
instead of steps), and recomputes the metric as a ratio of sums over the drawn
units, exactly as the report computes it over all of them. ``verdict`` is
"changed" when the interval excludes 0, else "within noise"; a name found in
one run only is "only in A" / "only in B" with null for the other side.

The bootstrap is vectorised: one index matrix (resamples x units) per run is
drawn from ``numpy.random.default_rng(0)`` (A's steps, B's steps, then each
link's copies, A then B, in name order); sums over every resample at once are
the product of the draw-count matrix with the per-unit columns. No Python loop
runs over resamples (only over row blocks, for memory, on huge inputs).

Deliberate choices, each a consequence of resampling units:
- With fewer than 2 units on a side there is no noise to measure: the interval
  is null and the verdict "within noise" (a note says so).
- A range name's point value is the mean CPU duration of its instances that
  start inside a measured (non-warm-up) step, by time, like link bytes. A name
  present in both runs but never inside a measured step of one of them (a
  lifetime or set-up range) is compared on its whole-trace mean, without an
  interval (``basis`` says which).
- A link's effective GB/s is bytes / |union of its copies|. To resample it as
  a ratio of sums, each copy is given its share of the union (time it runs
  alone counts fully; time shared by k overlapping copies counts 1/k to each):
  the shares sum to the link's busy time, so the point value is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from . import intervals as iv
from .breakdown import CATEGORIES, breakdown_wide
from .metrics import METRICS, STEP_SUM_COLUMNS, ratio
from .report import Report, Settings, jsonable
from .steps import assign_to_steps

RESAMPLES = 2000
SEED = 0
CONFIDENCE = 0.95
PERCENTILES = (2.5, 97.5)  # the two tails of CONFIDENCE
MAX_CELLS = 4_000_000  # index-matrix cells held at once (32 MB of int64)
CHANGED, NOISE, ONLY_A, ONLY_B = "changed", "within noise", "only in A", "only in B"

@dataclass
class Diff:
    """The comparison of run B against run A (see the module doc).

    ``metrics``, ``ranges``, ``links``: rows with ``name``, ``a``, ``b``,
    ``delta`` (B − A), ``ci_low``/``ci_high`` (95% bootstrap interval of the
    delta, null when none), ``verdict``, ``unit`` ("ratio", "ms", "ns" for a
    range's mean CPU duration, "GB/s" = 1e9 B/s), ``n_a``/``n_b`` (units
    resampled: measured steps, or copies for links); ranges add ``basis``.
    ``steps_a``/``steps_b``: each run's per-step table, for the chart.
    """

    a: dict[str, Any]
    b: dict[str, Any]
    settings: Settings
    metrics: list[dict[str, Any]]
    ranges: list[dict[str, Any]]
    links: list[dict[str, Any]]
    notes: list[str]
    steps_a: pd.DataFrame = field(repr=False)
    steps_b: pd.DataFrame = field(repr=False)
    breakdown: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``diff.json``; ``--format json``)."""
        return {
            "tool": "nsysparse",
            "tool_version": __version__,
            "a": self.a,
            "b": self.b,
            "settings": self.settings.to_dict(),
            "bootstrap": {"resamples": RESAMPLES, "confidence": CONFIDENCE, "seed": SEED,
                          "unit": "non-warm-up steps (links: copies)"},
            "metrics": self.metrics,
            "breakdown": self.breakdown,
            "ranges": self.ranges,
            "links": self.links,
            "notes": self.notes,
        }


# ---------------------------------------------------------------- bootstrap


def resample(rng: np.random.Generator, n: int, stat: Callable[[np.ndarray], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``stat`` of every resample of ``n`` units: the index matrix (RESAMPLES x n)
    is drawn from ``rng`` in one pass, handed to ``stat`` in blocks of rows so
    that memory stays bounded for a link with a million copies (the blocks are
    the rows of the one matrix: same numbers as a single draw), and the
    per-resample results are stacked. Nothing is drawn when ``n`` is 0."""
    if n == 0:
        return {}
    rows = max(1, MAX_CELLS // n)
    parts = [stat(rng.integers(0, n, size=(min(rows, RESAMPLES - r0), n))) for r0 in range(0, RESAMPLES, rows)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def draw_counts(idx: np.ndarray, n: int) -> np.ndarray:
    """How often each unit was drawn in each resample (resamples x n), so that the
    sums of a per-unit column ``x`` over every resample are ``counts @ x``."""
    r = idx.shape[0]
    flat = (idx + n * np.arange(r)[:, None]).ravel()
    return np.bincount(flat, minlength=r * n).reshape(r, n).astype(np.float64)


def interval(delta_samples: np.ndarray) -> tuple[float | None, float | None]:
    """The percentile interval (CONFIDENCE) of resampled deltas; resamples where
    the metric is undefined (a zero denominator) are left out."""
    d = delta_samples[np.isfinite(delta_samples)]
    if d.size == 0:
        return None, None
    lo, hi = np.percentile(d, PERCENTILES)
    return float(lo), float(hi)


def verdict(ci_low: float | None, ci_high: float | None) -> str:
    """"changed" when the interval excludes 0, else "within noise"."""
    if ci_low is None or ci_high is None:
        return NOISE
    return CHANGED if ci_low > 0 or ci_high < 0 else NOISE


def _row(name: str, unit: str, a: float | None, b: float | None, ci: tuple[float | None, float | None],
         n_a: int, n_b: int, **extra: Any) -> dict[str, Any]:
    a, b = jsonable(a), jsonable(b)
    if a is None and b is None:
        v = NOISE
    elif a is None:
        v = ONLY_B
    elif b is None:
        v = ONLY_A
    else:
        v = verdict(*ci)
    both = a is not None and b is not None
    return {
        "name": name, "a": a, "b": b, "delta": b - a if both else None,
        "ci_low": jsonable(ci[0]) if both else None, "ci_high": jsonable(ci[1]) if both else None,
        "verdict": v, "unit": unit, "n_a": int(n_a), "n_b": int(n_b), **extra,
    }


# ---------------------------------------------------------------- per-unit data


def busy_shares(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Each interval's share of the union: time it runs alone counts fully, time
    shared by k intervals counts 1/k to each. The shares sum to |union|."""
    s, e = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
    if s.size == 0:
        return np.zeros(0)
    e = np.maximum(e, s)
    bounds = iv.distinct(np.concatenate([s, e]))
    si, ei = np.searchsorted(bounds, s), np.searchsorted(bounds, e)
    depth = np.cumsum(np.bincount(si, minlength=bounds.size) - np.bincount(ei, minlength=bounds.size))[:-1]
    per_seg = np.where(depth > 0, np.diff(bounds) / np.maximum(depth, 1), 0.0)
    cum = np.concatenate([[0.0], np.cumsum(per_seg)])
    return cum[ei] - cum[si]


@dataclass
class _Run:
    """What the bootstrap needs from one run."""

    live: pd.DataFrame            # measured steps with STEP_SUM_COLUMNS
    range_sum: np.ndarray         # live steps x names: Σ CPU duration of instances starting in the step
    range_cnt: np.ndarray         # live steps x names: instance count
    range_names: list[str]
    range_mean_all: dict[str, float]  # whole-trace mean CPU duration per name
    copies: pd.DataFrame          # link, bytes, share_ns
    link_gbps: dict[str, float]   # effective GB/s of each link (the report's)
    cats: np.ndarray | None = None  # live steps x CATEGORIES: exclusive ns (None without a breakdown)


def _run_data(report: Report) -> _Run:
    st = report.tables["steps"].reset_index(drop=True)
    live_mask = ~st["warmup"].to_numpy(dtype=bool)
    live = st[live_mask].reset_index(drop=True)

    r = report.tables["nvtx_ranges"]
    names = sorted(r["name"].unique().tolist())
    pos_of_step = np.full(len(st), -1, dtype=np.int64)
    pos_of_step[np.flatnonzero(live_mask)] = np.arange(live_mask.sum())
    step_of = assign_to_steps(st, r["start_ns"].to_numpy(), r["pid"].to_numpy())
    step_row = pd.Index(st["step"].to_numpy()).get_indexer(step_of)  # -1 stays -1
    pos = np.where(step_row >= 0, pos_of_step[np.clip(step_row, 0, None)], -1)
    code = pd.Index(names).get_indexer(r["name"].to_numpy())
    sel = pos >= 0
    shape = (len(live), len(names))
    flat = pos[sel] * len(names) + code[sel]
    size = shape[0] * shape[1]
    range_sum = np.bincount(flat, weights=r["dur_ns"].to_numpy(dtype=np.float64)[sel], minlength=size).reshape(shape)
    range_cnt = np.bincount(flat, minlength=size).reshape(shape).astype(np.float64)
    mean_all = r.groupby("name")["dur_ns"].mean().to_dict() if len(r) else {}

    copies = report.tables["copies"]
    share = np.zeros(len(copies))
    for _, rows in copies.groupby("link", sort=False).indices.items():  # one pass per link
        share[rows] = busy_shares(copies["start_ns"].to_numpy()[rows], copies["end_ns"].to_numpy()[rows])
    copies = pd.DataFrame({"link": copies["link"].to_numpy(), "bytes": copies["bytes"].to_numpy(dtype=np.float64),
                           "share_ns": share})
    links = report.tables["links"]
    gbps = dict(zip(links["link"], links["gbps_effective"]))
    cats = None
    if "breakdown" in report.tables:
        wide = breakdown_wide(report.tables["breakdown"]).reindex(live["step"]).fillna(0)
        cats = wide[list(CATEGORIES)].to_numpy(dtype=np.float64)
    return _Run(live, range_sum, range_cnt, names, mean_all, copies, gbps, cats)


# ---------------------------------------------------------------- the three tables


def _step_stat(run: _Run) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """Per resample of measured steps: every summary metric (``metric:<name>``)
    and every range name's mean CPU duration (``ranges``, resamples x names)."""
    cols = np.column_stack([run.live[c].to_numpy(dtype=np.float64) for c in STEP_SUM_COLUMNS])
    dur_ms = run.live["dur_ns"].to_numpy(dtype=np.float64) / 1e6
    n = len(run.live)

    def stat(idx: np.ndarray) -> dict[str, np.ndarray]:
        w = draw_counts(idx, n)
        sums = dict(zip(STEP_SUM_COLUMNS, (w @ cols).T))
        with np.errstate(invalid="ignore", divide="ignore"):
            out = {f"metric:{name}": m.fn(sums, dur_ms[idx], n) for name, m in METRICS.items()}
            out["ranges"] = (w @ run.range_sum) / (w @ run.range_cnt)
            if run.cats is not None:
                out["breakdown"] = (w @ run.cats) / n / 1e6
        return out

    return stat


def _metric_rows(report_a: Report, report_b: Report, A: _Run, B: _Run,
                 boot: tuple[dict[str, np.ndarray], dict[str, np.ndarray]]) -> list[dict[str, Any]]:
    enough = len(A.live) >= 2 and len(B.live) >= 2
    rows = []
    for name, m in METRICS.items():
        unit = m.unit
        a, b = report_a.summary.get(name), report_b.summary.get(name)
        ci: tuple[float | None, float | None] = (None, None)
        if a is not None and b is not None and enough:
            ci = interval(boot[1][f"metric:{name}"] - boot[0][f"metric:{name}"])
        rows.append(_row(name, unit, a, b, ci, len(A.live), len(B.live)))
    return rows


def _breakdown_rows(A: _Run, B: _Run, boot: tuple[dict[str, np.ndarray], dict[str, np.ndarray]]) -> list[dict[str, Any]]:
    """Each breakdown category's mean ms per measured step, A against B, resampled
    by steps like the summary metrics (categories that are zero in both left out)."""
    if A.cats is None or B.cats is None:
        return []
    enough = len(A.live) >= 2 and len(B.live) >= 2
    a = A.cats.sum(axis=0) / max(len(A.live), 1) / 1e6
    b = B.cats.sum(axis=0) / max(len(B.live), 1) / 1e6
    rows = []
    for i, name in enumerate(CATEGORIES):
        if a[i] == 0 and b[i] == 0:
            continue
        ci = interval(boot[1]["breakdown"][:, i] - boot[0]["breakdown"][:, i]) if enough else (None, None)
        rows.append(_row(name, "ms", float(a[i]) if len(A.live) else None, float(b[i]) if len(B.live) else None,
                         ci, len(A.live), len(B.live)))
    return rows


def _range_rows(A: _Run, B: _Run, boot: tuple[dict[str, np.ndarray], dict[str, np.ndarray]]) -> list[dict[str, Any]]:
    measured = []
    for run, bt in ((A, boot[0]), (B, boot[1])):
        tot, cnt = run.range_sum.sum(axis=0), run.range_cnt.sum(axis=0)
        measured.append({n: (tot[i] / cnt[i], bt["ranges"][:, i] if bt else None)
                         for i, n in enumerate(run.range_names) if cnt[i] > 0})
    enough = len(A.live) >= 2 and len(B.live) >= 2
    rows = []
    for name in sorted(set(A.range_names) | set(B.range_names)):
        ma, mb = measured[0].get(name), measured[1].get(name)
        n = (len(A.live), len(B.live))
        if ma is not None and mb is not None:
            ci = interval(mb[1] - ma[1]) if enough else (None, None)
            rows.append(_row(name, "ns", ma[0], mb[0], ci, *n, basis="measured steps"))
        elif name in A.range_mean_all and name in B.range_mean_all:
            rows.append(_row(name, "ns", A.range_mean_all[name], B.range_mean_all[name], (None, None), *n,
                             basis="whole trace"))
        else:  # in one run only
            m, run = (ma, A) if name in A.range_mean_all else (mb, B)
            value = m[0] if m is not None else run.range_mean_all[name]
            a, b = (value, None) if run is A else (None, value)
            rows.append(_row(name, "ns", a, b, (None, None), *n,
                             basis="measured steps" if m is not None else "whole trace"))
    return rows


def _link_rows(A: _Run, B: _Run, rng: np.random.Generator) -> list[dict[str, Any]]:
    rows = []
    groups_a = A.copies.groupby("link", sort=False).indices
    groups_b = B.copies.groupby("link", sort=False).indices
    for name in sorted(set(A.link_gbps) | set(B.link_gbps)):
        a, b = A.link_gbps.get(name), B.link_gbps.get(name)
        ra, rb = groups_a.get(name, np.zeros(0, np.int64)), groups_b.get(name, np.zeros(0, np.int64))
        ci: tuple[float | None, float | None] = (None, None)
        if a is not None and b is not None and ra.size >= 2 and rb.size >= 2:
            boot = []
            for run, rows_ in ((A, ra), (B, rb)):
                by, sh = run.copies["bytes"].to_numpy()[rows_], run.copies["share_ns"].to_numpy()[rows_]
                gbps = resample(rng, rows_.size, lambda ix: {"gbps": ratio(by[ix].sum(axis=1), sh[ix].sum(axis=1))})
                boot.append(gbps["gbps"])  # bytes/ns == GB/s
            ci = interval(boot[1] - boot[0])
        rows.append(_row(name, "GB/s", a, b, ci, ra.size, rb.size))
    return rows


def _side(report: Report, run: _Run, given: Path | None) -> dict[str, Any]:
    return {**report.input, "given_path": str(given or report.input["path"]), "steps": int(report.summary["steps"]), "warmup": int(report.summary["warmup"]),
            "measured_steps": len(run.live)}


def _steps_with_breakdown(report: Report) -> pd.DataFrame:
    """The steps table with one ns column per breakdown category (for the chart)."""
    st = report.tables["steps"]
    if "breakdown" not in report.tables:
        return st
    wide = breakdown_wide(report.tables["breakdown"]).reindex(st["step"]).fillna(0).astype("int64")
    return pd.concat([st.reset_index(drop=True), wide.reset_index(drop=True)], axis=1)


def diff_reports(report_a: Report, report_b: Report, given: tuple[Path, Path] | None = None) -> Diff:
    """Compare run B against run A (both built with the same settings). ``given``:
    the paths the user named (a ``.nsys-rep`` is read through a temporary export)."""
    A, B = _run_data(report_a), _run_data(report_b)
    rng = np.random.default_rng(SEED)
    # A's index matrix first, then B's, then each link's (A, B) in name order
    boot = (resample(rng, len(A.live), _step_stat(A)), resample(rng, len(B.live), _step_stat(B)))
    notes = []
    for side, run in (("A", A), ("B", B)):
        if len(run.live) < 2:
            notes.append(f"{side} has {len(run.live)} measured step(s): no interval for metrics and ranges, "
                         f"so their verdict is {NOISE!r} (not evidence of no change)")
    return Diff(
        a=_side(report_a, A, given and given[0]), b=_side(report_b, B, given and given[1]), settings=report_a.settings,
        metrics=_metric_rows(report_a, report_b, A, B, boot),
        ranges=_range_rows(A, B, boot),
        breakdown=_breakdown_rows(A, B, boot),
        links=_link_rows(A, B, rng),
        notes=notes,
        steps_a=_steps_with_breakdown(report_a), steps_b=_steps_with_breakdown(report_b),
    )


# ---------------------------------------------------------------- regressions

DEFAULT_THRESHOLD_PCT = 5.0
# Headline figures a CI gate watches, and which way is worse.
HIGHER_IS_WORSE = ("step_ms_p50", "step_ms_p95", "step_ms_mean")


def regressions(d: Diff, threshold_pct: float = DEFAULT_THRESHOLD_PCT) -> list[dict[str, Any]]:
    """The headline figures of B that are worse than A's by more than
    ``threshold_pct`` percent with a bootstrap interval that excludes zero:
    step time (p50, p95, mean: relative to A's value), each breakdown
    category's ms per step (relative to A's mean step, so a cause that grows
    from nothing counts and a tiny one does not), each link's effective GB/s
    (lower is worse, relative to A's). Each row is the diff row plus
    ``change_pct`` (signed) and ``section``."""
    mean_a = next((r["a"] for r in d.metrics if r["name"] == "step_ms_mean"), None)
    rows = [("metrics", r, +1, r["a"]) for r in d.metrics if r["name"] in HIGHER_IS_WORSE]
    rows += [("breakdown", r, +1, mean_a) for r in d.breakdown]
    rows += [("links", r, -1, r["a"]) for r in d.links]
    out = []
    for section, r, worse, base in rows:
        if r["verdict"] != CHANGED or r["a"] is None or r["b"] is None or not base:
            continue
        change = 100.0 * r["delta"] / abs(base)
        if worse * change > threshold_pct:
            out.append({**r, "section": section, "change_pct": change})
    return out
