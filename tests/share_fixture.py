"""A Report carrying the tables the lead's refactor adds (``copies``, ``sync_calls``,
``threads``, ``gpus``, ``breakdown``, ``held_by``, ``kernels_summary``) and the
summary keys ``breakdown`` and ``targets`` with ``saving_ms``/``lever``, for the
tests of the shared outputs (HTML, Perfetto JSON, results database) before
``build_report`` makes them itself.

The values are fabricated but consistent: each step's breakdown sums to its
``dur_ns``; copies are the memcpy rows plus the disk reads; kernels_summary
groups the kernels table. Where ``build_report`` already returns a table of the
same name it is kept as it is.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd

import nsysparse
from nsysparse.links import disk_reads, link_label, with_link_labels
from nsysparse.render.charts import copy_category
from nsysparse.report import Report, build_report
from nsysparse.sync import sync_calls
from nsysparse import schema as S

DATA = Path(__file__).resolve().parent / "data"

CATEGORIES = [
    "gpu_compute", "launch", "os_call", "host_cpu", "copy_h2d_pinned", "copy_h2d_pageable", "copy_d2h",
    "copy_d2d", "copy_p2p", "memset", "disk_read", "copy_call", "sync_idle", "host_wait_other",
]


def _copies(report: Report) -> pd.DataFrame:
    m = report.tables["memcpy"]
    parts = []
    if len(m):
        parts.append(pd.DataFrame({
            "start_ns": m["start_ns"].to_numpy(), "end_ns": m["end_ns"].to_numpy(), "bytes": m["bytes"].to_numpy(),
            "pid": m["pid"].to_numpy(), "device": m["device"].astype("Int64").to_numpy(),
            "stream": m["stream"].astype("Int64").to_numpy(),
            "link": with_link_labels(m).to_numpy(dtype=object),
            "category": copy_category(m["copy_kind"], m["src_kind"]).to_numpy(dtype=object),
        }))
    io = disk_reads(report.trace, report.settings.io_range)
    if len(io):
        parts.append(pd.DataFrame({
            "start_ns": io["start_ns"].to_numpy(), "end_ns": io["end_ns"].to_numpy(), "bytes": io["bytes"].to_numpy(),
            "pid": io["pid"].to_numpy(), "device": pd.array([None] * len(io), dtype="Int64"),
            "stream": pd.array([None] * len(io), dtype="Int64"),
            "link": link_label(S.DISK_TO_HOST, "Disk", "Host", None, None), "category": "disk",
        }))
    return pd.concat(parts, ignore_index=True).sort_values("start_ns", kind="stable").reset_index(drop=True)


def _breakdown(st: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for s in st.itertuples():
        dur = int(s.dur_ns)
        parts = {
            "host_wait_other": int(s.wait_ns),
            "sync_idle": int(s.sync_outside_wait_ns),
            "gpu_compute": int(s.gpu_busy_kernel_ns),
            "copy_h2d_pinned": int(s.h2d_busy_ns),
        }
        left = dur
        for k, v in parts.items():
            parts[k] = min(v, left)
            left -= parts[k]
        parts["launch"] = left // 10
        parts["host_cpu"] = left - parts["launch"]
        for cat in CATEGORIES:
            ns = parts.get(cat, 0)
            rows.append({"step": int(s.step), "category": cat, "ns": ns, "share": ns / dur if dur else 0.0})
    return pd.DataFrame(rows)


def _kernels_summary(k: pd.DataFrame, live_steps: int) -> pd.DataFrame:
    g = k.groupby("name", sort=False, observed=True)
    out = g.agg(short_name=("short_name", "first"), launches=("dur_ns", "size"), total_ns=("dur_ns", "sum"),
                mean_ns=("dur_ns", "mean"), p50_ns=("dur_ns", "median"),
                p95_ns=("dur_ns", lambda d: float(np.percentile(d, 95)))).reset_index()
    out["per_step_ns"] = out["total_ns"] / max(live_steps, 1)
    out["share"] = out["total_ns"] / out["total_ns"].sum()
    cols = ["name", "short_name", "launches", "total_ns", "per_step_ns", "mean_ns", "p50_ns", "p95_ns", "share"]
    return out[cols].sort_values("total_ns", ascending=False, kind="stable").reset_index(drop=True)


def extend(report: Report) -> Report:
    """``report`` with the refactor's tables and summary keys added (a new Report)."""
    t = dict(report.tables)
    st = t["steps"]
    live = st[~st["warmup"]]
    t.setdefault("copies", _copies(report))
    t.setdefault("sync_calls", sync_calls(report.trace)[["pid", "tid", "start_ns", "end_ns", "base_name"]].reset_index(drop=True))
    t.setdefault("threads", report.trace.threads)
    t.setdefault("gpus", report.trace.gpus)
    t.setdefault("breakdown", _breakdown(st))
    t.setdefault("held_by", pd.DataFrame({"step": st["step"], "holder": "fetch thread", "tid": st["tid"] + 1, "ns": st["wait_ns"]}))
    t.setdefault("kernels_summary", _kernels_summary(t["kernels"], len(live)))
    s = copy.deepcopy(report.summary)
    b = t["breakdown"]
    b = b[b["step"].isin(live["step"])]
    s.setdefault("breakdown", {c: float(b.loc[b["category"] == c, "ns"].sum()) / max(len(live), 1) / 1e6 for c in CATEGORIES})
    for i, target in enumerate(s["targets"]):
        target.setdefault("saving_ms", target["ms_per_step"] * 0.5)
        target.setdefault("lever", ["prefetch the next layer's experts", "overlap copies with compute", "pin the staging buffer"][i % 3])
    return Report(input=report.input, settings=report.settings, tables=t, summary=s, notes=report.notes, trace=report.trace)


def shared_report(name: str = "offload_disk") -> Report:
    """The fixture ``tests/data/<name>.sqlite`` reported and extended."""
    return extend(build_report(nsysparse.open_trace(DATA / f"{name}.sqlite")))
