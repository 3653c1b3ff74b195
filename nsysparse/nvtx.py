"""NVTX ranges and marks from ``NVTX_EVENTS``, as declared in :data:`nsysparse.schema.NVTX`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import schema as S
from .reader import Reader, categorical

_INT64_MAX = "9223372036854775807"


def domains(rd: Reader) -> pd.DataFrame:
    """Domain names keyed by (domainId, pid): domain ids are per process."""
    df = rd.read(S.NVTX, "eventType = ?", (S.NVTX_DOMAIN_CREATE,), label="NVTX domain")
    if df is None or df.empty:
        return pd.DataFrame({"domainId": pd.Series(dtype="int64"), "pid": pd.Series(dtype="int64"),
                             "domain": pd.Series(dtype=object)})
    df = df[df["domainId"].notna()]
    out = pd.DataFrame({"domainId": df["domainId"].astype("int64").to_numpy(),
                        "pid": S.pid_of(df["globalTid"].astype("int64")),
                        "domain": df["text"].to_numpy(dtype=object)})
    return out.drop_duplicates(["domainId", "pid"], keep="last")


def _exact_int(text: pd.Series) -> pd.arrays.IntegerArray:
    """Integer payloads read as TEXT, exactly, as Int64; anything else (none, a float,
    a value past int64) null."""
    s = text.astype(object).where(text.notna(), None)
    st = s.astype(str)
    digits = st.str.lstrip("-")
    n = digits.str.len()
    ok = s.notna() & st.str.fullmatch(r"-?\d+") & ((n < 19) | ((n == 19) & (digits <= _INT64_MAX)))
    vals = pd.to_numeric(s.where(ok, None), errors="coerce", dtype_backend="numpy_nullable")
    return pd.array(vals, dtype="Int64") if len(vals) else pd.array([], dtype="Int64")


def _payloads(df: pd.DataFrame) -> tuple[pd.arrays.IntegerArray, np.ndarray]:
    """Each row's payload exactly (Int64: the first integer payload column set) and
    as float64 (the first payload column set), null/NaN where none is: worked out
    on the rows that carry one only (most ranges carry none)."""
    n = len(df)
    exact = pd.arrays.IntegerArray(np.zeros(n, np.int64), np.ones(n, bool))  # all null
    as_float = np.full(n, np.nan)
    has = np.zeros(n, bool)
    for c in S.PAYLOAD_COLUMNS:
        has |= df[c].notna().to_numpy()
    if not has.any():
        return exact, as_float
    rows = df.loc[has, list(S.PAYLOAD_COLUMNS)]
    at = np.flatnonzero(has)
    exact[at] = _exact_int(rows[[c for c in S.PAYLOAD_COLUMNS if "int" in c]].bfill(axis=1).iloc[:, 0])
    values = [pd.to_numeric(rows[c], errors="coerce").astype("float64") for c in S.PAYLOAD_COLUMNS]
    first = values[0]
    for more in values[1:]:
        first = first.fillna(more)
    as_float[at] = first.to_numpy(dtype="float64")
    return exact, as_float


def _rows(rd: Reader, strings: pd.Series, domain_names: pd.DataFrame, event_types: tuple[int, ...],
          label: str) -> pd.DataFrame | None:
    """The NVTX rows of ``event_types`` with names resolved: ``name``, ``domain``,
    ``text``, ``pid``, ``tid``, ``payload`` (float64) and ``payload_int`` (exact)."""
    marks = ",".join("?" * len(event_types))
    df = rd.read(S.NVTX, f"eventType IN ({marks})", event_types, label=label)
    if df is None:
        return None
    df["payload_int"], df["payload"] = _payloads(df)
    df = df.drop(columns=list(S.PAYLOAD_COLUMNS))
    # texts registered as strings come as textId: map ids through StringIds once per
    # distinct id (a polling range firing a million times is one string, not a million)
    ids = df.pop("textId")
    if ids.notna().any():
        from_id = np.asarray(categorical(strings, ids), dtype=object)
        df["text"] = df["text"].astype(object).where(df["text"].notna(), from_id)
    gt = df["globalTid"].astype("int64")
    df["pid"] = S.pid_of(gt)
    df["tid"] = S.tid_of(gt)
    df["domainId"] = df["domainId"].fillna(0).astype("int64")
    df = df.merge(domain_names, on=["domainId", "pid"], how="left")
    df["domain"] = df["domain"].astype(object).where(df["domainId"] != 0, "").fillna("")
    df["text"] = df["text"].astype(object).fillna("")
    df["name"] = _join_names(df["domain"], df["text"])
    return df


def nvtx_ranges(rd: Reader, strings: pd.Series, domain_names: pd.DataFrame, capture_end: int) -> pd.DataFrame:
    """NVTX push/pop and start/end ranges, one row per range (columns: Trace.nvtx_ranges)."""
    df = _rows(rd, strings, domain_names, S.NVTX_RANGE_TYPES, "NVTX range")
    if df is None or df.empty:
        return S.empty_frame(S.NVTX_RANGES_OUT)
    closed = df["end"].notna() & (df["end"] != capture_end)
    end = df["end"].fillna(capture_end).astype("int64")
    start = df["start"].astype("int64")
    end_gt = df["endGlobalTid"]
    end_tid = S.tid_of(end_gt.fillna(0).astype("int64"))
    cross = (end_gt.notna() & (end_gt.fillna(0).astype("int64") != df["globalTid"].astype("int64"))).to_numpy()
    out = pd.DataFrame(
        {
            "name": df["name"].to_numpy(dtype=object),
            "domain": df["domain"].to_numpy(dtype=object),
            "text": df["text"].to_numpy(dtype=object),
            "start_ns": start.to_numpy(),
            "end_ns": end.to_numpy(),
            "dur_ns": (end - start).to_numpy(),
            "pid": df["pid"].to_numpy(dtype="int64"),
            "tid": df["tid"].to_numpy(dtype="int64"),
            "end_tid": pd.Series(end_tid, dtype="Int64").where(cross).array,
            "kind": df["eventType"].map(S.RANGE_KIND).to_numpy(dtype=object),
            "payload": df["payload"].astype("float64").to_numpy(),
            "closed": closed.to_numpy(),
        },
        copy=False,
    )
    del df, closed, end, start, end_gt, end_tid, cross
    out = S.sorted_by_start(out, "start_ns", desc="end_ns", consume=True)  # ties: the longer (enclosing) range first
    out.insert(0, "range_id", np.arange(len(out), dtype=np.int64))
    depth, parent = _nesting(out)
    out["depth"] = depth
    out["parent"] = pd.Series(parent, dtype="Int64").where(parent >= 0).array
    return S.conform(out, S.NVTX_RANGES_OUT)


def marks(rd: Reader, strings: pd.Series, domain_names: pd.DataFrame) -> pd.DataFrame:
    """NVTX marks (columns: Trace.marks)."""
    df = _rows(rd, strings, domain_names, (S.NVTX_MARK,), "NVTX mark")
    if df is None or df.empty:
        return S.empty_frame(S.MARKS_OUT)
    out = pd.DataFrame(
        {
            "name": df["name"].to_numpy(dtype=object),
            "ts_ns": df["start"].astype("int64").to_numpy(),
            "pid": df["pid"].to_numpy(dtype="int64"),
            "tid": df["tid"].to_numpy(dtype="int64"),
            "payload": df["payload"].astype("float64").to_numpy(),
            "payload_int": df["payload_int"].array,
        }
    ).sort_values("ts_ns", ignore_index=True)
    return S.conform(out, S.MARKS_OUT)


def _join_names(domain: pd.Series, text: pd.Series) -> np.ndarray:
    """``domain:text`` per row, built once per distinct pair and shared between rows."""
    d_codes, d_uniq = pd.factorize(domain.astype(object))
    t_codes, t_uniq = pd.factorize(text.astype(object))
    if len(domain) == 0:
        return np.empty(0, dtype=object)
    pair = d_codes.astype(np.int64) * max(len(t_uniq), 1) + t_codes
    uniq, inv = np.unique(pair, return_inverse=True)
    names = np.array([f"{d_uniq[p // max(len(t_uniq), 1)]}:{t_uniq[p % max(len(t_uniq), 1)]}" for p in uniq], dtype=object)
    return names[inv]



def _nesting(r: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Depth and parent ``range_id`` of each range among the ranges of its thread.

    The parent is the nearest range of the same (pid, tid) that started no
    later and ends no earlier (it encloses this one); depth counts enclosing
    ranges. Start/end ranges may overlap without nesting: such a range is not
    the parent of the one it overlaps. Vectorised by pointer jumping: each row
    points at the previous row of its thread, and a pointer to a row that ends
    too early jumps to that row's own pointer (every row skipped on the way
    ends earlier still), so the rounds number O(log n), not one per row.
    """
    n = len(r)
    depth = np.zeros(n, dtype=np.int64)
    parent = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return depth, parent
    order = np.lexsort((-r["end_ns"].to_numpy(), r["start_ns"].to_numpy(), r["tid"].to_numpy(), r["pid"].to_numpy()))
    pid = r["pid"].to_numpy()[order]
    tid = r["tid"].to_numpy()[order]
    end = r["end_ns"].to_numpy()[order]
    ptr = np.arange(n, dtype=np.int64) - 1
    ptr[0] = -1
    ptr[1:][(pid[1:] != pid[:-1]) | (tid[1:] != tid[:-1])] = -1
    while True:
        bad = np.flatnonzero(ptr >= 0)
        bad = bad[end[ptr[bad]] < end[bad]]
        if bad.size == 0:
            break
        ptr[bad] = ptr[ptr[bad]]
    d = np.zeros(n, dtype=np.int64)
    known = ptr < 0
    while not known.all():
        newly = np.flatnonzero(~known)
        newly = newly[known[ptr[newly]]]
        d[newly] = d[ptr[newly]] + 1
        known[newly] = True
    depth[order] = d
    parent[order] = np.where(ptr >= 0, order[np.maximum(ptr, 0)], -1)
    return depth, parent  # row position == range_id
