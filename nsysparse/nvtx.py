"""NVTX ranges and marks from ``NVTX_EVENTS``, as declared in :data:`nsysparse.schema.NVTX`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from . import schema as S
from .reader import Reader, categorical, recode

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


def _per_distinct(values: pd.Series, parse: Callable[[pd.Series], Any]) -> tuple[Any, np.ndarray]:
    """``parse`` of each distinct value of ``values`` (TEXT payloads: str or None) and
    each row's code into it (-1: null): a counter payload repeats a few values over a
    million ranges, and parsing strings is what costs."""
    codes, uniq = pd.factorize(values.to_numpy(dtype=object))
    return parse(pd.Series(uniq, dtype=object)), codes


def _payloads(df: pd.DataFrame) -> tuple[pd.arrays.IntegerArray, np.ndarray]:
    """Each row's payload exactly (Int64: the first integer payload column set) and
    as float64 (the first payload column set), null/NaN where none is: worked out
    on the rows that carry one only (most ranges carry none), each distinct TEXT
    value parsed once."""
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
    parsed, codes = _per_distinct(rows[[c for c in S.PAYLOAD_COLUMNS if "int" in c]].bfill(axis=1).iloc[:, 0],
                                  _exact_int)
    exact[at] = parsed.take(codes, allow_fill=True)  # code -1 (no integer column set): null
    first = np.full(len(rows), np.nan)
    for c in S.PAYLOAD_COLUMNS:  # the first column set wins, each parsed as float64
        col = rows[c]
        if "int" in c:
            values, codes = _per_distinct(col, lambda u: pd.to_numeric(u, errors="coerce").astype("float64"))
            v = np.append(values.to_numpy(dtype="float64"), np.nan)[codes]
        else:
            v = pd.to_numeric(col, errors="coerce").astype("float64").to_numpy()
        np.copyto(first, v, where=np.isnan(first))
    as_float[at] = first
    return exact, as_float


def _texts(text: pd.Series, ids: pd.Series, strings: pd.Series) -> pd.Categorical:
    """Each row's text as a Categorical without nulls: the inline ``text``, else the
    StringIds value of ``textId``, else "" (a registered string resolved once per id;
    a column the export lacks is read as all NULL)."""
    codes = np.full(len(text), -1, np.int64)
    values: dict[str, int] = {}
    own = text.notna().to_numpy()
    if own.any():
        c, u = pd.factorize(text.to_numpy(dtype=object)[own])
        codes[own] = c
        values = {v: i for i, v in enumerate(u)}
    by_id = ~own & ids.notna().to_numpy()
    if by_id.any():
        cat = categorical(strings, ids[by_id])
        into = np.array([values.setdefault(v, len(values)) for v in cat.categories], dtype=np.int64)
        codes[by_id] = recode(np.asarray(cat.codes), into)
    if (codes < 0).any():
        codes[codes < 0] = values.setdefault("", len(values))
    return pd.Categorical.from_codes(codes, categories=pd.Index(list(values), dtype=object))


def _domains(domain_id: np.ndarray, pid: np.ndarray, names: pd.DataFrame) -> pd.Categorical:
    """Each row's domain name as a Categorical: the name its process gave ``domainId``,
    "" for the default domain (0) and for an id no row named. ``names``: :func:`domains`'
    (one name per (domainId, pid): the merge below then keeps the keys' rows)."""
    d_codes, d_uniq = pd.factorize(domain_id)
    p_codes, p_uniq = pd.factorize(pid)
    width = max(len(p_uniq), 1)
    codes, pairs = pd.factorize(d_codes.astype(np.int64) * width + p_codes)  # each (domainId, pid) seen
    keys = pd.DataFrame({"domainId": d_uniq[pairs // width], "pid": p_uniq[pairs % width]})
    named = keys.merge(names, on=["domainId", "pid"], how="left")["domain"]  # in the keys' order
    per_key = named.astype(object).where(keys["domainId"].to_numpy() != 0, "").fillna("").to_numpy(dtype=object)
    vcodes, categories = pd.factorize(per_key)
    return pd.Categorical.from_codes(vcodes[codes], categories=pd.Index(categories, dtype=object))


def _rows(rd: Reader, strings: pd.Series, domain_names: pd.DataFrame, event_types: tuple[int, ...],
          label: str) -> pd.DataFrame | None:
    """The NVTX rows of ``event_types`` with names resolved: ``name``, ``domain`` and
    ``text`` (Categoricals: a million ranges of a dozen names are a dozen strings,
    and every step is on codes), ``pid``, ``tid``, ``payload`` (float64) and
    ``payload_int`` (exact)."""
    marks = ",".join("?" * len(event_types))
    df = rd.read(S.NVTX, f"eventType IN ({marks})", event_types, label=label)
    if df is None:
        return None
    df["payload_int"], df["payload"] = _payloads(df)
    df = df.drop(columns=list(S.PAYLOAD_COLUMNS))
    # texts registered as strings come as textId: map ids through StringIds once per distinct id
    text = _texts(df.pop("text"), df.pop("textId"), strings)
    gt = df["globalTid"].astype("int64").to_numpy()
    df["pid"] = S.pid_of(gt)
    df["tid"] = S.tid_of(gt)
    domain = _domains(df["domainId"].fillna(0).astype("int64").to_numpy(), df["pid"].to_numpy(), domain_names)
    df["domain"], df["text"], df["name"] = domain, text, _join_names(domain, text)
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
            "name": df["name"].array,
            "domain": df["domain"].array,
            "text": df["text"].array,
            "start_ns": start.to_numpy(),
            "end_ns": end.to_numpy(),
            "dur_ns": (end - start).to_numpy(),
            "pid": df["pid"].to_numpy(dtype="int64"),
            "tid": df["tid"].to_numpy(dtype="int64"),
            "end_tid": pd.Series(end_tid, dtype="Int64").where(cross).array,
            "kind": pd.Categorical.from_codes(pd.Index(list(S.RANGE_KIND)).get_indexer(df["eventType"].to_numpy()),
                                              categories=pd.Index(list(S.RANGE_KIND.values()), dtype=object)),
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
            "name": df["name"].array,
            "ts_ns": df["start"].astype("int64").to_numpy(),
            "pid": df["pid"].to_numpy(dtype="int64"),
            "tid": df["tid"].to_numpy(dtype="int64"),
            "payload": df["payload"].astype("float64").to_numpy(),
            "payload_int": df["payload_int"].array,
        }
    ).sort_values("ts_ns", ignore_index=True)
    return S.conform(out, S.MARKS_OUT)


def _join_names(domain: pd.Categorical, text: pd.Categorical) -> pd.Categorical:
    """``domain:text`` per row, built once per distinct pair and shared between rows."""
    nt = max(len(text.categories), 1)
    pair = np.asarray(domain.codes, np.int64) * nt + np.asarray(text.codes, np.int64)
    uniq, inv = np.unique(pair, return_inverse=True)
    d, t = domain.categories, text.categories
    names = [f"{d[p // nt]}:{t[p % nt]}" for p in uniq.tolist()]
    vcodes, categories = pd.factorize(np.asarray(names, dtype=object))  # pairs that join alike share a name
    return pd.Categorical.from_codes(vcodes[inv.ravel()], categories=pd.Index(categories, dtype=object))


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
    start, end = r["start_ns"].to_numpy(), r["end_ns"].to_numpy()
    thread, threads = pd.factorize(r["pid"].to_numpy(np.int64) * (1 << 24) + r["tid"].to_numpy(np.int64))
    if bool(((start[1:] > start[:-1]) | ((start[1:] == start[:-1]) & (end[1:] <= end[:-1]))).all()):
        # in (start, longer first) order, as nvtx_ranges sorts them: a stable sort by thread
        # alone orders them by (thread, start, -end), ties as they are, as the lexsort below
        # would (1M ranges: a radix sort of a few thread codes, not a sort on four keys)
        order = np.argsort(thread.astype(np.int32 if len(threads) > 1 << 15 else np.int16), kind="stable")
    else:
        order = np.lexsort((-end, start, thread))
    thread, end = thread[order], end[order]
    ptr = np.arange(n, dtype=np.int64) - 1
    ptr[0] = -1
    ptr[1:][thread[1:] != thread[:-1]] = -1
    # only a row whose pointer moved can point too early again: the rest are settled
    bad = np.flatnonzero(ptr >= 0)
    while bad.size:
        bad = bad[end[ptr[bad]] < end[bad]]
        ptr[bad] = ptr[ptr[bad]]
        bad = bad[ptr[bad] >= 0]
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
