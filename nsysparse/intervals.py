"""Interval algebra on int64 nanosecond arrays, vectorised with numpy.

An interval set is a pair of arrays ``(starts, ends)``; half-open ``[s, e)``.
Functions accept unsorted, overlapping input and return a *normalised* set:
sorted, disjoint, non-empty intervals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import pandas as pd

I64 = npt.NDArray[np.int64]


def _as_i64(a: npt.ArrayLike) -> I64:
    return np.asarray(a, dtype=np.int64).reshape(-1)


def distinct(values: npt.ArrayLike) -> I64:
    """The sorted distinct values of an int64 array, by sort: numpy 2.4's
    ``np.unique`` hashes first and is 15x slower on millions of timestamps."""
    v = np.sort(_as_i64(values), kind="stable")
    if v.size == 0:
        return v
    return v[np.r_[True, v[1:] != v[:-1]]]


def ascending(a: np.ndarray) -> bool:
    """Whether ``a`` is in ascending order (ties allowed): the loaded tables come
    sorted by start, and a sort is skipped where this holds."""
    return a.size < 2 or bool((a[1:] >= a[:-1]).all())


def union(starts: npt.ArrayLike, ends: npt.ArrayLike) -> tuple[I64, I64]:
    """Merge intervals into a sorted, disjoint set (touching intervals merge)."""
    s, e = _as_i64(starts), _as_i64(ends)
    keep = e > s
    s, e = s[keep], e[keep]
    if s.size == 0:
        return s, e
    if not ascending(s):
        order = np.argsort(s, kind="stable")
        s, e = s[order], e[order]
    run_end = np.maximum.accumulate(e)
    # a new merged interval begins where the start passes every earlier end
    new = np.empty(s.size, dtype=bool)
    new[0] = True
    new[1:] = s[1:] > run_end[:-1]
    first = np.flatnonzero(new)
    last = np.r_[first[1:] - 1, s.size - 1]
    return s[first], run_end[last]


def total(starts: npt.ArrayLike, ends: npt.ArrayLike) -> int:
    """Length of the union of the intervals, in the input's unit."""
    s, e = union(starts, ends)
    return int((e - s).sum())


def clip(starts: npt.ArrayLike, ends: npt.ArrayLike, lo: int, hi: int) -> tuple[I64, I64]:
    """Intervals cut to the window ``[lo, hi)``; empty pieces dropped (not merged)."""
    s = np.clip(_as_i64(starts), lo, hi)
    e = np.clip(_as_i64(ends), lo, hi)
    keep = e > s
    return s[keep], e[keep]


def intersect(a: tuple[I64, I64], b: tuple[I64, I64]) -> tuple[I64, I64]:
    """Intersection of two interval sets (each normalised first)."""
    a_s, a_e = union(*a)
    b_s, b_e = union(*b)
    if a_s.size == 0 or b_s.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    # sweep: +1 at each start, -1 at each end of both sets; depth 2 is inside both
    pts = np.concatenate([a_s, a_e, b_s, b_e])
    delta = np.concatenate([np.ones(a_s.size), -np.ones(a_e.size), np.ones(b_s.size), -np.ones(b_e.size)])
    order = np.lexsort((delta, pts))  # ends before starts at a tie: half-open
    pts, delta = pts[order], delta[order]
    depth = np.cumsum(delta)
    inside = depth == 2
    starts = pts[:-1][inside[:-1]]
    ends = pts[1:][inside[:-1]]
    return union(starts, ends)


def clipped_union_per_window(
    starts: npt.ArrayLike,
    ends: npt.ArrayLike,
    win_starts: npt.ArrayLike,
    win_ends: npt.ArrayLike,
) -> I64:
    """For each window ``[ws, we)``, the length of (union of intervals) ∩ window.

    Vectorised: the union is built once, then each window's covered length is a
    difference of a cumulative-coverage function evaluated at its two edges.
    """
    us, ue = union(starts, ends)
    ws, we = _as_i64(win_starts), _as_i64(win_ends)
    return covered_before(us, ue, we) - covered_before(us, ue, ws)


def covered_before(us: I64, ue: I64, t: npt.ArrayLike) -> I64:
    """For each time in ``t``, how much of the normalised set ``(us, ue)`` lies before it."""
    t = _as_i64(t)
    if us.size == 0:
        return np.zeros(t.size, dtype=np.int64)
    cum = np.concatenate([[0], np.cumsum(ue - us)])
    # index of the last interval starting at or before t
    i = np.searchsorted(us, t, side="right") - 1
    ic = np.clip(i, 0, None)
    partial = np.where(i >= 0, np.minimum(t, ue[ic]) - us[ic], 0)
    return np.where(i >= 0, cum[ic] + partial, 0).astype(np.int64)


def clipped_union_by_thread(
    intervals: pd.DataFrame,
    windows: pd.DataFrame,
    keys: tuple[str, ...] = ("pid", "tid"),
    shared: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
) -> I64:
    """For each window row, |union of the intervals with the same ``keys``, clipped to it|.

    ``intervals`` has ``start_ns``/``end_ns`` and the key columns; ``windows`` has
    ``start_ns``/``end_ns`` and the key columns. ``shared`` (starts, ends) joins
    every key's union (the GPU's kernels, whoever waits on them). Loops run over
    distinct keys (threads), never over rows.
    """
    out = np.zeros(len(windows), dtype=np.int64)
    extra_s, extra_e = (_as_i64(shared[0]), _as_i64(shared[1])) if shared is not None else (None, None)
    if len(windows) == 0 or (len(intervals) == 0 and not (extra_s is not None and extra_s.size)):
        return out
    k = list(keys)
    cols = [intervals[c].to_numpy() for c in k]
    starts, ends = intervals["start_ns"].to_numpy(np.int64), intervals["end_ns"].to_numpy(np.int64)
    w = windows.reset_index(drop=True)
    for key, rows in w.groupby(k, sort=False).indices.items():  # the windows' few threads
        key = key if isinstance(key, tuple) else (key,)
        mine = np.ones(len(intervals), dtype=bool)
        for col, v in zip(cols, key):
            mine &= col == v
        s, e = starts[mine], ends[mine]
        if extra_s is not None:
            s, e = np.concatenate([extra_s, s]), np.concatenate([extra_e, e])
        if s.size == 0:
            continue
        out[rows] = clipped_union_per_window(s, e, w["start_ns"].to_numpy()[rows], w["end_ns"].to_numpy()[rows])
    return out


INT64_MAX = int(np.iinfo(np.int64).max)
_SATURATE = 2.0 ** 62  # a float sum this large may not fit int64 once exact


def saturating_sums(group: npt.ArrayLike, values: npt.ArrayLike, n_groups: int) -> I64:
    """For integer group codes ``0..n_groups-1``, the exact int64 sum of each
    group's ``values``; a sum that would pass int64 (byte counts of a corrupt
    export) saturates at INT64_MAX instead of wrapping negative or losing digits
    to float weights (exact only below 2**53)."""
    g = np.asarray(group, dtype=np.int64).reshape(-1)
    v = _as_i64(values)
    out = np.zeros(n_groups, dtype=np.int64)
    if v.size == 0:
        return out
    approx = np.bincount(g, weights=v.astype(np.float64), minlength=n_groups)
    safe = approx < _SATURATE
    keep = safe[g]
    np.add.at(out, g[keep], v[keep])
    out[~safe] = INT64_MAX
    return out


def grouped_total(group: npt.ArrayLike, starts: npt.ArrayLike, ends: npt.ArrayLike, n_groups: int) -> I64:
    """For integer group codes ``0..n_groups-1``, the length of the union of each
    group's intervals: one sort and a per-group running maximum, no loop over groups."""
    g = np.asarray(group, dtype=np.int64)
    out = np.zeros(n_groups, dtype=np.int64)
    if g.size == 0:
        return out
    s, e = _as_i64(starts), _as_i64(ends)
    order = np.lexsort((s, g))
    g, s, e = g[order], s[order], e[order]
    first = np.r_[True, g[1:] != g[:-1]]
    # running max of ends that restarts at each group: offset each group's run
    # by its start index via maximum.accumulate on (group, end) pairs
    run_end = _grouped_cummax(g, e, first)
    prev = np.where(first, np.iinfo(np.int64).min, np.r_[0, run_end[:-1]])
    gained = np.clip(e - np.maximum(s, prev), 0, None)
    np.add.at(out, g, gained)
    return out


def _grouped_cummax(g: I64, v: I64, first: npt.NDArray[np.bool_]) -> I64:
    """Cumulative maximum of ``v`` restarting where ``first`` is set (``g`` sorted)."""
    # lift each group above every earlier one so one global accumulate never crosses groups
    lo = v.min()
    span = int(v.max()) - int(lo) + 1
    gid = np.cumsum(first) - 1
    if span * (int(gid[-1]) + 1) < np.iinfo(np.int64).max // 2:
        lifted = (v - lo) + gid * span
        return np.maximum.accumulate(lifted) - gid * span + lo
    import pandas as pd  # huge spans: let pandas do it per group

    return pd.Series(v).groupby(g).cummax().to_numpy()
