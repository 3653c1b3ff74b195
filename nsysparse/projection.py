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


def gpu_ops(trace: Trace) -> pd.DataFrame:
    """Every GPU op with its launching call: ``op`` (one of OP_TYPES), ``start_ns``,
    ``end_ns``, ``device``, ``stream``, ``pid``, ``correlation_id``, ``launch_tid``,
    ``api_start_ns``, ``api_end_ns``, ``bytes`` (memcpy only, else 0)."""
    cols = ["start_ns", "end_ns", "device", "stream", "pid", "correlation_id",
            "launch_tid", "api_start_ns", "api_end_ns"]
    parts = []
    for op, table in zip(OP_TYPES, (trace.kernels, trace.memcpy, trace.memset, trace.graph_runs)):
        if table.empty:
            continue
        part = table[cols].copy()
        part["bytes"] = table["bytes"].to_numpy(dtype=np.int64) if op == "memcpys" else 0
        part["op"] = op
        parts.append(part)
    if not parts:
        empty = pd.DataFrame({c: pd.Series(dtype="int64") for c in cols + ["bytes"]})
        empty["op"] = pd.Series(dtype=object)
        return empty
    return pd.concat(parts, ignore_index=True)


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
    ops = gpu_ops(trace)
    ops = ops[ops["launch_tid"].notna()]
    if r.empty or ops.empty:
        return _empty()
    # sort ops by (pid, thread, launch time, correlation id): a range's ops are then a
    # contiguous slice, and the ops of one call are adjacent
    ops = ops.assign(
        launch_tid=ops["launch_tid"].astype("int64"),
        api_start_ns=ops["api_start_ns"].astype("int64"),
        api_end_ns=ops["api_end_ns"].astype("int64"),
    ).sort_values(["pid", "launch_tid", "api_start_ns", "correlation_id"], kind="stable", ignore_index=True)
    key_ops = _thread_key(ops["pid"].to_numpy(), ops["launch_tid"].to_numpy())
    key_r = _thread_key(r["pid"].to_numpy(), r["tid"].to_numpy())
    api_start = ops["api_start_ns"].to_numpy()
    # position of each range's first/last candidate op: same thread, call started inside
    lo = _searchsorted2(key_ops, api_start, key_r, r["start_ns"].to_numpy(), side="left")
    hi = _searchsorted2(key_ops, api_start, key_r, r["end_ns"].to_numpy(), side="right")
    has = hi > lo
    if not has.any():
        return _empty()
    rid = np.repeat(np.flatnonzero(has), (hi - lo)[has])
    # expand slices into (range, op) pairs: O(ops x nesting depth)
    offsets = np.arange(rid.size) - np.repeat(np.cumsum((hi - lo)[has]) - (hi - lo)[has], (hi - lo)[has])
    op_idx = np.repeat(lo[has], (hi - lo)[has]) + offsets
    # the call must also end inside the range (matters only for start/end ranges)
    keep = ops["api_end_ns"].to_numpy()[op_idx] <= r["end_ns"].to_numpy()[rid]
    rid, o = rid[keep], op_idx[keep]
    if rid.size == 0:
        return _empty()
    # pairs come grouped by range, in range order, each range's ops in (launch, correlation
    # id) order: per-range sums are reduceat over contiguous runs, no group-by; the ops of
    # one call (one correlation id) are adjacent, so distinct ids are the changes of id
    start, end = ops["start_ns"].to_numpy()[o], ops["end_ns"].to_numpy()[o]
    corr = ops["correlation_id"].to_numpy()[o]
    new_r = np.r_[True, rid[1:] != rid[:-1]]
    first = np.flatnonzero(new_r)
    new_op = new_r | np.r_[True, corr[1:] != corr[:-1]]
    op_type = np.asarray(pd.Categorical(ops["op"], categories=list(OP_TYPES)).codes)[o]
    agg = pd.DataFrame(
        {
            "proj_start_ns": np.minimum.reduceat(start, first),
            "proj_end": np.maximum.reduceat(end, first),
            "num_gpu_ops": np.add.reduceat(new_op.astype(np.int64), first),
            "bytes": np.add.reduceat(ops["bytes"].to_numpy(dtype=np.int64)[o], first),
            **{t: np.add.reduceat((op_type == i).astype(np.int64), first) for i, t in enumerate(OP_TYPES)},
        },
        index=rid[first],
    )
    codes = np.cumsum(new_r) - 1
    agg["proj_busy_ns"] = iv.grouped_total(codes, start, end, len(agg))
    rr = r.iloc[agg.index.to_numpy()]
    out = pd.DataFrame(
        {
            "range_id": rr["range_id"].to_numpy(),
            "name": rr["name"].to_numpy(dtype=object),
            "pid": rr["pid"].to_numpy(),
            "tid": rr["tid"].to_numpy(),
            "start_ns": rr["start_ns"].to_numpy(),
            "dur_ns": rr["dur_ns"].to_numpy(),
            "proj_start_ns": agg["proj_start_ns"].to_numpy(dtype=np.int64),
            "proj_dur_ns": (agg["proj_end"] - agg["proj_start_ns"]).to_numpy(dtype=np.int64),
            "proj_busy_ns": agg["proj_busy_ns"].to_numpy(dtype=np.int64),
            "num_gpu_ops": agg["num_gpu_ops"].to_numpy(dtype=np.int64),
            "bytes": agg["bytes"].to_numpy(dtype=np.int64),
            **{t: agg[t].to_numpy(dtype=np.int64) for t in OP_TYPES},
            "depth": rr["depth"].to_numpy(),
            "parent": rr["parent"].array,
        }
    )
    return out[PROJECTION_COLUMNS]


def _thread_key(pid: np.ndarray, tid: np.ndarray) -> np.ndarray:
    return (np.asarray(pid, dtype=np.int64) << 24) | np.asarray(tid, dtype=np.int64)


def _searchsorted2(key: np.ndarray, t: np.ndarray, qkey: np.ndarray, qt: np.ndarray, side: str) -> np.ndarray:
    """searchsorted on rows sorted by (key, t), for queries (qkey, qt)."""
    out = np.empty(qkey.size, dtype=np.int64)
    # bounds of each key's block, then a searchsorted within it per distinct key
    ukeys, first = np.unique(key, return_index=True)
    last = np.r_[first[1:], key.size]
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
