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
from pandas.api.types import union_categoricals

from . import intervals as iv
from . import schema as S

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


def default_peaks(gpus: pd.DataFrame) -> dict[str, float]:
    """H2D and D2H peak GB/s from the GPUs' compute capability: 64 for 9.x and
    later (PCIe Gen5 x16), 32 before (Gen4 x16). D2D, P2P and disk: none."""
    g = gpus
    if g.empty or "compute_major" not in g or g["compute_major"].isna().all():
        return {}
    major = int(g["compute_major"].max())
    peak = 64.0 if major >= 9 else 32.0
    return {"H2D": peak, "D2H": peak}


def with_link_labels(memcpy: pd.DataFrame) -> pd.Series:
    """The link label of each copy: one label built per distinct link, then
    gathered by group code (no Python work per row)."""
    if memcpy.empty:
        return pd.Series([], dtype=object)
    codes = memcpy.groupby(LINK_KEYS, dropna=False, sort=False, observed=True).ngroup().to_numpy()
    _, first = np.unique(codes, return_index=True)  # codes are 0..k-1: the first row of each
    keys = memcpy[LINK_KEYS].iloc[first].astype(object)
    labels = np.array([link_label(*k) for k in keys.itertuples(index=False, name=None)], dtype=object)
    return pd.Series(labels[codes], index=memcpy.index, dtype=object)


def copy_category(copy_kind: pd.Series, src_kind: pd.Series) -> np.ndarray:
    """The class of each copy, as the charts colour it and the breakdown names it:
    ``H2D pinned``, ``H2D pageable``, ``D2H``, ``D2D``, ``P2P`` or ``other copy``
    (host-to-host, arrays, unknown kinds)."""
    ck = copy_kind.astype(object).to_numpy()
    sk = src_kind.astype(object).to_numpy()
    out = np.full(len(ck), "other copy", dtype=object)
    out[ck == S.H2D] = "H2D pageable"
    out[(ck == S.H2D) & (sk == "Pinned")] = "H2D pinned"
    for kind in (S.D2H, S.D2D, S.P2P):
        out[ck == kind] = S.LINK_KIND_OF_COPY[kind]
    return out


DISK_LINK = link_label(S.DISK_TO_HOST, "Disk", "Host", None, None)
COPY_COLUMNS = ["start_ns", "end_ns", "dur_ns", "bytes", "pid", "tid", "device", "stream", "copy_kind", "src_kind",
                "dst_kind", "src_device", "dst_device", "link", "category", "gbps"]


def disk_reads(ranges: pd.DataFrame, io_range: str) -> pd.DataFrame:
    """NVTX I/O ranges named ``io_range`` that carry a byte payload:
    ``start_ns``, ``end_ns``, ``dur_ns``, ``pid``, ``tid``, ``bytes``."""
    io = ranges[(ranges["text"] == io_range) & ranges["payload"].notna()]
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


def copies_table(memcpy: pd.DataFrame, io: pd.DataFrame) -> pd.DataFrame:
    """Every transfer, memcpy rows then disk reads, in one table (COPY_COLUMNS):
    times and ``bytes``; ``pid``; ``tid`` (the launching thread of a copy, the
    reading thread of a disk read); ``device``/``stream`` (null for disk reads);
    the link keys and ``link`` label (links.parquet's); ``category`` (the copy's
    class, :func:`copy_category`, or ``disk``); ``gbps`` (bytes / duration, 1e9
    B/s; null for a zero-length transfer). The five text columns are categoricals
    (their files hold plain text). Built once per report: links, steps,
    layers, charts and diff all read it."""
    n = len(io)

    def ints(col: str) -> np.ndarray:
        return np.concatenate([memcpy[col].to_numpy(dtype=np.int64), io[col].to_numpy(dtype=np.int64)])

    def nullable(col: str, disk: str | None = None) -> pd.arrays.IntegerArray:
        """The memcpy rows' column ``col``, then the disk reads' ``disk`` (null without)."""
        m = pd.array(memcpy[col], dtype="Int64")
        d = pd.array(io[disk], dtype="Int64") if disk else pd.array(np.zeros(n, np.int64), dtype="Int64")
        values = np.concatenate([m.to_numpy(np.int64, na_value=0), d.to_numpy(np.int64, na_value=0)])
        return pd.arrays.IntegerArray(values, np.concatenate([m.isna(), d.isna() if disk else np.ones(n, bool)]))

    def text(values: object, disk: str) -> pd.Categorical | np.ndarray:
        """The memcpy rows' labels, then ``disk`` for every disk read, as one categorical
        (categories in text order): a code per copy, not a string (2M copies at 5 GB)."""
        values = np.asarray(values, dtype=object)
        if not values.size:  # no copy: the disk reads' value (none either: the column as it came)
            return pd.Categorical.from_codes(np.zeros(n, np.int8), pd.Index([disk], dtype=object)) if n else values
        cat = pd.Categorical(values)
        if not n:
            return cat
        reads = pd.Categorical.from_codes(np.zeros(n, np.int8), pd.Index([disk], dtype=cat.categories.dtype))
        return union_categoricals([cat, reads], sort_categories=True)

    out = pd.DataFrame({
        "start_ns": ints("start_ns"), "end_ns": ints("end_ns"), "dur_ns": ints("dur_ns"), "bytes": ints("bytes"),
        "pid": ints("pid"),
        "tid": nullable("launch_tid", "tid"),
        "device": nullable("device"),
        "stream": nullable("stream"),
        "copy_kind": text(memcpy["copy_kind"], S.DISK_TO_HOST),
        "src_kind": text(memcpy["src_kind"], "Disk"),
        "dst_kind": text(memcpy["dst_kind"], "Host"),
        "src_device": nullable("src_device"),
        "dst_device": nullable("dst_device"),
        "link": text(with_link_labels(memcpy), DISK_LINK),
        "category": text(copy_category(memcpy["copy_kind"], memcpy["src_kind"]), "disk"),
    })
    dur = out["dur_ns"].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["gbps"] = np.where(dur > 0, out["bytes"].to_numpy(dtype=np.float64) / dur, np.nan)  # bytes/ns == GB/s
    return out[COPY_COLUMNS]


def _stats(b: np.ndarray, d: np.ndarray, exact: np.ndarray, start: np.ndarray, end: np.ndarray) -> dict[str, float]:
    """One link's figures from its transfers' bytes (as floats and ``exact``), durations, starts and ends."""
    per = b[d > 0] / d[d > 0]  # bytes/ns == GB/s (1e9 bytes per second)
    busy = iv.total(start, end)
    return {
        "count": exact.size,
        "bytes": int(iv.saturating_sums(np.zeros(exact.size, dtype=np.int64), exact, 1)[0]),
        "sum_dur_ns": int(d.sum()),
        "busy_ns": busy,
        "gbps_effective": b.sum() / busy if busy > 0 else np.nan,
        "gbps_p50": float(np.percentile(per, 50)) if per.size else np.nan,
        "gbps_p95": float(np.percentile(per, 95)) if per.size else np.nan,
        "gbps_max": float(per.max()) if per.size else np.nan,
    }


def _by_label(labels: np.ndarray, rows: np.ndarray) -> list[tuple[object, np.ndarray]]:
    """``rows`` grouped by their ``labels`` (in label order; a null label in no
    group), each group's rows in table order: a sort of codes, no copy of the
    table per group."""
    codes, uniques = pd.factorize(labels, sort=True)
    order = np.argsort(codes, kind="stable")
    cuts = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    return [(uniques[i], rows[order[cuts[i]:cuts[i + 1]]]) for i in range(len(uniques))]


def link_bandwidth(copies: pd.DataFrame, peaks: dict[str, float]) -> pd.DataFrame:
    """One row per link over the whole trace (LINK_COLUMNS), from
    :func:`copies_table`. ``gbps_*`` in 1e9 B/s: ``gbps_effective`` = bytes /
    busy_ns; per-copy GB/s = bytes / duration at p50/p95/max (numpy linear
    percentiles); ``utilisation`` = effective / peak (null without a peak). The
    disk row has ``copy_kind`` "Disk-to-Host" and comes last."""
    rows = []
    disk = (copies["copy_kind"] == S.DISK_TO_HOST).to_numpy(dtype=bool, na_value=False)  # no Python string per copy
    link = copies["link"].to_numpy(dtype=object)
    b, d = copies["bytes"].to_numpy(dtype=np.float64), copies["dur_ns"].to_numpy(dtype=np.float64)
    exact = copies["bytes"].to_numpy(dtype=np.int64)
    start, end = copies["start_ns"].to_numpy(), copies["end_ns"].to_numpy()
    for part in (np.flatnonzero(~disk), np.flatnonzero(disk)):  # copies by label, then the disk row
        for label, at in _by_label(link[part], part):  # one pass per link: its rows gathered, not the table
            first = copies.iloc[int(at[0])]
            rows.append({"link": label, **{k: first[k] for k in LINK_KEYS},
                         **_stats(b[at], d[at], exact[at], start[at], end[at])})
    out = pd.DataFrame(rows, columns=[c for c in LINK_COLUMNS if c not in ("peak_gbps", "utilisation")])
    out["src_device"] = out["src_device"].astype("Int64")
    out["dst_device"] = out["dst_device"].astype("Int64")
    out["peak_gbps"] = out["copy_kind"].map(lambda k: peaks.get(peak_kind(k) or "", np.nan)).astype("float64")
    out["utilisation"] = out["gbps_effective"] / out["peak_gbps"]
    for c in ("count", "bytes", "sum_dur_ns", "busy_ns"):
        out[c] = out[c].astype("int64")
    return out[LINK_COLUMNS]


def step_links(copies: pd.DataFrame, step_of: np.ndarray, links: pd.DataFrame) -> pd.DataFrame:
    """Per step and link: ``bytes`` and ``busy_ns`` (union) of the transfers whose
    start lies in the step, and ``floor_ns`` = bytes / the link's effective GB/s
    over the whole trace. In (step, link) order, from a (step, link) code per
    transfer in a step: the transfers' table is not copied."""
    at = np.flatnonzero(step_of >= 0)
    lcode, labels = pd.factorize(copies["link"].to_numpy(dtype=object)[at], sort=True)
    if (lcode < 0).any():  # a null label is in no group
        at, lcode = at[lcode >= 0], lcode[lcode >= 0]
    if at.size == 0:
        return pd.DataFrame({"step": pd.Series(dtype="int64"), "link": pd.Series(dtype=object), "bytes": pd.Series(dtype="int64"),
                             "busy_ns": pd.Series(dtype="int64"), "floor_ns": pd.Series(dtype="float64")})
    n = len(labels)
    key = step_of[at].astype(np.int64) * n + lcode
    groups = iv.distinct(key)
    code = np.searchsorted(groups, key)
    out = pd.DataFrame({"step": groups // n, "link": np.asarray(labels, dtype=object)[groups % n]})
    out["bytes"] = iv.saturating_sums(code, copies["bytes"].to_numpy(dtype=np.int64)[at], len(out))
    out["busy_ns"] = iv.grouped_total(code, copies["start_ns"].to_numpy()[at], copies["end_ns"].to_numpy()[at], len(out))
    eff = links.set_index("link")["gbps_effective"]
    out["floor_ns"] = out["bytes"] / out["link"].map(eff).to_numpy()
    out["bytes"] = out["bytes"].astype("int64")
    return out

