"""The whole trace as a Chrome trace-event JSON file that the Perfetto UI (and
``chrome://tracing``) opens: ``timeline.perfetto.json``.

Tracks, in this order (``process_sort_index``):

- each host process (its real pid), a thread per real tid, named from the
  ``threads`` table: NVTX ranges and synchronising calls (category ``nvtx`` /
  ``sync``) as complete (``"X"``) slices, NVTX marks as instant events;
- one process per GPU device (pid ``GPU_PID + device``), a thread per stream
  (tid = stream id): kernels, copies, memsets and CUDA graph runs;
- ``Disk reads`` (pid ``DISK_PID``): the disk-read rows of the ``copies`` table;
- ``nsysparse breakdown`` (pid ``BREAKDOWN_PID``), a thread per step thread:
  per step a ``step N`` slice and inside it one slice per breakdown category
  with time in it, laid end to end in the table's order. Their lengths are the
  category's ns in that step; their positions are not when it happened.

Times are the trace's own (ns from the capture's start) written in µs as floats
with ns precision; ``displayTimeUnit`` is ``ns``. A track's slices must nest: a
slice that partly overlaps an earlier one of its track (start/end NVTX ranges
may; so may two concurrent disk reads) moves to an overflow thread of the same
process, tid ``tid + k * LANE_TID``, named ``<thread> · overlap k``. Nothing is
computed here: every slice is a row of ``report.tables``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..report import Report, jsonable

FILE = "timeline.perfetto.json"
GPU_PID = 1 << 24  # nsys pids are 24-bit: these never collide with a real process
DISK_PID = GPU_PID + (1 << 16)
BREAKDOWN_PID = DISK_PID + 1
LANE_TID = 1 << 24  # overflow lanes of a track: tid + k * LANE_TID


def _table(report: Report, name: str) -> pd.DataFrame | None:
    """``report.tables[name]``, or the same table from the trace while the
    report does not carry it yet; None when neither has it or it is empty."""
    df = report.tables.get(name)
    if df is None and name in ("threads", "gpus"):
        trace = getattr(report, "trace", None)
        df = getattr(trace, name, None) if trace is not None else None
    return df if df is not None and len(df) else None


def nest_lanes(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Per interval, the lane (0, 1, ...) that keeps every lane's intervals
    properly nested (each either inside or after the ones before it): greedy,
    in start order, longest first at equal starts. Most tracks need lane 0 only."""
    start = np.asarray(start, dtype=np.int64)
    end = np.maximum(np.asarray(end, dtype=np.int64), start)
    order = np.lexsort((-end, start))
    lanes = np.zeros(start.size, dtype=np.int64)
    stacks: list[list[int]] = []
    for i in order:
        s, e = int(start[i]), int(end[i])
        for k, stack in enumerate(stacks):
            while stack and stack[-1] <= s:
                stack.pop()
            if not stack or e <= stack[-1]:
                stack.append(e)
                lanes[i] = k
                break
        else:
            stacks.append([e])
            lanes[i] = len(stacks) - 1
    return lanes


def _us(ns: np.ndarray) -> list[float]:
    return (np.asarray(ns, dtype=np.int64) / 1000.0).tolist()


def _slices(df: pd.DataFrame, pid: np.ndarray | int, tid: np.ndarray, names: Any, cat: str,
            args: dict[str, Any]) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    """Complete events for the rows of ``df``; returns them with their pid and tid
    (tid already moved to an overflow lane where the track needs one)."""
    n = len(df)
    if n == 0:
        return [], np.zeros(0, np.int64), np.zeros(0, np.int64)
    start = df["start_ns"].to_numpy(dtype=np.int64)
    end = np.maximum(df["end_ns"].to_numpy(dtype=np.int64), start)
    pids = np.broadcast_to(np.asarray(pid, dtype=np.int64), (n,)).copy()
    tids = np.asarray(tid, dtype=np.int64).copy()
    name_list = list(np.broadcast_to(np.asarray(names, dtype=object), (n,)))
    arg_cols = {k: [jsonable(x) for x in np.broadcast_to(np.asarray(v, dtype=object), (n,))] for k, v in args.items()}
    events = [
        {"ph": "X", "cat": cat, "name": str(name_list[i]), "pid": int(pids[i]), "tid": int(tids[i]),
         "ts": ts, "dur": du, "args": {k: col[i] for k, col in arg_cols.items() if col[i] is not None}}
        for i, (ts, du) in enumerate(zip(_us(start), _us(end - start)))
    ]
    return events, pids, tids


def _assign_lanes(events: list[dict[str, Any]]) -> None:
    """Moves events of a (pid, tid) track that would break its nesting to overflow tids."""
    by_track: dict[tuple[int, int], list[int]] = {}
    for i, ev in enumerate(events):
        by_track.setdefault((ev["pid"], ev["tid"]), []).append(i)
    for (pid, tid), idx in by_track.items():
        s = np.array([round(events[i]["ts"] * 1000) for i in idx], dtype=np.int64)
        e = s + np.array([round(events[i]["dur"] * 1000) for i in idx], dtype=np.int64)
        lanes = nest_lanes(s, e)
        for i, lane in zip(idx, lanes.tolist()):
            if lane:
                events[i]["tid"] = tid + lane * LANE_TID


def _meta(kind: str, pid: int, tid: int | None, **args: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {"ph": "M", "name": kind, "pid": pid, "args": args}
    if tid is not None:
        ev["tid"] = tid
    return ev


def trace_events(report: Report) -> Iterator[dict[str, Any]]:
    """Every event of the Perfetto file, metadata first (see the module doc)."""
    threads = _table(report, "threads")
    tname = {(int(p), int(t)): str(n) for p, t, n in zip(threads["pid"], threads["tid"], threads["name"])
             if n is not None and not pd.isna(n)} if threads is not None else {}
    gpus = _table(report, "gpus")
    gname = {int(d): str(n) for d, n in zip(gpus["device"], gpus["name"])} if gpus is not None and "name" in gpus else {}
    events: list[dict[str, Any]] = []

    r = _table(report, "nvtx_ranges")
    if r is not None:
        args = {"range_id": r["range_id"].to_numpy(), "domain": r["domain"].astype(object).to_numpy(),
                "payload": r["payload"].to_numpy(), "kind": r["kind"].astype(object).to_numpy()}
        events += _slices(r, r["pid"].to_numpy(), r["tid"].to_numpy(), r["name"].astype(object).to_numpy(), "nvtx", args)[0]
    sc = _table(report, "sync_calls")
    if sc is not None:
        events += _slices(sc, sc["pid"].to_numpy(), sc["tid"].to_numpy(), sc["base_name"].astype(object).to_numpy(), "sync", {})[0]

    gpu_ops: list[tuple[str, pd.DataFrame, Any, dict[str, Any]]] = []
    k = _table(report, "kernels")
    if k is not None:
        gpu_ops.append(("kernel", k, k["short_name"].astype(object).to_numpy(),
                        {"name": k["name"].astype(object).to_numpy(), "correlation_id": k["correlation_id"].to_numpy()}))
    copies = _table(report, "copies")
    if copies is not None:
        on_gpu = copies[copies["device"].notna()]
        disk = copies[copies["device"].isna()]
    else:
        on_gpu, disk = _table(report, "memcpy"), None
        if on_gpu is not None:
            on_gpu = on_gpu.assign(category=on_gpu["copy_kind"].astype(object))
    if on_gpu is not None and len(on_gpu):
        gpu_ops.append(("copy", on_gpu, on_gpu["category"].astype(object).to_numpy(),
                        {"bytes": on_gpu["bytes"].to_numpy(),
                         **({"link": on_gpu["link"].astype(object).to_numpy()} if "link" in on_gpu else {})}))
    ms = _table(report, "memset")
    if ms is not None:
        gpu_ops.append(("memset", ms, "memset", {"bytes": ms["bytes"].to_numpy()}))
    gr = _table(report, "graph_runs")
    if gr is not None:
        gpu_ops.append(("graph", gr, ("graph " + gr["graph_id"].astype(str)).to_numpy(dtype=object),
                        {"graph_exec_id": gr["graph_exec_id"].to_numpy(), "correlation_id": gr["correlation_id"].to_numpy()}))
    for cat, df, names, args in gpu_ops:
        events += _slices(df, GPU_PID + df["device"].to_numpy(dtype=np.int64), df["stream"].to_numpy(dtype=np.int64),
                          names, cat, args)[0]
    if disk is not None and len(disk):
        events += _slices(disk, DISK_PID, np.zeros(len(disk), np.int64), disk["category"].astype(object).to_numpy(),
                          "disk", {"bytes": disk["bytes"].to_numpy(), "pid": disk["pid"].to_numpy()})[0]

    events += _breakdown_events(report)
    _assign_lanes(events)

    marks = _table(report, "marks")
    if marks is not None:
        events += [{"ph": "i", "s": "t", "cat": "mark", "name": str(n), "pid": int(p), "tid": int(t), "ts": ts}
                   for n, p, t, ts in zip(marks["name"].astype(object), marks["pid"], marks["tid"], _us(marks["ts_ns"]))]

    tracks = sorted({(ev["pid"], ev["tid"]) for ev in events})
    pids = sorted({p for p, _ in tracks})
    meta: list[dict[str, Any]] = []
    for p in pids:
        if p >= GPU_PID + (1 << 16):
            label = "Disk reads" if p == DISK_PID else "nsysparse breakdown (category ns per step, end to end)"
            order = 2 if p == DISK_PID else 3
        elif p >= GPU_PID:
            dev = p - GPU_PID
            label, order = f"GPU {dev}" + (f" {gname[dev]}" if dev in gname else ""), 1
        else:
            label, order = f"{tname.get((p, p), 'process')} (pid {p})", 0
        meta += [_meta("process_name", p, None, name=label), _meta("process_sort_index", p, None, sort_index=order * GPU_PID + p % GPU_PID)]
    steps = _table(report, "steps")
    step_pid = {int(t): int(p) for p, t in zip(steps["pid"], steps["tid"])} if steps is not None else {}
    for p, t in tracks:
        base, lane = t % LANE_TID, t // LANE_TID
        if p == BREAKDOWN_PID:
            label = f"steps of {tname.get((step_pid.get(base, -1), base), 'thread')} {base}"
        elif p == DISK_PID:
            label = "disk → host"
        elif p >= GPU_PID:
            label = f"stream {base}"
        else:
            label = f"{tname.get((p, base), 'thread')} {base}"
        if lane:
            label += f" · overlap {lane}"
        meta += [_meta("thread_name", p, t, name=label), _meta("thread_sort_index", p, t, sort_index=base * 16 + lane)]
    yield from meta
    yield from events


def _breakdown_events(report: Report) -> list[dict[str, Any]]:
    b, st = _table(report, "breakdown"), _table(report, "steps")
    if b is None or st is None:
        return []
    out: list[dict[str, Any]] = []
    by_step = {int(s): g for s, g in b.groupby("step", sort=True)}
    for s in st.itertuples():
        g = by_step.get(int(s.step))
        if g is None:
            continue
        tid = int(s.tid)
        out.append({"ph": "X", "cat": "breakdown", "name": f"step {int(s.step)}", "pid": BREAKDOWN_PID, "tid": tid,
                    "ts": int(s.start_ns) / 1000.0, "dur": int(s.dur_ns) / 1000.0,
                    "args": {"step": int(s.step), "warmup": bool(s.warmup), "pid": int(s.pid), "dur_ns": int(s.dur_ns)}})
        at = int(s.start_ns)
        for c in g.itertuples():
            ns = int(c.ns)
            if ns <= 0:
                continue
            out.append({"ph": "X", "cat": "breakdown", "name": str(c.category), "pid": BREAKDOWN_PID, "tid": tid,
                        "ts": at / 1000.0, "dur": ns / 1000.0,
                        "args": {"step": int(s.step), "ns": ns, "share": jsonable(c.share)}})
            at += ns
    return out


def write_perfetto(report: Report, path: Path) -> None:
    """Write ``path`` (by convention ``timeline.perfetto.json`` in the report
    folder): ``{"traceEvents": [...], "displayTimeUnit": "ns", "otherData": {...}}``,
    ``otherData`` holding the tool version, the input's nsys version, schema,
    sha256 and the settings."""
    from .files import provenance  # the folder writer's provenance, shared

    path = Path(path)
    with path.open("w", encoding="utf-8") as f:
        f.write('{"displayTimeUnit": "ns", "otherData": ')
        f.write(json.dumps(provenance(report)))
        f.write(', "traceEvents": [\n')
        for i, ev in enumerate(trace_events(report)):
            if i:
                f.write(",\n")
            f.write(json.dumps(ev, separators=(",", ":"), allow_nan=False))
        f.write("\n]}\n")


def write_perfetto_into(report: Report, folder: Path) -> list[str]:
    """``write_perfetto`` into ``folder / FILE``, in the shape of
    ``write_report_folder``'s ``charts`` callback: returns the created names."""
    write_perfetto(report, Path(folder) / FILE)
    return [FILE]
