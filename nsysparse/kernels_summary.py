"""Per-kernel summary: where the GPU's compute time goes, kernel by kernel.

A plain function of two normalised tables (``Trace.kernels`` and the steps
table), like every analysis: it draws and writes nothing. Its counts,
totals, minima, maxima and medians equal ``nsys stats --report
cuda_gpu_kern_sum`` on the same trace; its means and standard deviations
agree to the 0.1 ns that report prints.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .steps import assign_to_steps

COLUMNS = ("name", "short_name", "launches", "total_ns", "per_step_ns", "mean_ns", "min_ns", "max_ns",
           "p50_ns", "p95_ns", "stddev_ns", "share")
NAME_WIDTH = 60


UNNAMED = "(unnamed)"  # a kernel whose name the export does not hold (StringIds missing or trimmed)


def kernel_summary(kernels: pd.DataFrame, steps: pd.DataFrame) -> pd.DataFrame:
    """One row per kernel ``name`` (demangled, as nsys's kernel summary keys it),
    largest ``total_ns`` first (ties by name).

    - ``name``, ``short_name`` (the first launch's short name)
    - ``launches``: kernel executions (nsys: Instances)
    - ``total_ns``: sum of their GPU durations, ns (nsys: Total Time)
    - ``per_step_ns``: duration of its executions that start inside a
      non-warm-up step (the step whose window holds the GPU start, as copies
      are assigned: :func:`nsysparse.steps.assign_to_steps`), divided by the
      number of non-warm-up steps; null when there are none
    - ``mean_ns``, ``min_ns``, ``max_ns``, ``p50_ns`` (median), ``p95_ns``
      (numpy's linear percentile), ``stddev_ns`` (sample, n-1; 0 for a single
      launch, as nsys prints it): of one execution's duration, ns
    - ``share``: ``total_ns`` over the total duration of all kernels, the
      kernel's share of GPU compute time (nsys: Time (%) / 100)

    ``kernels`` needs ``name``, ``short_name``, ``start_ns``, ``end_ns`` and
    ``pid``; ``steps`` needs ``step``, ``warmup``, ``pid``, ``start_ns`` and
    ``end_ns``. CUDA graph runs are not kernels here, as in nsys's report.
    """
    if kernels.empty:
        return _empty()
    # names stay categorical (a code per launch, not a string: millions of launches share a few hundred names)
    name, short = _named(kernels["name"]), _named(kernels["short_name"])
    codes, groups = np.asarray(name.codes), len(name.categories)
    start = kernels["start_ns"].to_numpy(dtype=np.int64)
    # end - start: the kernels' ``dur_ns``, made here (a spilled report's kernels hold no durations)
    dur = kernels["end_ns"].to_numpy(dtype=np.int64) - start
    measured = steps[~steps["warmup"].astype(bool)] if not steps.empty else steps
    n_steps = len(measured)
    in_step = assign_to_steps(measured, start, kernels["pid"].to_numpy()) >= 0
    # per name code, summed a stretch of launches at a time (exact: no int64 copy of the table)
    launches = np.bincount(codes, minlength=groups)
    total, step_total = grouped_sums(codes, dur, groups), grouped_sums(codes, dur, groups, where=in_step)
    del in_step
    # the sample standard deviation as pandas' groupby computes it (its order, its float rounding)
    std = pd.Series(dur, copy=False).groupby(codes, sort=True).std(ddof=1)
    # minima, maxima and quantiles from one sort of a (name code, duration) key per launch
    q = group_quantiles(codes, dur, groups, (0.0, 1.0, 0.5, 0.95))
    del dur
    seen = np.flatnonzero(launches)  # the names launched, each once
    first = first_positions(codes, groups)[seen]
    out = pd.DataFrame(
        {
            "short_name": pd.Categorical.from_codes(np.asarray(short.codes)[first], dtype=short.dtype),
            "launches": launches[seen].astype(np.int64),
            "total_ns": total[seen],
            "step_total_ns": step_total[seen],
            "min_ns": q[seen, 0].astype(np.int64),
            "max_ns": q[seen, 1].astype(np.int64),
            "p50_ns": q[seen, 2],
            "p95_ns": q[seen, 3],
            "stddev_ns": std.reindex(seen).fillna(0.0).to_numpy(),
        },
        index=pd.CategoricalIndex(pd.Categorical.from_codes(seen, dtype=name.dtype), name="name"),
    )
    out["mean_ns"] = out["total_ns"] / out["launches"]
    out["per_step_ns"] = out["step_total_ns"] / n_steps if n_steps else np.nan
    grand = int(total.sum())
    out["share"] = out["total_ns"] / grand if grand > 0 else np.nan
    out = out.rename_axis("name").reset_index()
    for col in ("name", "short_name"):  # text as pandas infers it from strings (``str`` in pandas 3)
        out[col] = pd.Series(out[col].to_numpy(dtype=object), index=out.index)
    out = out.sort_values(["total_ns", "name"], ascending=[False, True], ignore_index=True)
    return out[list(COLUMNS)]


SUM_ROWS = 1 << 16  # launches summed at a time (float sums of at most this many, each exact: see grouped_sums);
# half-megabyte arrays come from the heap, reused: at 1 << 20 (8 MB, mapped afresh) 2 GB took 0.93 s and 271k page
# faults, so 0.53 s and 100k


def grouped_sums(codes: np.ndarray, values: np.ndarray, groups: int, where: np.ndarray | None = None) -> np.ndarray:
    """Per group code the int64 sum of ``values`` (int64; with ``where``, of
    those where it is True), exactly: a bincount of a stretch of rows at a time,
    each stretch short enough that its float64 sums are exact integers (every
    partial sum within 2**53), added up in int64."""
    out = np.zeros(groups, np.int64)
    if values.size == 0:
        return out
    top = max(int(values.max()), -int(values.min()), 1)
    rows = max(1, min(SUM_ROWS, (1 << 53) // top // 2))
    for lo in range(0, values.size, rows):
        v = values[lo:lo + rows]
        if where is not None:
            v = np.where(where[lo:lo + rows], v, 0)
        out += np.bincount(codes[lo:lo + rows], weights=v, minlength=groups).astype(np.int64)
    return out


def first_positions(codes: np.ndarray, groups: int) -> np.ndarray:
    """Per group code the position of its first row (-1: none), a stretch at a time."""
    out = np.full(groups, -1, np.int64)
    for lo in range(0, codes.size, SUM_ROWS):
        part = codes[lo:lo + SUM_ROWS]
        fresh = out[part] < 0
        if fresh.any():
            values, at = np.unique(part[fresh], return_index=True)
            out[values] = lo + np.flatnonzero(fresh)[at]
    return out


_VALUE_BITS = 47  # a group code and a value below 2**47 (39 hours in ns) share one int64 sort key


def group_quantiles(codes: np.ndarray, values: np.ndarray, groups: int, qs: tuple[float, ...]) -> np.ndarray:
    """Per group code (``0 <= code < groups``) the ``qs`` quantiles of its ``values``
    (non-negative int64), linear between neighbours, as pandas' groupby quantile
    computes them (``val + (next - val) * frac``): a ``groups`` x ``len(qs)`` array,
    NaN for a group without values. One sort of a key per value (the code in the
    high bits), in place, where pandas sorts the values and keeps an indexer."""
    values = np.asarray(values, dtype=np.int64)
    counts = np.bincount(codes, minlength=groups)
    if values.size and int(values.max()) < (1 << _VALUE_BITS) and groups < (1 << (63 - _VALUE_BITS)):
        key = np.asarray(codes).astype(np.int64)  # a copy, shifted and joined in place
        key <<= _VALUE_BITS
        key |= values
        key.sort()
        key &= (1 << _VALUE_BITS) - 1
        ordered = key
    else:  # values too large to share a key: sort by both
        codes = np.asarray(codes, dtype=np.int64)
        ordered = values[np.lexsort((values, codes))]
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = np.full((groups, len(qs)), np.nan)
    has = counts > 0
    for j, q in enumerate(qs):
        pos = q * (counts[has] - 1).astype(np.float64)
        at = first[has] + pos.astype(np.int64)  # truncated, as pandas casts
        frac = pos % 1
        val = ordered[at]
        nxt = ordered[np.minimum(at + 1, ordered.size - 1)]
        out[has, j] = np.where(frac == 0.0, val.astype(np.float64), val + (nxt - val) * frac)
    return out


def _named(names: pd.Series) -> pd.Categorical:
    """``names`` as a Categorical of plain strings, a missing name as UNNAMED."""
    c = pd.Categorical(names)
    cats = pd.Index(c.categories.to_numpy(dtype=object), dtype=object)
    codes = np.asarray(c.codes)
    if (codes < 0).any():
        if UNNAMED not in cats:
            cats = cats.append(pd.Index([UNNAMED], dtype=object))
        codes = np.where(codes < 0, cats.get_loc(UNNAMED), codes)
    return pd.Categorical.from_codes(codes, categories=cats)


def _empty() -> pd.DataFrame:
    types = {"name": object, "short_name": object, "launches": np.int64, "total_ns": np.int64,
             "min_ns": np.int64, "max_ns": np.int64}
    return pd.DataFrame({c: pd.Series(dtype=types.get(c, np.float64)) for c in COLUMNS})


_QUALIFIER = re.compile(r"(?:\(anonymous namespace\)|[A-Za-z_]\w*)::")
_CAST = re.compile(r"\((?:int|unsigned int|long|bool|char)\)")


def short_kernel_name(name: str, width: int = NAME_WIDTH) -> str:
    """``name`` readable in a column: no leading ``void ``, no namespace
    qualifiers (``at::native::``), no ``(int)`` casts on template arguments, then
    cut to ``width`` characters (``...`` marks a cut). Template arguments stay:
    they are what tell the many ``elementwise_kernel`` instances apart."""
    name = _CAST.sub("", _QUALIFIER.sub("", name.removeprefix("void ")))
    return name if len(name) <= width else name[: width - 3] + "..."


def kernel_summary_lines(df: pd.DataFrame, k: int = 10) -> list[str]:
    """The top ``k`` rows of :func:`kernel_summary` as aligned text for the terminal
    report: a header, then name (shortened to 60 characters), launches, total ms,
    per-step ms, mean/p50/p95 µs and share; ``-`` where a value is null. No rows: []."""
    if df.empty:
        return []
    top = df.head(k)

    def num(values: pd.Series, scale: float, fmt: str) -> list[str]:
        return ["-" if pd.isna(v) else fmt.format(v / scale) for v in values]

    cols = [
        [short_kernel_name(n) for n in top["name"]],
        [str(int(n)) for n in top["launches"]],
        num(top["total_ns"], 1e6, "{:.3f}"),
        num(top["per_step_ns"], 1e6, "{:.3f}"),
        num(top["mean_ns"], 1e3, "{:.1f}"),
        num(top["p50_ns"], 1e3, "{:.1f}"),
        num(top["p95_ns"], 1e3, "{:.1f}"),
        num(top["share"], 0.01, "{:.1f}%"),
    ]
    header = ["kernel", "launches", "total ms", "per step ms", "mean µs", "p50 µs", "p95 µs", "share"]
    widths = [max(len(h), *(len(c) for c in col)) for h, col in zip(header, cols)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(header), *(line(list(row)) for row in zip(*cols))]
