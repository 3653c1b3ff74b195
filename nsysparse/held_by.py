"""What held each wait: for every wait of a step's thread, the activity on
another thread or on the GPU whose end released it.

The waits are the union of the step thread's wait ranges, clipped to the step
(engines nest a C++ barrier inside a Python one: one wait, not two). For a
wait ``[ws, we)`` the candidates are the activities of the same process on
other threads, or on the GPU, that end inside ``(ws, we + TOLERANCE_NS]``: a
thread that signals the waiter often closes its range a few microseconds after
the signal, so an end just past the wait's end still released it.

- NVTX ranges come first: they are the engine's own names for its work (the
  fetch thread's ``disk_to_cpu``, ``cpu_to_gpu``). Ranges that are waits
  themselves are passed over, for they only relay what they waited on: a wait
  range (``--wait``) or a range at least half spent inside synchronising calls
  (a ``cuda_stream_sync`` range around ``cudaStreamSynchronize``). The holder
  is the range that ended last; when it encloses other ranges
  (``task_execute`` around ``disk_to_cpu`` and ``cpu_to_gpu``), the enclosed
  range that overlapped the wait most is named instead, down to a leaf.
- Without a range, the GPU op (kernel, copy, memset, graph run) that ended
  last; then the CUDA API call on another thread that ended last.
- With none, the holder is ``(none)``.

``held_by_table`` sums the waits per step and holder: per step, its ``ns``
add up to the step's wait time (``steps.wait_ns``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import intervals as iv
from .row_windows import RowWindows, api_call_rows

TOLERANCE_NS = 20_000
NONE = "(none)"
WAIT_COLUMNS = ["step", "wait_start_ns", "wait_end_ns", "ns", "holder", "holder_kind", "tid"]
HELD_BY_COLUMNS = ["step", "holder", "tid", "ns"]


def step_waits(steps: pd.DataFrame, waits: pd.DataFrame) -> pd.DataFrame:
    """The waits of each step: the union of the step thread's wait ranges, cut
    to the step: ``step``, ``pid``, ``tid``, ``wait_start_ns``, ``wait_end_ns``."""
    parts = []
    for (pid, tid), st in steps.groupby(["pid", "tid"], sort=False):  # one pass per step thread
        w = waits[(waits["pid"].to_numpy() == pid) & (waits["tid"].to_numpy() == tid)]
        if w.empty:
            continue
        us, ue = iv.union(w["start_ns"].to_numpy(), w["end_ns"].to_numpy())
        st = st.sort_values("start_ns")
        ss, se = st["start_ns"].to_numpy(np.int64), st["end_ns"].to_numpy(np.int64)
        # each merged wait against the steps it overlaps (a wait across a step edge splits)
        first = np.searchsorted(se, us, side="right")
        last = np.searchsorted(ss, ue, side="left")
        count = np.clip(last - first, 0, None)
        wi = np.repeat(np.arange(us.size), count)
        si = np.repeat(first, count) + (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count))
        a, b = np.maximum(us[wi], ss[si]), np.minimum(ue[wi], se[si])
        keep = b > a
        parts.append(pd.DataFrame({"step": st["step"].to_numpy()[si[keep]], "pid": pid, "tid": tid,
                                   "wait_start_ns": a[keep], "wait_end_ns": b[keep]}))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="int64") for c in ("step", "pid", "tid", "wait_start_ns", "wait_end_ns")})
    return pd.concat(parts, ignore_index=True)


def _latest_ending(cand: pd.DataFrame, w: pd.DataFrame, tol: int) -> np.ndarray:
    """For each wait row of ``w``, the row of ``cand`` (sorted by end_ns) with the
    latest end in ``(wait_start, wait_end + tol]``, or -1."""
    return _latest_ending_of(cand["end_ns"].to_numpy(np.int64), w, tol)


def _latest_ending_of(ends: np.ndarray, w: pd.DataFrame, tol: int) -> np.ndarray:
    """:func:`_latest_ending` on the candidates' sorted ends."""
    if ends.size == 0 or w.empty:
        return np.full(len(w), -1, dtype=np.int64)
    i = np.searchsorted(ends, w["wait_end_ns"].to_numpy(np.int64) + tol, side="right") - 1
    ok = (i >= 0) & (ends[np.clip(i, 0, None)] > w["wait_start_ns"].to_numpy(np.int64))
    return np.where(ok, i, -1)


def relaying_ranges(ranges: pd.DataFrame, waits: pd.DataFrame, sync_calls: pd.DataFrame) -> np.ndarray:
    """``range_id`` of the ranges that only relay a wait: the wait ranges, and the
    ranges at least half covered by synchronising calls on their own thread."""
    ids = set(waits["range_id"].tolist()) if "range_id" in waits else set()
    if len(sync_calls) and len(ranges):
        covered = iv.clipped_union_by_thread(sync_calls, ranges.reset_index(drop=True))
        dur = ranges["dur_ns"].to_numpy()
        ids |= set(ranges["range_id"].to_numpy()[(dur > 0) & (2 * covered >= dur)].tolist())
    return np.array(sorted(ids), dtype=np.int64)


def wait_holders(
    steps: pd.DataFrame,
    waits: pd.DataFrame,
    ranges: pd.DataFrame,
    gpu_ops: pd.DataFrame | list[pd.DataFrame],
    api_calls: pd.DataFrame | RowWindows,
    sync_calls: pd.DataFrame | None = None,
    tol_ns: int = TOLERANCE_NS,
) -> pd.DataFrame:
    """One row per wait (WAIT_COLUMNS): the step, the wait's span and length
    ``ns``, ``holder`` (a range's text, a GPU op's name, an API call's name, or
    ``(none)``), ``holder_kind`` (``range``, ``gpu``, ``call``, ``none``) and the
    holder's ``tid`` (null for a GPU op or none). ``ranges`` is the NVTX range
    table (``range_id``, ``parent``, text, times, pid, tid); ``gpu_ops`` has
    ``pid``, ``end_ns``, ``name`` (or is a list of such frames: the GPU ops of
    each table, never joined into one); ``api_calls`` the API calls."""
    sw = step_waits(steps, waits)
    calls = api_call_rows(api_calls)
    if sync_calls is None:
        sync_calls = pd.DataFrame({c: pd.Series(dtype="int64") for c in ("pid", "tid", "start_ns", "end_ns")})
    relays = relaying_ranges(ranges, waits, sync_calls)
    # the columns read of the ranges that can hold a wait (a million ranges: no copy of the text)
    workers = ranges[["range_id", "parent", "pid", "tid", "start_ns", "end_ns"]]
    workers = workers[~workers["range_id"].isin(relays).to_numpy()]
    at = pd.Index(ranges["range_id"].to_numpy())  # range_id -> row of ``ranges``
    out = []
    for (pid, tid), w in sw.groupby(["pid", "tid"], sort=False):  # one pass per waiting thread
        w = w.reset_index(drop=True)
        holder = np.full(len(w), NONE, dtype=object)
        kind = np.full(len(w), "none", dtype=object)
        htid = pd.array([pd.NA] * len(w), dtype="Int64")
        todo = np.ones(len(w), dtype=bool)
        r = workers[(workers["pid"].to_numpy() == pid) & (workers["tid"].to_numpy() != tid)].sort_values("end_ns")
        hit = _latest_ending(r, w, tol_ns)
        if (hit >= 0).any():
            sel = hit >= 0
            rid = r["range_id"].to_numpy()[hit[sel]]
            rid = _descend(rid, w.loc[sel, "wait_start_ns"].to_numpy(), w.loc[sel, "wait_end_ns"].to_numpy(), workers)
            row = at.get_indexer(rid)
            holder[sel] = ranges["text"].iloc[row].astype(object).to_numpy()
            kind[sel] = "range"
            htid[np.flatnonzero(sel)] = ranges["tid"].to_numpy()[row]
            todo &= ~sel
        if todo.any():  # the GPU op that ended last
            names, ends = _gpu_candidates(gpu_ops if isinstance(gpu_ops, list) else [gpu_ops], pid, w[todo], tol_ns)
            hit = _latest_ending_of(ends, w, tol_ns)
            sel = todo & (hit >= 0)
            if sel.any():
                holder[sel] = names[hit[sel]]
                kind[sel] = "gpu"
                todo &= ~sel
        if todo.any():  # the API call on another thread that ended last
            ends, codes, tids = _call_candidates(calls, pid, tid, w[todo], tol_ns)
            hit = _latest_ending_of(ends, w, tol_ns)
            sel = todo & (hit >= 0)
            if sel.any():
                cats = calls.categories.get("name", pd.Index([], dtype=object))
                holder[sel] = np.asarray(pd.Categorical.from_codes(codes[hit[sel]], categories=cats), dtype=object)
                kind[sel] = "call"
                htid[np.flatnonzero(sel)] = tids[hit[sel]]
                todo &= ~sel
        out.append(pd.DataFrame({
            "step": w["step"].to_numpy(), "wait_start_ns": w["wait_start_ns"].to_numpy(),
            "wait_end_ns": w["wait_end_ns"].to_numpy(), "ns": (w["wait_end_ns"] - w["wait_start_ns"]).to_numpy(),
            "holder": holder, "holder_kind": kind, "tid": htid,
        }))
    if not out:
        return pd.DataFrame({"step": pd.Series(dtype="int64"), "wait_start_ns": pd.Series(dtype="int64"),
                             "wait_end_ns": pd.Series(dtype="int64"), "ns": pd.Series(dtype="int64"),
                             "holder": pd.Series(dtype=object), "holder_kind": pd.Series(dtype=object),
                             "tid": pd.Series(dtype="Int64")})
    return pd.concat(out, ignore_index=True)[WAIT_COLUMNS]


def _spans(w: pd.DataFrame, tol: int) -> tuple[np.ndarray, np.ndarray]:
    """The ends that can release a wait of ``w``, ``(wait_start, wait_end + tol]``, as
    a sorted disjoint set of ``[s, e)``."""
    return iv.union(w["wait_start_ns"].to_numpy(np.int64) + 1, w["wait_end_ns"].to_numpy(np.int64) + tol + 1)


def _ends_in(ends: np.ndarray, spans: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Which ``ends`` lie in ``spans`` (:func:`_spans`): the only candidates that can
    hold a wait (the others are never the latest to end in one)."""
    s, e = spans
    i = np.searchsorted(s, ends, side="right") - 1
    return (i >= 0) & (ends < e[np.clip(i, 0, None)])


CANDIDATE_ROWS = 1 << 16  # GPU ops searched at a time: half-megabyte arrays, from the heap and reused stretch
# after stretch (trace.reuse_freed_memory); 1 << 20 (8 MB, each mapped and faulted in afresh) was 2x the page faults


def _gpu_candidates(parts: list[pd.DataFrame], pid: int, w: pd.DataFrame, tol: int) -> tuple[np.ndarray, np.ndarray]:
    """The process's GPU ops (of every frame of ``parts``) that end inside a wait of
    ``w`` (or ``tol`` after it), by end (ties in the order of the parts, then of
    their rows): (their names as objects, their ends, sorted); millions of ops are
    never sorted nor copied."""
    spans = _spans(w, tol)
    names, ends = [], []
    for ops in parts:
        all_ends, pids = ops["end_ns"].to_numpy(np.int64), ops["pid"].to_numpy()
        # a stretch of ops at a time: the search's arrays are a stretch long (14M kernels: 0.35 GB otherwise)
        rows = np.concatenate([lo + np.flatnonzero((pids[lo:lo + CANDIDATE_ROWS] == pid)
                                                   & _ends_in(all_ends[lo:lo + CANDIDATE_ROWS], spans))
                               for lo in range(0, all_ends.size, CANDIDATE_ROWS)] or [np.zeros(0, np.int64)])
        ends.append(all_ends[rows])
        names.append(ops["name"].iloc[rows].astype(object).to_numpy())
    if not ends:
        return np.zeros(0, object), np.zeros(0, np.int64)
    e = np.concatenate(ends)
    order = e.argsort(kind="stable")
    return np.concatenate(names)[order], e[order]


def _call_candidates(calls: RowWindows, pid: int, tid: int, w: pd.DataFrame,
                     tol: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The API calls of process ``pid`` on threads other than ``tid`` that end inside
    a wait of ``w`` (or ``tol`` after it), by end (ties in row order): their sorted
    ends, name codes (against ``calls.categories["name"]``; -1: none) and threads.
    Read a stretch of rows at a time (from the calls' file, in a spilled report):
    only the candidates are held, a name as its code."""
    ends, codes, tids = [], [], []
    spans = _spans(w, tol)
    for part in calls.chunks(("e", "pid", "tid"), tuple(c for c in ("name",) if c in calls.codes)):
        mine = (part["pid"] == pid) & (part["tid"] != tid) & _ends_in(part["e"].astype(np.int64, copy=False), spans)
        ends.append(part["e"][mine])
        codes.append(part["name"][mine] if "name" in part else np.full(int(mine.sum()), -1, np.int32))
        tids.append(part["tid"][mine])
    if not ends:
        return np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int64)
    e = np.concatenate(ends).astype(np.int64, copy=False)
    del ends
    order = e.argsort(kind="stable")
    return e[order], np.concatenate(codes)[order], np.concatenate(tids)[order]


def _descend(rid: np.ndarray, ws: np.ndarray, we: np.ndarray, ranges: pd.DataFrame, max_depth: int = 8) -> np.ndarray:
    """From each chosen range down to the enclosed range that overlapped its wait
    most, level by level (a loop over nesting levels, never over waits)."""
    rid = np.asarray(rid).copy()
    kids = ranges[ranges["parent"].notna()][["range_id", "parent", "start_ns", "end_ns"]]
    if kids.empty:
        return rid
    kids = kids.assign(parent=kids["parent"].astype("int64"))
    for _ in range(max_depth):
        pairs = pd.DataFrame({"w": np.arange(rid.size), "parent": rid, "ws": ws, "we": we}).merge(kids, on="parent")
        if pairs.empty:
            break
        pairs["ov"] = np.minimum(pairs["end_ns"], pairs["we"]) - np.maximum(pairs["start_ns"], pairs["ws"])
        pairs = pairs[pairs["ov"] > 0]
        if pairs.empty:
            break
        best = pairs.sort_values(["w", "ov"], ascending=[True, False]).drop_duplicates("w")
        rid[best["w"].to_numpy()] = best["range_id"].to_numpy()
    return rid


def held_by_table(per_wait: pd.DataFrame) -> pd.DataFrame:
    """Per step and holder: ``step``, ``holder``, ``tid`` (the holder's thread,
    null for GPU ops and none), ``ns`` (wait time it held), largest first per step."""
    if per_wait.empty:
        return pd.DataFrame({"step": pd.Series(dtype="int64"), "holder": pd.Series(dtype=object),
                             "tid": pd.Series(dtype="Int64"), "ns": pd.Series(dtype="int64")})
    g = per_wait.groupby(["step", "holder", "tid"], dropna=False, sort=False)["ns"].sum().reset_index()
    g["tid"] = g["tid"].astype("Int64")
    return g.sort_values(["step", "ns"], ascending=[True, False], ignore_index=True)[HELD_BY_COLUMNS]
