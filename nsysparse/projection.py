"""NVTX GPU projection: which GPU work each NVTX range launched.

Equal to nsys's ``nvtx_gpu_proj_trace`` (METRICS.md): a GPU op (kernel,
memcpy, memset) belongs to a range when the runtime API call that launched it
started and ended inside the range, on the range's own thread. Projected start
is the first op's start, projected duration the last op's end minus that (an
envelope); ``num_gpu_ops`` counts distinct correlation ids. Nested ranges each
count the op; ranges with no ops are absent.

Two deliberate differences from nsys, both by design (CONTRACT.md):
- graph-level CUDA graph executions (``graph_runs``) are GPU ops here; nsys's
  projection ignores them and calls a graph-replaying range empty.
- start/end ranges that end on another thread are projected here (ops
  launched on the starting thread inside the range); nsys drops them.

Added beyond nsys: ``proj_busy_ns`` (union of op intervals), ``bytes`` (memcpy
bytes), and counts by op type.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from . import intervals as iv
from .trace import Trace

OP_TYPES = ("kernels", "memcpys", "memsets", "graph_runs")

PROJECTION_COLUMNS = [
    "range_id", "name", "pid", "tid", "start_ns", "dur_ns", "proj_start_ns", "proj_dur_ns",
    "proj_busy_ns", "num_gpu_ops", "bytes", "kernels", "memcpys", "memsets", "graph_runs",
    "depth", "parent",
]


PAIRS_PER_BLOCK = 1 << 16  # (range, op) pairs expanded at once: bounds the projection's memory, and its
# working arrays (0.5 MB) come from the heap, block after block (trace.reuse_freed_memory): at 2 GB, 1 << 19
# (4 MB arrays, each mapped and faulted in afresh) took 2.2 s and 455k page faults, this 1.75 s and 25k


class _LaunchedOps:
    """The GPU ops whose launching call was found, in (launching thread, launch
    time, correlation id) order: a range's ops are then a contiguous run, and
    the ops of one call are adjacent. Only the two sort keys a search needs are
    held in that order (``key``: the launching thread, :func:`_thread_key`;
    ``api_start_ns``); every other column is gathered from the op tables for the
    positions a block of pairs asks for (:meth:`take`), so no sorted copy of
    the ops' columns is ever made (2 GB trace: 6.1M ops, +650 -> +250 MB)."""

    COLUMNS = ("start_ns", "end_ns", "correlation_id", "api_end_ns", "bytes", "op")

    def __init__(self, trace: Trace) -> None:
        tables = [trace.kernels, trace.memcpy, trace.memset, trace.graph_runs]
        # per table with a found op: (op type, table, rows of the found ops or None for all of them)
        self.parts: list[tuple[int, pd.DataFrame, np.ndarray | None]] = []
        for i, table in enumerate(tables):
            if not len(table):
                continue
            mine = table["launch_tid"].notna().to_numpy()
            k = int(mine.sum())
            if k:
                self.parts.append((i, table, None if k == len(table) else np.flatnonzero(mine)))
        sizes = [len(t) if rows is None else rows.size for _, t, rows in self.parts]
        self.offsets = np.cumsum([0, *sizes])[:-1]
        self.size = int(sum(sizes))
        key = self._thread_keys()
        start = self._joined(lambda t: _int64(t["api_start_ns"]))
        # a stable sort on (thread, launch time), each key put in order and its unsorted self
        # dropped before the next (6.1M ops: 50 MB each); of the threads' keys only each
        # thread's run is kept (:attr:`threads`), not a key per op
        self.order = np.lexsort((start, key))
        # where the sorted threads change and where two ops of a thread share a launch time,
        # found a stretch at a time: no sorted copy of the threads' keys beside the rest
        changes, ties = _changes_and_ties(key, start, self.order)
        # each thread's run: its key, where it starts and where it ends
        first = np.r_[0, changes] if self.size else np.zeros(0, np.int64)
        self.threads = (key[self.order[first]], first.astype(np.int64), np.r_[first[1:], self.size].astype(np.int64))
        # the part (table) of each sorted position, when there are several
        self.part_of = (np.repeat(np.arange(len(sizes), dtype=np.int8), sizes)[self.order]
                        if len(sizes) > 1 else np.zeros(0, np.int8))
        # then the correlation id decides ties, read only where there are some (ops of one call share
        # its launch time and its id: the order is then that of the three-key lexsort already)
        resort = False
        if ties.size:
            before, after = (self.take(at, "correlation_id")[0] for at in (ties, ties + 1))
            resort = bool((after < before).any())
        ks = key[self.order] if resort else None
        del key
        self.api_start_ns = start[self.order]
        del start
        if resort:
            corr = self.take(np.arange(self.size), "correlation_id")[0]
            again = np.lexsort((corr, self.api_start_ns, ks))  # stable: ties still in the tables' order
            del corr, ks
            # the threads' runs stay: only ops of one thread and one launch time move
            self.order, self.api_start_ns = self.order[again], self.api_start_ns[again]
            if self.part_of.size:
                self.part_of = self.part_of[again]

    def _thread_keys(self) -> np.ndarray:
        """The launching thread's key (:func:`_thread_key`) of every found op, table
        after table, made in place in the one array (no key array per table beside it)."""
        key = np.empty(self.size, np.int64)
        for (_, table, rows), at in zip(self.parts, self.offsets):
            pid, tid = table["pid"].to_numpy(np.int64), _int64(table["launch_tid"])
            if rows is not None:
                pid, tid = pid[rows], tid[rows]
            _thread_key(pid, tid, out=key[at:at + tid.size])
            del pid, tid
        return key

    def _joined(self, column: Callable[[pd.DataFrame], np.ndarray]) -> np.ndarray:
        """One int64 column of every found op, table after table (in the order
        of the op positions :attr:`order` sorts)."""
        if len(self.parts) == 1 and self.parts[0][2] is None:  # one table, every op: its column as made
            return column(self.parts[0][1])
        out = np.empty(self.size, np.int64)
        for (_, table, rows), at in zip(self.parts, self.offsets):
            values = column(table)
            values = values if rows is None else values[rows]
            out[at:at + values.size] = values
        return out

    def _values(self, part: int, name: str, local: np.ndarray) -> np.ndarray:
        """Column ``name`` of part ``part``'s table at its rows ``local``, as int64
        (``op`` as int8). Only those rows are converted: no whole column is made
        or kept (the kernels' bytes, all 0, or a nullable column's int64 copy:
        45 MB each at 5.7M kernels)."""
        op, table, _ = self.parts[part]
        if name == "op":
            return np.full(local.size, op, np.int8)
        if name == "bytes" and OP_TYPES[op] != "memcpys":
            return np.zeros(local.size, np.int64)
        col = table[name]
        if col.dtype == "Int64":  # the launching call's times: null only where none was found, not here
            return col.array.take(local).to_numpy(np.int64, na_value=0)
        return col.to_numpy(np.int64)[local]

    def take(self, at: np.ndarray, *names: str) -> list[np.ndarray]:
        """Columns ``names`` (of COLUMNS) of the ops at sorted positions ``at``."""
        pos = self.order[at]
        if len(self.parts) == 1:
            rows = self.parts[0][2]
            local = pos if rows is None else rows[pos]
            return [self._values(0, name, local) for name in names]
        which = self.part_of[at]
        picks = []
        for part, (_, _, rows) in enumerate(self.parts):
            mine = np.flatnonzero(which == part)
            local = pos[mine] - self.offsets[part]
            picks.append((mine, local if rows is None else rows[local]))
        out = []
        for name in names:
            col = np.empty(pos.size, np.int8 if name == "op" else np.int64)
            for part, (mine, local) in enumerate(picks):
                col[mine] = self._values(part, name, local)
            out.append(col)
        return out


STRETCH = 1 << 18  # sorted positions looked at a time by _changes_and_ties (2 MB a column)


def _changes_and_ties(key: np.ndarray, start: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Of the rows in ``order`` (sorted by key, then start): the positions where
    the key changes (a run's first position, past the first), and the positions
    ``i`` whose next row has the same key and start. Worked out a stretch of
    positions at a time (each with the next one's first row), so that no sorted
    copy of ``key`` is made."""
    changes, ties = [], []
    n = order.size
    for a in range(0, n, STRETCH):
        at = order[a:min(a + STRETCH + 1, n)]
        k, t = key[at], start[at]
        same = k[1:] == k[:-1]
        changes.append(np.flatnonzero(~same) + a + 1)
        ties.append(np.flatnonzero(same & (t[1:] == t[:-1])) + a)
    empty = np.zeros(0, np.int64)
    return (np.concatenate(changes) if changes else empty), (np.concatenate(ties) if ties else empty)


def _int64(col: pd.Series) -> np.ndarray:
    """A column as int64 (a nullable one's nulls as 0: the rows read have none)."""
    return col.to_numpy(np.int64, na_value=0) if col.dtype == "Int64" else col.to_numpy(np.int64)


def nvtx_projection(trace: Trace, ranges: pd.DataFrame | None = None) -> pd.DataFrame:
    """Project NVTX ranges onto the GPU work they launched.

    One row per range with at least one GPU op, in ``range_id`` order. Columns:
    ``range_id``, ``name``, ``pid``, ``tid``, ``start_ns``/``dur_ns`` (the CPU
    range), ``proj_start_ns`` (first op start), ``proj_dur_ns`` (last op end -
    first op start), ``proj_busy_ns`` (union of the ops' GPU intervals, ns),
    ``num_gpu_ops`` (distinct correlation ids), ``bytes`` (memcpy bytes),
    ``kernels``/``memcpys``/``memsets``/``graph_runs`` (op counts), ``depth``,
    ``parent``.
    """
    r = trace.nvtx_ranges if ranges is None else ranges
    if r.empty:
        return _empty()
    ops = _LaunchedOps(trace)
    if ops.size == 0:
        return _empty()
    key_r = _thread_key(r["pid"].to_numpy(), r["tid"].to_numpy())
    r_end = r["end_ns"].to_numpy(np.int64)
    # position of each range's first/last candidate op: same thread, call started inside
    lo = _searchsorted2(ops.threads, ops.api_start_ns, key_r, r["start_ns"].to_numpy(), side="left")
    hi = _searchsorted2(ops.threads, ops.api_start_ns, key_r, r_end, side="right")
    del key_r
    cand = np.flatnonzero(hi > lo)
    if cand.size == 0:
        return _empty()
    # the (range, op) pairs number ops x nesting depth: expanded a block of ranges at a time
    ends = np.cumsum((hi - lo)[cand])
    cuts = np.searchsorted(ends, np.arange(PAIRS_PER_BLOCK, int(ends[-1]), PAIRS_PER_BLOCK), side="left") + 1
    blocks = [blk for a, b in zip(np.r_[0, cuts], np.r_[cuts, cand.size])
              if (blk := _project_block(ops, cand[a:b], lo, hi, r_end)) is not None]
    # the ops' sort and the searches are done with: freed before the sums are joined and the
    # ranges' columns gathered (5 GB: 14.6M ops, two 117 MB arrays, were held beside them)
    del ops, lo, hi, cand, ends, cuts
    if not blocks:
        return _empty()
    # a column at a time, each block's part freed as it is joined (not every block beside the whole)
    agg = {c: np.concatenate([blk.pop(c) for blk in blocks]) for c in list(blocks[0])}
    del blocks
    at = agg["range"]

    def rr(col: str) -> np.ndarray:  # one column of the ranges with an op (not every column: 2M ranges)
        return r[col].to_numpy(dtype=object if col == "name" else None)[at]

    out = pd.DataFrame(
        {
            "range_id": rr("range_id"),
            "name": rr("name"),
            "pid": rr("pid"),
            "tid": rr("tid"),
            "start_ns": rr("start_ns"),
            "dur_ns": rr("dur_ns"),
            "proj_start_ns": agg["proj_start_ns"],
            "proj_dur_ns": agg["proj_end"] - agg["proj_start_ns"],
            "proj_busy_ns": agg["proj_busy_ns"],
            "num_gpu_ops": agg["num_gpu_ops"],
            "bytes": agg["bytes"],
            **{t: agg[t] for t in OP_TYPES},
            "depth": rr("depth"),
            "parent": r["parent"].array[at],
        },
        copy=False,  # each column its own array: not copied into blocks, then again by a reindex
    )
    assert list(out.columns) == PROJECTION_COLUMNS
    return out


def _project_block(ops: _LaunchedOps, ranges: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                   r_end: np.ndarray) -> dict[str, np.ndarray] | None:
    """The projection sums of ``ranges`` (row positions, ascending), whose
    candidate ops are ``ops[lo[i]:hi[i]]``: one entry per range with an op
    (None when no call of the block ends inside its range)."""
    first_op = lo[ranges]
    n = hi[ranges] - first_op  # the block's ranges only: not a difference per range of the trace each block
    rid = np.repeat(ranges, n)
    op_idx = np.repeat(first_op, n) + (np.arange(rid.size) - np.repeat(np.cumsum(n) - n, n))
    # the call must also end inside the range (matters only for start/end ranges)
    keep = ops.take(op_idx, "api_end_ns")[0] <= r_end[rid]
    rid, o = rid[keep], op_idx[keep]
    del keep, op_idx
    if rid.size == 0:
        return None
    # pairs come grouped by range, in range order, each range's ops in (launch, correlation
    # id) order: per-range sums are reduceat over contiguous runs, no group-by; the ops of
    # one call (one correlation id) are adjacent, so distinct ids are the changes of id
    start, end, corr, op_type, nbytes = ops.take(o, "start_ns", "end_ns", "correlation_id", "op", "bytes")
    new_r = np.r_[True, rid[1:] != rid[:-1]]
    first = np.flatnonzero(new_r)
    new_op = new_r | np.r_[True, corr[1:] != corr[:-1]]
    out = {
        "range": rid[first],
        "proj_start_ns": np.minimum.reduceat(start, first),
        "proj_end": np.maximum.reduceat(end, first),
        "num_gpu_ops": np.add.reduceat(new_op.astype(np.int64), first),
        "bytes": np.add.reduceat(nbytes, first),
        **{t: np.add.reduceat((op_type == i).astype(np.int64), first) for i, t in enumerate(OP_TYPES)},
    }
    out["proj_busy_ns"] = iv.grouped_total(np.cumsum(new_r) - 1, start, end, first.size)
    return out


def _thread_key(pid: np.ndarray, tid: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Process and thread in one int64 (``pid << 24 | tid``), made in ``out`` when given
    (else a new array), shifted and joined in place: one array made, not two."""
    key = np.left_shift(np.asarray(pid, dtype=np.int64), 24, out=out)
    key |= np.asarray(tid, dtype=np.int64)
    return key


def _searchsorted2(runs: tuple[np.ndarray, np.ndarray, np.ndarray], t: np.ndarray, qkey: np.ndarray, qt: np.ndarray,
                   side: str) -> np.ndarray:
    """searchsorted on rows sorted by (key, t), whose keys' runs are ``runs``
    (each distinct key, where its run starts and where it ends), for queries (qkey, qt)."""
    out = np.empty(qkey.size, dtype=np.int64)
    # a searchsorted within each key's block per distinct key
    ukeys, first, last = runs
    pos = np.searchsorted(ukeys, qkey)
    found = (pos < ukeys.size) & (ukeys[np.minimum(pos, ukeys.size - 1)] == qkey)
    out[~found] = 0
    for k in np.unique(pos[found]):  # one pass per thread, not per row
        sel = found & (pos == k)
        a, b = first[k], last[k]
        out[sel] = a + np.searchsorted(t[a:b], qt[sel], side=side)
    return out


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object if c == "name" else ("Int64" if c == "parent" else "int64")) for c in PROJECTION_COLUMNS})
