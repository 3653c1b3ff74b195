"""Per-link bandwidth: host-device (pinned and pageable apart), device, peer and disk.

A link is (copy kind, source memory kind, destination memory kind, source
device, destination device). Copies of one link that overlap in time (two
streams, two copy engines) share the link's busy time: effective GB/s is
bytes / |union of the link's copy intervals|, never bytes / sum of durations.
The disk link comes from NVTX I/O ranges whose integer payload is a byte count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import intervals as iv
from . import schema as S
from .trace import Trace

LINK_COLUMNS = [
    "link", "copy_kind", "src_kind", "dst_kind", "src_device", "dst_device", "count", "bytes",
    "sum_dur_ns", "busy_ns", "gbps_effective", "gbps_p50", "gbps_p95", "gbps_max", "peak_gbps",
    "utilisation",
]
LINK_KEYS = ["copy_kind", "src_kind", "dst_kind", "src_device", "dst_device"]
PEAK_KINDS = ("H2D", "D2H", "D2D", "P2P", "disk")


def link_label(copy_kind: str, src_kind: str, dst_kind: str, src: object, dst: object) -> str:
    """``"{copy_kind} {src_kind}->{dst_kind} {src}->{dst}"``, ``host`` for a null device."""
    def dev(d: object) -> str:
        return "host" if d is None or d is pd.NA or (isinstance(d, float) and np.isnan(d)) else str(int(d))  # type: ignore[call-overload]

    return f"{copy_kind} {src_kind}->{dst_kind} {dev(src)}->{dev(dst)}"


def peak_kind(copy_kind: str) -> str | None:
    """The ``--link-peak`` KIND a copy kind answers to (``H2D``, ``D2H``, ...)."""
    if copy_kind == S.DISK_TO_HOST:
        return "disk"
    return S.LINK_KIND_OF_COPY.get(copy_kind)


def default_peaks(trace: Trace) -> dict[str, float]:
    """H2D and D2H peak GB/s from the GPUs' compute capability: 64 for 9.x and
    later (PCIe Gen5 x16), 32 before (Gen4 x16). D2D, P2P and disk: none."""
    g = trace.gpus
    if g.empty or "compute_major" not in g or g["compute_major"].isna().all():
        return {}
    major = int(g["compute_major"].max())
    peak = 64.0 if major >= 9 else 32.0
    return {"H2D": peak, "D2H": peak}


def with_link_labels(memcpy: pd.DataFrame) -> pd.Series:
    """The link label of each copy (vectorised over distinct links)."""
    if memcpy.empty:
        return pd.Series([], dtype=object)
    keys = memcpy[LINK_KEYS].astype(object).where(memcpy[LINK_KEYS].notna(), None)
    uniq = keys.drop_duplicates()
    labels = {tuple(k): link_label(*k) for k in uniq.itertuples(index=False, name=None)}
    return pd.Series([labels[k] for k in keys.itertuples(index=False, name=None)], index=memcpy.index, dtype=object)


def disk_reads(trace: Trace, io_range: str) -> pd.DataFrame:
    """NVTX I/O ranges named ``io_range`` that carry a byte payload:
    ``start_ns``, ``end_ns``, ``dur_ns``, ``pid``, ``tid``, ``bytes``."""
    r = trace.nvtx_ranges
    io = r[(r["text"] == io_range) & r["payload"].notna()]
    return pd.DataFrame(
        {
            "start_ns": io["start_ns"].to_numpy(),
            "end_ns": io["end_ns"].to_numpy(),
            "dur_ns": io["dur_ns"].to_numpy(),
            "pid": io["pid"].to_numpy(),
            "tid": io["tid"].to_numpy(),
            "bytes": io["payload"].to_numpy().astype(np.int64),
        }
    )


def _stats(df: pd.DataFrame) -> dict[str, float]:
    b = df["bytes"].to_numpy(dtype=np.float64)
    d = df["dur_ns"].to_numpy(dtype=np.float64)
    per = b[d > 0] / d[d > 0]  # bytes/ns == GB/s (1e9 bytes per second)
    busy = iv.total(df["start_ns"].to_numpy(), df["end_ns"].to_numpy())
    return {
        "count": len(df),
        "bytes": int(b.sum()),
        "sum_dur_ns": int(d.sum()),
        "busy_ns": busy,
        "gbps_effective": b.sum() / busy if busy > 0 else np.nan,
        "gbps_p50": float(np.percentile(per, 50)) if per.size else np.nan,
        "gbps_p95": float(np.percentile(per, 95)) if per.size else np.nan,
        "gbps_max": float(per.max()) if per.size else np.nan,
    }


def link_bandwidth(trace: Trace, io: pd.DataFrame, peaks: dict[str, float]) -> pd.DataFrame:
    """One row per link over the whole trace (LINK_COLUMNS). ``gbps_*`` in 1e9 B/s:
    ``gbps_effective`` = bytes / busy_ns; per-copy GB/s = bytes / duration at
    p50/p95/max (numpy linear percentiles); ``utilisation`` = effective / peak
    (null without a peak). The disk row has ``copy_kind`` "Disk-to-Host"."""
    m = trace.memcpy
    rows = []
    if not m.empty:
        m = m.assign(link=with_link_labels(m))
        for label, df in m.groupby("link", sort=True):  # one pass per link
            first = df.iloc[0]
            rows.append({"link": label, **{k: first[k] for k in LINK_KEYS}, **_stats(df)})
    if not io.empty:
        rows.append(
            {
                "link": link_label(S.DISK_TO_HOST, "Disk", "Host", None, None),
                "copy_kind": S.DISK_TO_HOST, "src_kind": "Disk", "dst_kind": "Host",
                "src_device": pd.NA, "dst_device": pd.NA, **_stats(io),
            }
        )
    out = pd.DataFrame(rows, columns=[c for c in LINK_COLUMNS if c not in ("peak_gbps", "utilisation")])
    out["src_device"] = out["src_device"].astype("Int64")
    out["dst_device"] = out["dst_device"].astype("Int64")
    out["peak_gbps"] = out["copy_kind"].map(lambda k: peaks.get(peak_kind(k) or "", np.nan)).astype("float64")
    out["utilisation"] = out["gbps_effective"] / out["peak_gbps"]
    for c in ("count", "bytes", "sum_dur_ns", "busy_ns"):
        out[c] = out[c].astype("int64")
    return out[LINK_COLUMNS]


def copies_with_links(trace: Trace, io: pd.DataFrame) -> pd.DataFrame:
    """Every transfer (memcpy rows and disk reads) with ``link``, ``copy_kind``,
    ``start_ns``, ``end_ns``, ``bytes``, ``pid``."""
    m = trace.memcpy
    parts = []
    if not m.empty:
        parts.append(m[["start_ns", "end_ns", "bytes", "pid", "copy_kind"]].assign(link=with_link_labels(m)))
    if not io.empty:
        parts.append(io[["start_ns", "end_ns", "bytes", "pid"]].assign(
            copy_kind=S.DISK_TO_HOST, link=link_label(S.DISK_TO_HOST, "Disk", "Host", None, None)))
    if not parts:
        return pd.DataFrame({"start_ns": [], "end_ns": [], "bytes": [], "pid": [], "copy_kind": [], "link": []})
    return pd.concat(parts, ignore_index=True)


def step_links(copies: pd.DataFrame, step_of: np.ndarray, links: pd.DataFrame) -> pd.DataFrame:
    """Per step and link: ``bytes`` and ``busy_ns`` (union) of the transfers whose
    start lies in the step, and ``floor_ns`` = bytes / the link's effective GB/s
    over the whole trace."""
    c = copies.assign(step=step_of)
    c = c[c["step"] >= 0]
    if c.empty:
        return pd.DataFrame({"step": pd.Series(dtype="int64"), "link": pd.Series(dtype=object), "bytes": pd.Series(dtype="int64"),
                             "busy_ns": pd.Series(dtype="int64"), "floor_ns": pd.Series(dtype="float64")})
    g = c.groupby(["step", "link"], sort=True)
    out = g.agg(bytes=("bytes", "sum")).reset_index()
    out["busy_ns"] = iv.grouped_total(g.ngroup().to_numpy(), c["start_ns"].to_numpy(), c["end_ns"].to_numpy(), len(out))
    eff = links.set_index("link")["gbps_effective"]
    out["floor_ns"] = out["bytes"] / out["link"].map(eff).to_numpy()
    out["bytes"] = out["bytes"].astype("int64")
    return out
