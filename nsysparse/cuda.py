"""CUDA API calls, GPU ops, synchronisation, GPUs, threads and OS runtime calls,
each read through its declaration in :mod:`nsysparse.schema`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from . import schema as S
from .errors import NotAnExport
from .intervals import ascending
from .reader import Reader, categorical, recode


def decode(rd: Reader, codes: pd.Series, enum: S.Table, what: str) -> np.ndarray:
    """Labels of ``codes``: through the export's ENUM table when it has one, else
    through the documented numeric codes (schema.py names their source), with a note."""
    labels = rd.lookup(enum, "id", "label")
    if labels.empty:
        table = enum.name
        rd.note(f"the export has no {table}: {what} decoded from the codes nsys documents there")
        mapping: dict = enum.extra["codes"]
    else:
        mapping = {int(k): str(v) for k, v in labels.items()}
    # each distinct code looked up once (as Series.map looks a value up: 1.0 finds 1, NaN
    # nothing), the rows sharing its label's one string (mapped per row, pandas 3 makes
    # Arrow strings and then a Python string per row: 1M copies, 55 MB a column)
    at, uniq = pd.factorize(np.asarray(codes, dtype=object) if codes.dtype == object else codes.to_numpy())
    found = [mapping.get(u, S.UNKNOWN_LABEL) if not (isinstance(u, float) and u != u) else S.UNKNOWN_LABEL
             for u in uniq.tolist()]
    return np.array(found + [S.UNKNOWN_LABEL], dtype=object)[at]


def int64(col: pd.Series, fill: int | None = None) -> np.ndarray:
    """A raw integer column as int64: the reader's own array when it is int64 already
    (no copy: the built table takes it over and the raw frame's goes), else
    converted, nulls as ``fill``."""
    if col.dtype == np.int64:
        return col.to_numpy(copy=False)
    return (col if fill is None else col.fillna(fill)).astype("int64").to_numpy()


def api_calls(rd: Reader, strings: pd.Series) -> pd.DataFrame:
    """CUDA runtime and driver API calls (columns: Trace.api_calls)."""
    df = rd.read(S.RUNTIME)
    if df is None or df.empty:
        return S.empty_frame(S.RUNTIME.out)
    names = categorical(strings, df["nameId"])
    stripped = [S.BASE_NAME_SUFFIX.sub("", str(n)) for n in names.categories]  # per distinct name
    bcodes, bcats = pd.factorize(np.asarray(stripped, dtype=object))
    base = pd.Categorical.from_codes(recode(names.codes, bcodes), categories=pd.Index(bcats, dtype=object))
    gt = df["globalTid"].astype("int64")
    out = pd.DataFrame(
        {
            "name": names,
            "base_name": base,
            "start_ns": int64(df["start"]),
            "end_ns": int64(df["end"]),
            "pid": S.pid_of(gt),
            "tid": S.tid_of(gt),
            "correlation_id": int64(df["correlationId"], fill=-1),
            "return_value": pd.array(df["returnValue"].astype("Int64"), dtype="Int64"),
        },
        copy=False,  # each column its own array: no 2-D copy of 15M rows
    )
    del df, gt, names, base  # the raw columns not taken over are freed before the sort
    out["dur_ns"] = out["end_ns"] - out["start_ns"]
    return S.conform(S.sorted_by_start(out, consume=True), S.RUNTIME.out)


def launch_key(pid: np.ndarray, corr: np.ndarray, none: int = -1) -> np.ndarray:
    """The key joining a GPU op to the API call that launched it: process and
    correlation id in one int64 (ids repeat across processes), ``none`` where
    the correlation id is missing (negative)."""
    corr = np.asarray(corr, dtype=np.int64)
    key = np.array(pid, dtype=np.int64)  # shifted and joined in place: two arrays of the ops' length, not five
    key <<= 32
    key |= corr & 0xFFFFFFFF
    key[corr < 0] = none
    return key


class Ops:
    """GPU-op tables joined to the API calls that launched them."""

    def __init__(self, rd: Reader, strings: pd.Series, api: pd.DataFrame) -> None:
        self.rd, self.strings, self.api = rd, strings, api
        key = launch_key(api["pid"].to_numpy(), api["correlation_id"].to_numpy())
        if ascending(key):  # one process's calls in start order carry rising ids: no sort, no order array
            self.keys, self.order = key, None
        else:
            order = np.argsort(key, kind="stable")  # stable: the first call of a duplicated key wins
            self.keys, self.order = key[order], order

    def launching_call(self, pid: np.ndarray, corr: np.ndarray) -> np.ndarray:
        """Row of the API calls that launched each op (same process and correlation id), or -1."""
        if self.keys.size == 0:
            return np.full(len(pid), -1, dtype=np.int64)
        q = launch_key(pid, corr, none=-2)  # -2: no call's key (-1 for none) meets it
        i = np.clip(np.searchsorted(self.keys, q), 0, self.keys.size - 1)
        hit = self.keys[i] == q
        return np.where(hit, i if self.order is None else self.order[i], -1)

    def pids(self, decl: S.Table, raw: pd.DataFrame) -> np.ndarray:
        """pid of each op from globalPid; where it is missing (a trimmed export), the
        one process of the API calls, or a clean error when there are several."""
        gp = raw["globalPid"]
        if gp.notna().all():
            return S.pid_of(gp.astype("int64"))
        table = self.rd.resolve(decl)
        procs = np.unique(self.api["pid"].to_numpy())
        if len(procs) > 1 and "globalPid" not in self.rd.columns(table or ""):
            raise NotAnExport(
                self.rd.path,
                f"table {table} has no column globalPid and the trace holds {len(procs)} processes: "
                "its GPU ops cannot be matched to their calls; export the .nsys-rep again",
            )
        fill = int(procs[0]) if len(procs) == 1 else 0
        if len(procs) == 1:
            self.rd.note(f"{table}: globalPid missing on {int(gp.isna().sum()):,} rows: the one process ({fill}) assumed")
        return np.where(gp.notna().to_numpy(), S.pid_of(gp.fillna(0).astype("int64")), fill)

    def rows(self, decl: S.Table, raw: pd.DataFrame) -> dict[str, Any]:
        """Common GPU-op columns of ``raw`` (column -> array; ``deviceId``,
        ``streamId`` and ``globalPid`` taken out of it), joined to the launching
        API call on (correlationId, pid): correlation ids repeat across processes.
        Columns, not a frame: :meth:`build` makes the frame once, from every
        column (pandas 3 copies an array set into a frame as a column: 14M kernels'
        launching calls, 0.4 GB of copies beside their sources)."""
        start, end = int64(raw["start"]), int64(raw["end"])
        # the raw columns built into new arrays are taken out of ``raw`` (the build's
        # own) as they are: each is freed once built, not at the build's end
        cols: dict[str, Any] = {
            "start_ns": start,
            "end_ns": end,
            "device": int64(raw.pop("deviceId")),
            "stream": int64(raw.pop("streamId")),
            "pid": self.pids(decl, raw),
            "correlation_id": int64(raw["correlationId"], fill=-1),
        }
        del raw["globalPid"]
        cols["dur_ns"] = end - start
        found, name, calls = self.launch(decl, cols["pid"], cols["correlation_id"])
        n = start.size
        if not found.any():
            cols["api"] = pd.Categorical(np.full(n, None, dtype=object))
            for col in ("launch_tid", "api_start_ns", "api_end_ns"):
                cols[col] = pd.array([pd.NA] * n, dtype="Int64")
            return cols
        cols["api"] = name
        for col, values in zip(("launch_tid", "api_start_ns", "api_end_ns"), calls):
            # the gathered values with a null where no call was found: one array, no copies of it
            cols[col] = pd.arrays.IntegerArray(np.where(found, values, 0) if not found.all() else values, ~found)
        return cols

    def launch(self, decl: S.Table, pid: np.ndarray, corr: np.ndarray
               ) -> tuple[np.ndarray, pd.Categorical, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Of each op of ``decl``: whether its launching call was found, the call's
        name (categorical, null where not found) and its (tid, start, end)."""
        row = self.launching_call(pid, corr)
        found = row >= 0
        if not found.any():  # (no API calls at all, say: nothing to gather from)
            return found, pd.Categorical(np.full(row.size, None, dtype=object)), (row, row, row)
        take = np.maximum(row, 0)
        cat = self.api["name"].array  # categorical: gather its codes, share its names
        name = pd.Categorical.from_codes(recode(row, np.asarray(cat.codes)), dtype=cat.dtype)
        cols = tuple(self.api[src].to_numpy(np.int64)[take] for src in ("tid", "start_ns", "end_ns"))
        return found, name, cols  # type: ignore[return-value]

    def build(self, decl: S.Table, raw: pd.DataFrame | None) -> pd.DataFrame:
        """The normalised frame of one GPU-op table (``raw`` as read and
        :func:`compact`-ed, or None if absent; it is consumed: the columns built
        into others are taken out of it as they are)."""
        if raw is None or raw.empty:
            return S.empty_frame(decl.out)
        base = self.rows(decl, raw)
        if decl is S.KERNEL:
            base["name"] = raw["demangledName"].array
            base["short_name"] = raw["shortName"].array
            base["graph_node_id"] = raw["graphNodeId"].array
        elif decl is S.MEMCPY:
            base["bytes"] = int64(raw["bytes"])
            # labels as object Series: each row the label's one string (pandas 3 would make
            # an array of text of them, then conform a string per row back: 1M copies, +0.3 GB)
            kind = _text(decode(self.rd, raw["copyKind"], S.ENUM_MEMCPY, "copy kinds"))
            base["copy_kind"] = kind
            base["src_kind"] = _text(decode(self.rd, raw["srcKind"], S.ENUM_MEMKIND, "memory kinds"))
            base["dst_kind"] = _text(decode(self.rd, raw["dstKind"], S.ENUM_MEMKIND, "memory kinds"))
            dev = pd.Series(base["device"])
            none = pd.Series(pd.array([pd.NA] * len(dev), dtype="Int64"))
            src = none.mask(kind.isin([S.D2H, S.D2D]), dev)
            dst = none.mask(kind.isin([S.H2D, S.D2D]), dev)
            p2p = (kind == S.P2P).to_numpy()
            src = src.mask(p2p, raw["srcDeviceId"].astype("Int64"))
            dst = dst.mask(p2p, raw["dstDeviceId"].astype("Int64"))
            base["src_device"] = src.astype("Int64").array
            base["dst_device"] = dst.astype("Int64").array
        elif decl is S.MEMSET:
            base["bytes"] = int64(raw["bytes"])
        elif decl is S.GRAPH:
            base["graph_id"] = int64(raw["graphId"])
            base["graph_exec_id"] = int64(raw["graphExecId"])
        del raw
        frame = pd.DataFrame(base, copy=False)  # once, from every column: no column copied
        del base
        return S.conform(S.sorted_by_start(frame, consume=True), decl.out)


def _text(values: np.ndarray) -> pd.Series:
    """An object array of strings as an object Series, its strings as they are."""
    return pd.Series(values, dtype=object, copy=False)


def compact(decl: S.Table, raw: pd.DataFrame | None, strings: pd.Series) -> pd.DataFrame | None:
    """Raw rows of ``decl`` (as read) with the columns :meth:`Ops.build` turns into
    something narrower turned now (it takes them as they are then): a kernel's
    name ids as the names' categoricals (a small code per row, not an int64 id),
    its graph node ids as Int64. The loader does this as soon as a table is read,
    so that the rows waiting for their launching calls hold less (14M kernels:
    -200 MB while the API calls stream). The device and stream ids, read only to
    be built, are held as int32 where they fit (built back to int64), and graph
    node ids that are all null (kernels launched outside graphs) as zeros never
    written, which take no memory (14M kernels: -340 MB while the calls stream)."""
    if raw is None or raw.empty or decl is not S.KERNEL:
        return raw
    out = {}
    for c in raw.columns:
        col = raw[c]
        if c in ("demangledName", "shortName"):
            out[c] = categorical(strings, col)
        elif c == "graphNodeId":
            out[c] = (pd.arrays.IntegerArray(np.zeros(len(col), np.int64), np.ones(len(col), bool))
                      if col.isna().all() else col.astype("Int64").array)
        elif c in ("deviceId", "streamId") and col.dtype == np.int64 and _fits_int32(col.to_numpy()):
            out[c] = col.to_numpy().astype(np.int32)
        else:
            out[c] = col.array
    return pd.DataFrame(out, copy=False)


def _fits_int32(v: np.ndarray) -> bool:
    info = np.iinfo(np.int32)
    return not v.size or (int(v.min()) >= info.min and int(v.max()) <= info.max)


def sync_events(rd: Reader) -> pd.DataFrame:
    """CUPTI synchronization records (columns: Trace.sync_events)."""
    df = rd.read(S.SYNC)
    if df is None or df.empty:
        return S.empty_frame(S.SYNC.out)
    out = pd.DataFrame(
        {
            "start_ns": df["start"].astype("int64"),
            "end_ns": df["end"].astype("int64"),
            "device": df["deviceId"].astype("int64"),
            "stream": df["streamId"].astype("int64"),
            "pid": S.pid_of(df["globalPid"].fillna(0).astype("int64")),
            "correlation_id": df["correlationId"].fillna(-1).astype("int64"),
            "sync_type": decode(rd, df["syncType"], S.ENUM_SYNC, "sync types"),
        }
    )
    out["dur_ns"] = out["end_ns"] - out["start_ns"]
    return S.conform(out, S.SYNC.out)


def gpus(rd: Reader) -> pd.DataFrame:
    """GPUs (columns: Trace.gpus); capabilities from TARGET_INFO_CUDA_GPU where
    TARGET_INFO_GPU lacks them (exports before schema 2.9)."""
    df = rd.read(S.GPU)
    if df is None or df.empty:
        return S.empty_frame(S.GPU.out)
    df = df[df["cuDevice"].notna()]
    out = pd.DataFrame(
        {
            "device": df["cuDevice"].astype("int64").to_numpy(),
            "id": df["id"].astype("Int64").array,
            "name": df["name"].to_numpy(dtype=object),
            "compute_major": df["computeMajor"].astype("Int64").array,
            "compute_minor": df["computeMinor"].astype("Int64").array,
            "memory_bytes": df["totalMemory"].astype("Int64").array,
            "bus": df["busLocation"].to_numpy(dtype=object),
            "sm_count": df["smCount"].astype("Int64").array,
        }
    )
    if out["compute_major"].isna().any():
        cg = rd.read(S.CUDA_GPU)
        if cg is not None and not cg.empty:
            cg = cg.set_index(cg["deviceId"].astype("int64"))
            for col, src in (("compute_major", "computeCapabilityMajor"), ("compute_minor", "computeCapabilityMinor"),
                             ("memory_bytes", "globalMemorySize"), ("sm_count", "numMultiprocessors")):
                more = pd.Series(cg[src].reindex(out["device"]).to_numpy(), dtype="Int64")
                out[col] = pd.Series(out[col].array).fillna(more).array
    return S.conform(out.sort_values("device", ignore_index=True), S.GPU.out)


def threads(rd: Reader, strings: pd.Series) -> pd.DataFrame:
    """Thread names (columns: Trace.threads)."""
    df = rd.read(S.THREADS)
    if df is None or df.empty:
        return S.empty_frame(S.THREADS.out)
    gt = df["globalTid"].astype("int64")
    out = pd.DataFrame({"pid": S.pid_of(gt), "tid": S.tid_of(gt),
                        "name": strings.reindex(df["nameId"].to_numpy()).to_numpy(dtype=object)})
    return S.conform(out, S.THREADS.out)


def os_calls(rd: Reader, strings: pd.Series) -> pd.DataFrame:
    """OS runtime calls (``OSRT_API``, traced with ``-t osrt``): ``pid``, ``tid``,
    ``start_ns``, ``end_ns``, ``dur_ns`` (ns) and ``name`` (the call, e.g. ``pthread_cond_wait``)."""
    df = rd.read(S.OSRT)
    if df is None or df.empty:
        return S.empty_frame(S.OSRT.out)
    out = pd.DataFrame(
        {
            "global_tid": df["globalTid"].astype("int64").to_numpy(),
            "start_ns": df["start"].astype("int64").to_numpy(),
            "end_ns": df["end"].astype("int64").to_numpy(),
            "name": categorical(strings, df["nameId"]),
        },
        copy=False,
    )
    del df
    # sorted first (they are not in start order), then the columns derived from the sorted
    # ones: one int64 column sorted for pid and tid, none for the duration (2 GB: 8.7M
    # calls, three 70 MB columns fewer in the sort, while the kernels are read beside it)
    out = S.sorted_by_start(out, consume=True)
    gt = out.pop("global_tid").to_numpy()
    out["pid"] = S.pid_of(gt)
    out["tid"] = S.tid_of(gt)
    del gt
    out["dur_ns"] = out["end_ns"].to_numpy() - out["start_ns"].to_numpy()
    return S.conform(out, S.OSRT.out)
