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
    if not keep.all():
        s, e = s[keep], e[keep]
    del keep
    if s.size == 0:
        return s, e
    if not ascending(s):
        order = np.argsort(s, kind="stable")
        s, e = s[order], e[order]
        del order
    run_end = np.maximum.accumulate(e)
    # a new merged interval begins where the start passes every earlier end
    new = np.empty(s.size, dtype=bool)
    new[0] = True
    np.greater(s[1:], run_end[:-1], out=new[1:])
    if new.all():  # nothing merges (kernels one after another): the input is the set (run_end == e)
        return s, e
    first = np.flatnonzero(new)
    del new
    last = np.empty_like(first)
    last[:-1] = first[1:] - 1
    last[-1] = s.size - 1
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
    if a_s.size > b_s.size:
        a_s, a_e, b_s, b_e = b_s, b_e, a_s, a_e
    # each interval of the smaller set against the run of the other's it overlaps
    # (both sorted and disjoint: a run found by two binary searches); the pieces
    # come out sorted and disjoint, at most |a| + |b| of them
    lo = np.searchsorted(b_e, a_s, side="right")  # the first b ending after a starts
    hi = np.searchsorted(b_s, a_e, side="left")  # past the last b starting before a ends
    count = np.clip(hi - lo, 0, None)
    ai = np.repeat(np.arange(a_s.size), count)
    bi = np.arange(ai.size) - np.repeat(np.cumsum(count) - count - lo, count)
    s = np.maximum(a_s[ai], b_s[bi])
    e = np.minimum(a_e[ai], b_e[bi])
    return union(s, e)


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
    if us.size == 0:
        return np.zeros(ws.size, dtype=np.int64)
    cum = cumulative(us, ue)  # once for both edges
    return covered_before(us, ue, we, cum) - covered_before(us, ue, ws, cum)


def cumulative(us: I64, ue: I64) -> I64:
    """``cum[i]``: the length of the first ``i`` intervals of a normalised set."""
    cum = np.empty(us.size + 1, dtype=np.int64)
    cum[0] = 0
    np.cumsum(ue - us, out=cum[1:])
    return cum


def covered_before(us: I64, ue: I64, t: npt.ArrayLike, cum: I64 | None = None) -> I64:
    """For each time in ``t``, how much of the normalised set ``(us, ue)`` lies
    before it (``cum``: its :func:`cumulative`, when the caller has it)."""
    t = _as_i64(t)
    if us.size == 0:
        return np.zeros(t.size, dtype=np.int64)
    if cum is None:
        cum = cumulative(us, ue)
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
    if extra_s is not None and extra_s.size and not ascending(extra_s):
        order = np.argsort(extra_s, kind="stable")
        extra_s, extra_e = extra_s[order], extra_e[order]
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
        if extra_s is not None:  # the thread's few intervals put in place among the shared ones: no sort of millions
            order = np.argsort(s, kind="stable")
            s, e = s[order], e[order]
            at = np.searchsorted(extra_s, s, side="right")
            s, e = np.insert(extra_s, at, s), np.insert(extra_e, at, e)
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
    first = np.r_[True, g[1:] != g[:-1]]
    # no sort where the intervals come grouped and in start order within each group
    # (the projection's ops of a range, in launch order, mostly do)
    if not (bool((g[1:] >= g[:-1]).all()) and bool(((s[1:] >= s[:-1]) | first[1:]).all())):
        order = np.lexsort((s, g))
        g, s, e = g[order], s[order], e[order]
        first = np.r_[True, g[1:] != g[:-1]]
    # running max of ends that restarts at each group: offset each group's run
    # by its start index via maximum.accumulate on (group, end) pairs
    run_end = _grouped_cummax(g, e, first)
    prev = np.where(first, np.iinfo(np.int64).min, np.r_[0, run_end[:-1]])
    gained = np.clip(e - np.maximum(s, prev), 0, None)
    runs = np.flatnonzero(first)  # each group is one contiguous run now
    out[g[runs]] = np.add.reduceat(gained, runs)
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
