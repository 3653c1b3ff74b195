"""Open an Nsight Systems SQLite export read-only and expose normalised tables.

``open_trace(path) -> Trace`` validates the file, probes once which tables and
columns exist, and builds each table lazily on first access. Every table is a
pandas DataFrame with times in integer nanoseconds (``*_ns``), names resolved
through ``StringIds`` and the ENUM tables, and ``globalTid`` split into
``pid``/``tid``. All SQL of the package lives in this module, with ``?``
parameters only.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
import os
import sqlite3
import urllib.parse
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from . import schema as S
from .errors import InputMissing, NotADatabase, NotAnExport

_SQLITE_MAGIC = b"SQLite format 3\x00"


def open_trace(path: str | os.PathLike[str]) -> "Trace":
    """Open ``path`` (an exported ``.sqlite``) read-only and check it is an nsys export.

    Raises :class:`InputMissing` (missing, unreadable, a directory),
    :class:`NotADatabase` (empty, not SQLite, corrupt) or :class:`NotAnExport`
    (no CUDA activity, unsupported schema).
    """
    p = Path(path)
    if not p.exists():
        raise InputMissing(p, "no such file; give the path of an exported .sqlite trace")
    if p.is_dir():
        raise InputMissing(p, "is a directory; give the path of an exported .sqlite trace")
    try:
        with p.open("rb") as fh:
            head = fh.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise InputMissing(p, f"cannot be read ({exc.strerror}); check its permissions") from None
    if not head:
        raise NotADatabase(p, "is empty; export the report again with `nsys export --type sqlite`")
    if head != _SQLITE_MAGIC:
        raise NotADatabase(
            p, "is not a SQLite database; export the .nsys-rep with `nsys export --type sqlite`"
        )
    return Trace(p)


@dataclass
class Trace:
    """A read-only view of one export. Tables are built on first access and cached."""

    path: Path
    _con: sqlite3.Connection = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # quote the path: '#', '?' and '%' in a file name would end or bend the URI
        uri = f"file:{urllib.parse.quote(self.path.resolve().as_posix())}?mode=ro"
        self._uri = uri  # query() opens its Arrow reader on the same read-only URI
        try:
            self._con = sqlite3.connect(uri, uri=True, check_same_thread=False)
            rows = self._con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        except sqlite3.DatabaseError as exc:
            raise NotADatabase(
                self.path, f"is corrupt or truncated ({exc}); export the .nsys-rep again"
            ) from None
        _check_not_truncated(self.path)
        self._sha256  # start hashing now, in the background
        self.tables: frozenset[str] = frozenset(r[0] for r in rows)
        self._columns: dict[str, frozenset[str]] = {}
        self._raw: dict[str, pd.DataFrame] = {}  # GPU-op rows read ahead by prefetch()
        if S.T_META not in self.tables and not any(t in self.tables for t in S.CUDA_TABLES):
            raise NotAnExport(
                self.path,
                "is SQLite but not an Nsight Systems export; run `nsys export --type sqlite` on the .nsys-rep",
            )
        major = self.schema_version.split(".")[0]
        if major.isdigit() and int(major) != S.SUPPORTED_SCHEMA_MAJOR:
            raise NotAnExport(
                self.path,
                f"export schema {self.schema_version} is not supported (major {S.SUPPORTED_SCHEMA_MAJOR}); "
                "export it with Nsight Systems 2023.2 or later",
            )
        if not any(t in self.tables for t in S.CUDA_TABLES):
            raise NotAnExport(
                self.path,
                "holds no CUDA activity: was the trace taken with `-t cuda` (nsys profile -t cuda,nvtx)?",
            )

    # ---- probing -------------------------------------------------------------------

    def has(self, table: str) -> bool:
        """Whether the export holds ``table`` (nsys writes a table only when it has data)."""
        return table in self.tables

    def columns(self, table: str) -> frozenset[str]:
        """The columns of ``table`` (empty if it does not exist)."""
        if table not in self._columns:
            if table not in self.tables:
                self._columns[table] = frozenset()
            else:
                info = self._con.execute("SELECT name FROM pragma_table_info(?)", (table,)).fetchall()
                self._columns[table] = frozenset(r[0] for r in info)
        return self._columns[table]

    def query(self, sql: str, params: tuple = ()) -> pd.DataFrame:
        """Run one read-only query into a DataFrame. A page that cannot be read
        (a corrupt file) is the user's :class:`NotADatabase`, not our bug.

        With ``adbc-driver-sqlite`` installed, rows go from SQLite straight into
        Arrow columns in C, 5-9x faster than ``pandas.read_sql_query`` building a
        Python tuple per row (benchmarks/RESULTS.md); the frame is the same:
        int64 columns, float64 where an integer column holds NULLs, object None
        where a column is all NULL. The driver infers a column's type from its
        first batch of rows and fails on a later mismatch; then, and on any other
        driver error or an empty result, the plain ``sqlite3`` path below runs
        and decides (its errors are the ones users see).
        """
        try:
            import adbc_driver_sqlite.dbapi as adbc
        except ImportError:
            adbc = None  # type: ignore[assignment]
        if adbc is not None:
            table = None
            try:
                with adbc.connect(self._uri) as con, con.cursor() as cur:
                    # a big first batch: type inference sees 64k rows, not 1k
                    cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": "65536"})
                    cur.execute(sql, tuple(params) if params else None)
                    table = cur.fetch_arrow_table()
            except Exception:  # noqa: BLE001 - the sqlite3 path below re-runs it and raises what applies
                table = None
            if table is not None and table.num_rows > 0:
                df = table.to_pandas()
                for name, col in zip(table.column_names, table.columns):
                    if col.null_count == len(col):  # read_sql_query's all-NULL column: object None
                        df[name] = pd.Series([None] * len(col), dtype=object)
                return df
        try:
            return pd.read_sql_query(sql, self._con, params=params)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "no such" in str(exc):
                raise  # a query of ours asked for what is not there: our bug
            raise NotADatabase(self.path, f"is corrupt ({exc}); export the .nsys-rep again") from None

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> "Trace":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- identity ----------------------------------------------------------------------

    @cached_property
    def meta(self) -> dict[str, str]:
        """``META_DATA_EXPORT`` as a dict (empty if absent)."""
        if not self.has(S.T_META):
            return {}
        return dict(self._con.execute(f"SELECT name, value FROM {S.T_META}").fetchall())

    @property
    def nsys_version(self) -> str:
        return self.meta.get("EXPORT_PRODUCT_VERSION", "unknown")

    @property
    def schema_version(self) -> str:
        return self.meta.get("EXPORT_SCHEMA_VERSION", "unknown")

    @cached_property
    def size(self) -> int:
        return self.path.stat().st_size

    @property
    def sha256(self) -> str:
        """The input's sha256, hashed on a background thread from the moment it opened
        (hashlib releases the GIL: a gigabyte's hash overlaps the analysis)."""
        return self._sha256.result()

    @cached_property
    def _sha256(self) -> "Future[str]":
        return _HASHER.submit(_sha256_of, self.path)

    def identity(self) -> dict[str, object]:
        """The input's identity, as every output records it."""
        return {
            "path": str(self.path),
            "size": self.size,
            "sha256": self.sha256,
            "nsys_version": self.nsys_version,
            "schema_version": self.schema_version,
        }

    @cached_property
    def capture_end_ns(self) -> int:
        """The capture's end on the trace's clock.

        Trace timestamps run from 0 to ``ANALYSIS_DETAILS.duration`` (its
        ``startTime``/``stopTime`` are on another clock: stop - start == duration),
        and nsys ends a range left open at exactly that value. Without the table,
        the last timestamp seen.
        """
        if self.has(S.T_ANALYSIS) and "duration" in self.columns(S.T_ANALYSIS):
            row = self._con.execute(f"SELECT MAX(duration) FROM {S.T_ANALYSIS}").fetchone()
            if row[0] is not None:
                return int(row[0])
        ends = [self.activity_span[1]]
        if self.has(S.T_NVTX):
            row = self._con.execute(f"SELECT MAX(MAX(start), COALESCE(MAX(end), 0)) FROM {S.T_NVTX}").fetchone()
            ends.append(row[0])
        known = [int(e) for e in ends if e is not None]
        return max(known) if known else 0

    @cached_property
    def activity_span(self) -> tuple[int | None, int | None]:
        """First and last time of any GPU op or CUDA API call, in ns (from the loaded
        tables: a report reads them anyway, and a second SQL scan would cost as much)."""
        tables = [self.api_calls, self.kernels, self.memcpy, self.memset, self.graph_runs]
        lo = [int(t["start_ns"].min()) for t in tables if len(t)]
        hi = [int(t["end_ns"].max()) for t in tables if len(t)]
        return (min(lo), max(hi)) if lo else (None, None)

    def prefetch(self) -> "Trace":
        """Read the large tables concurrently: the NVTX ranges, the API calls and the
        raw rows of each GPU-op table each on a thread (SQLite reads and Arrow
        conversion release the GIL), then join the ops to their launching calls."""
        gpu_tables = [t for t in (S.T_KERNEL, S.T_MEMCPY, S.T_MEMSET, S.T_GRAPH) if self.has(t)]
        with ThreadPoolExecutor(max_workers=2 + len(gpu_tables), thread_name_prefix="nsysparse-load") as pool:
            jobs = [pool.submit(lambda: self.nvtx_ranges), pool.submit(lambda: self.api_calls)]
            raw = {t: pool.submit(self.query, self._gpu_sql(t)) for t in gpu_tables}
            for t, job in raw.items():
                self._raw[t] = job.result()
            jobs.append(pool.submit(lambda: (self.kernels, self.memcpy, self.memset, self.graph_runs)))
            for job in jobs:
                job.result()
        return self

    # ---- lookups -------------------------------------------------------------------

    @cached_property
    def strings(self) -> pd.Series:
        """``StringIds``: id -> value."""
        if not self.has(S.T_STRINGS):
            return pd.Series(dtype=object)
        df = self.query(f"SELECT id, value FROM {S.T_STRINGS}")
        return pd.Series(df["value"].to_numpy(dtype=object), index=df["id"].to_numpy())

    def enum_labels(self, table: str) -> dict[int, str]:
        """An ENUM table as id -> label (empty if absent)."""
        if not self.has(table):
            return {}
        return {int(i): str(label) for i, label in self._con.execute(f"SELECT id, label FROM {table}")}

    def _strings_for(self, ids: pd.Series) -> np.ndarray:
        return self.strings.reindex(ids.to_numpy()).to_numpy(dtype=object)

    def _categorical_strings(self, ids: pd.Series) -> pd.Categorical:
        """``StringIds`` values of ``ids`` as a Categorical: each distinct id is looked
        up once, and millions of kernel rows share a few hundred names."""
        codes, uniq_ids = pd.factorize(ids.to_numpy())
        values = self.strings.reindex(uniq_ids).to_numpy(dtype=object)
        vcodes, categories = pd.factorize(values)  # ids that share a string share a category
        return pd.Categorical.from_codes(_recode(codes, vcodes), categories=pd.Index(categories, dtype=object))

    # ---- NVTX ----------------------------------------------------------------------

    @cached_property
    def _nvtx_domains(self) -> pd.DataFrame:
        """Domain names keyed by (domainId, pid): domain ids are per process."""
        if not self.has(S.T_NVTX):
            return pd.DataFrame({"domainId": [], "pid": [], "domain": []})
        df = self.query(
            f"SELECT domainId, globalTid, text FROM {S.T_NVTX} WHERE eventType = ?",
            (S.NVTX_DOMAIN_CREATE,),
        )
        df["pid"] = S.pid_of(df["globalTid"].astype("int64"))
        return df.drop_duplicates(["domainId", "pid"], keep="last").rename(columns={"text": "domain"})[
            ["domainId", "pid", "domain"]
        ]

    def _nvtx_rows(self, event_types: tuple[int, ...], int_payload: bool = False) -> pd.DataFrame:
        cols = self.columns(S.T_NVTX)
        payloads = [c for c in S.PAYLOAD_COLUMNS if c in cols]
        payload_sql = f"COALESCE({', '.join(f'CAST({c} AS REAL)' for c in payloads)}, NULL)" if payloads else "NULL"
        if len(payloads) == 1:
            payload_sql = f"CAST({payloads[0]} AS REAL)"
        # the integer payload exactly (marks carry clock values): as TEXT, because every
        # reader returns an integer column holding NULLs as float64, which rounds past 2**53
        ints = [c for c in S.PAYLOAD_COLUMNS[:4] if c in cols]
        payload_int_sql = f"CAST(COALESCE({', '.join(ints)}, NULL) AS TEXT)" if int_payload and ints else "NULL"
        # texts registered as strings come as textId: map ids through StringIds once per
        # distinct id (a polling range firing a million times is one string, not a million)
        text_id_sql = "e.textId" if "textId" in cols else "NULL"
        end_tid_sql = "e.endGlobalTid" if "endGlobalTid" in cols else "NULL"
        domain_sql = "e.domainId" if "domainId" in cols else "0"
        marks = ",".join("?" * len(event_types))
        df = self.query(
            f"SELECT e.start, e.end, e.eventType, e.text, {text_id_sql} AS textId, e.globalTid, "
            f"{end_tid_sql} AS endGlobalTid, {domain_sql} AS domainId, {payload_sql} AS payload, "
            f"{payload_int_sql} AS payload_int "
            f"FROM {S.T_NVTX} e WHERE e.eventType IN ({marks})",
            event_types,
        )
        ids = df.pop("textId")
        if ids.notna().any():
            from_id = np.asarray(self._categorical_strings(ids), dtype=object)
            df["text"] = df["text"].astype(object).where(df["text"].notna(), from_id)
        return df

    def _with_names(self, df: pd.DataFrame) -> pd.DataFrame:
        gt = df["globalTid"].fillna(0).astype("int64")
        df["pid"] = S.pid_of(gt)
        df["tid"] = S.tid_of(gt)
        df["domainId"] = df["domainId"].fillna(0).astype("int64")
        df = df.merge(self._nvtx_domains, on=["domainId", "pid"], how="left")
        df["domain"] = df["domain"].where(df["domainId"] != 0, "").fillna("")
        df["text"] = df["text"].fillna("").astype(object)
        df["name"] = _join_names(df["domain"], df["text"])
        return df

    @cached_property
    def nvtx_ranges(self) -> pd.DataFrame:
        """NVTX push/pop and start/end ranges, one row per range.

        Columns: ``range_id`` (0-based, in start order), ``name`` (``domain:text``,
        default domain ``:text``), ``domain``, ``text``, ``start_ns``, ``end_ns``,
        ``dur_ns``, ``pid``, ``tid`` (the starting thread), ``end_tid`` (null
        unless it ended on another thread), ``kind`` (``push_pop``/``start_end``),
        ``depth`` (0 = outermost on its thread), ``parent`` (the enclosing range's
        ``range_id``, null at depth 0), ``payload`` (float64), ``closed`` (false when
        the end was NULL, and ended here at the capture's end, or equals it).
        """
        if not self.has(S.T_NVTX):
            return _empty_ranges()
        df = self._nvtx_rows(S.NVTX_RANGE_TYPES)
        if df.empty:
            return _empty_ranges()
        df = self._with_names(df)
        cap_end = self.capture_end_ns
        closed = df["end"].notna() & (df["end"] != cap_end)
        end = df["end"].fillna(cap_end).astype("int64")
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
            }
        )
        out = out.sort_values(["start_ns", "end_ns"], ascending=[True, False], kind="stable", ignore_index=True)
        out.insert(0, "range_id", np.arange(len(out), dtype=np.int64))
        depth, parent = _nesting(out)
        out["depth"] = depth
        out["parent"] = pd.Series(parent, dtype="Int64").where(parent >= 0).array
        return out

    @cached_property
    def marks(self) -> pd.DataFrame:
        """NVTX marks: ``name``, ``ts_ns``, ``pid``, ``tid``, ``payload`` (float64) and
        ``payload_int`` (the integer payload, exact; null for none or a float)."""
        if not self.has(S.T_NVTX):
            return pd.DataFrame({"name": [], "ts_ns": [], "pid": [], "tid": [], "payload": [], "payload_int": []}).astype(
                {"ts_ns": "int64", "pid": "int64", "tid": "int64", "payload": "float64", "payload_int": "Int64"}
            )
        df = self._with_names(self._nvtx_rows((S.NVTX_MARK,), int_payload=True))
        return pd.DataFrame(
            {
                "name": df["name"].to_numpy(dtype=object),
                "ts_ns": df["start"].astype("int64").to_numpy(),
                "pid": df["pid"].to_numpy(dtype="int64"),
                "tid": df["tid"].to_numpy(dtype="int64"),
                "payload": df["payload"].astype("float64").to_numpy(),
                "payload_int": pd.to_numeric(df["payload_int"].astype(object), dtype_backend="numpy_nullable")
                .astype("Int64").array,
            }
        ).sort_values("ts_ns", ignore_index=True)

    # ---- CUDA API ----------------------------------------------------------------

    @cached_property
    def api_calls(self) -> pd.DataFrame:
        """CUDA runtime and driver API calls.

        Columns: ``name`` (as recorded, e.g. ``cudaStreamSynchronize_v3020``),
        ``base_name`` (trailing ``_v`` + digits removed), ``start_ns``, ``end_ns``,
        ``dur_ns``, ``pid``, ``tid``, ``correlation_id``, ``return_value``.
        """
        if not self.has(S.T_RUNTIME):
            return _empty_api()
        cols = self.columns(S.T_RUNTIME)
        ret = "returnValue" if "returnValue" in cols else "NULL"
        df = self.query(
            f"SELECT start, end, globalTid, correlationId, nameId, {ret} AS returnValue FROM {S.T_RUNTIME}"
        )
        names = self._categorical_strings(df["nameId"])
        stripped = [S.BASE_NAME_SUFFIX.sub("", str(n)) for n in names.categories]  # per distinct name
        bcodes, bcats = pd.factorize(np.asarray(stripped, dtype=object))
        base = pd.Categorical.from_codes(_recode(names.codes, bcodes), categories=pd.Index(bcats, dtype=object))
        gt = df["globalTid"].astype("int64")
        out = pd.DataFrame(
            {
                "name": names,
                "base_name": base,
                "start_ns": df["start"].astype("int64").to_numpy(),
                "end_ns": df["end"].astype("int64").to_numpy(),
                "pid": S.pid_of(gt),
                "tid": S.tid_of(gt),
                "correlation_id": df["correlationId"].fillna(-1).astype("int64").to_numpy(),
                "return_value": df["returnValue"].astype("Int64") if ret != "NULL" else pd.array([pd.NA] * len(df), "Int64"),
            }
        )
        out["dur_ns"] = out["end_ns"] - out["start_ns"]
        return out.sort_values("start_ns", kind="stable", ignore_index=True)

    # ---- GPU activity ---------------------------------------------------------------

    @cached_property
    def _api_keys(self) -> tuple[np.ndarray, np.ndarray]:
        """API calls keyed by (pid, correlationId), sorted: (keys, row positions)."""
        api = self.api_calls
        corr = api["correlation_id"].to_numpy()
        key = (api["pid"].to_numpy().astype(np.int64) << 32) | (corr & 0xFFFFFFFF)
        key = np.where(corr >= 0, key, -1)
        order = np.argsort(key, kind="stable")  # stable: the first call of a duplicated key wins
        return key[order], order

    def _launching_call(self, pid: np.ndarray, corr: np.ndarray) -> np.ndarray:
        """Row of ``api_calls`` that launched each op (same process and correlation id), or -1."""
        keys, order = self._api_keys
        if keys.size == 0:
            return np.full(len(pid), -1, dtype=np.int64)
        q = (np.asarray(pid, dtype=np.int64) << 32) | (np.asarray(corr, dtype=np.int64) & 0xFFFFFFFF)
        i = np.clip(np.searchsorted(keys, q), 0, keys.size - 1)
        hit = (keys[i] == q) & (np.asarray(corr) >= 0)
        return np.where(hit, order[i], -1)

    def _gpu_sql(self, table: str) -> str:
        """The one query that reads a GPU-op table: common columns, then its own."""
        extra = {
            S.T_KERNEL: ", demangledName, shortName"
            + (", graphNodeId" if "graphNodeId" in self.columns(S.T_KERNEL) else ", NULL AS graphNodeId"),
            S.T_MEMCPY: ", bytes, copyKind, srcKind, dstKind, srcDeviceId, dstDeviceId",
            S.T_MEMSET: ", bytes",
            S.T_GRAPH: ", graphId, graphExecId",
        }[table]
        return f"SELECT start, end, deviceId, streamId, correlationId, globalPid{extra} FROM {table}"

    def _gpu_raw(self, table: str) -> pd.DataFrame:
        """The rows of a GPU-op table as read (once: :meth:`prefetch` may have read them)."""
        cached = self._raw.pop(table, None)
        return cached if cached is not None else self.query(self._gpu_sql(table))

    def _gpu_rows(self, table: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Common GPU-op columns of ``table``, joined to the launching API call on
        (correlationId, pid): correlation ids repeat across processes."""
        df = self._gpu_raw(table)
        pid = S.pid_of(df["globalPid"].fillna(0).astype("int64"))
        base = pd.DataFrame(
            {
                "start_ns": df["start"].astype("int64").to_numpy(),
                "end_ns": df["end"].astype("int64").to_numpy(),
                "device": df["deviceId"].astype("int64").to_numpy(),
                "stream": df["streamId"].astype("int64").to_numpy(),
                "pid": pid,
                "correlation_id": df["correlationId"].fillna(-1).astype("int64").to_numpy(),
            }
        )
        base["dur_ns"] = base["end_ns"] - base["start_ns"]
        # the launching call by (pid, correlationId): a sorted-key lookup, not a merge
        row = self._launching_call(base["pid"].to_numpy(), base["correlation_id"].to_numpy())
        api = self.api_calls
        found = row >= 0
        if not found.any():
            base["api"] = np.full(len(base), None, dtype=object)
            for col in ("launch_tid", "api_start_ns", "api_end_ns"):
                base[col] = pd.array([pd.NA] * len(base), dtype="Int64")
            return base, df
        take = np.maximum(row, 0)
        cat = api["name"].array  # categorical: gather its codes, share its names
        base["api"] = pd.Categorical.from_codes(_recode(row, np.asarray(cat.codes)), dtype=cat.dtype)
        for col, src in (("launch_tid", "tid"), ("api_start_ns", "start_ns"), ("api_end_ns", "end_ns")):
            base[col] = pd.Series(api[src].to_numpy()[take], dtype="Int64").where(found).array
        return base, df

    @cached_property
    def kernels(self) -> pd.DataFrame:
        """Kernels: GPU-op columns (``start_ns``, ``end_ns``, ``dur_ns``, ``device``,
        ``stream``, ``pid``, ``correlation_id``, ``api`` (launching call, raw name),
        ``launch_tid``, ``api_start_ns``, ``api_end_ns``) plus ``name`` (demangled,
        as nsys's kernel summary keys it), ``short_name`` and ``graph_node_id``."""
        if not self.has(S.T_KERNEL):
            return _empty_ops(["name", "short_name", "graph_node_id"])
        base, raw = self._gpu_rows(S.T_KERNEL)
        base["name"] = self._categorical_strings(raw["demangledName"])
        base["short_name"] = self._categorical_strings(raw["shortName"])
        base["graph_node_id"] = raw["graphNodeId"].astype("Int64").array
        return base.sort_values("start_ns", kind="stable", ignore_index=True)

    @cached_property
    def memcpy(self) -> pd.DataFrame:
        """Memory copies: GPU-op columns plus ``bytes``, ``copy_kind``, ``src_kind``,
        ``dst_kind`` (ENUM labels, e.g. "Host-to-Device", "Pinned"), ``src_device``,
        ``dst_device`` (the GPU on each side; null for host memory: Host-to-Device
        has ``dst_device`` = deviceId, Device-to-Host ``src_device`` = deviceId,
        Device-to-Device both, Peer-to-Peer srcDeviceId/dstDeviceId)."""
        if not self.has(S.T_MEMCPY):
            return _empty_ops(["bytes", "copy_kind", "src_kind", "dst_kind", "src_device", "dst_device"])
        base, raw = self._gpu_rows(S.T_MEMCPY)
        copy_labels = self.enum_labels(S.T_ENUM_MEMCPY)
        mem_labels = self.enum_labels(S.T_ENUM_MEMKIND)
        base["bytes"] = raw["bytes"].astype("int64").to_numpy()
        base["copy_kind"] = raw["copyKind"].map(copy_labels).fillna("Unknown").to_numpy(dtype=object)
        base["src_kind"] = raw["srcKind"].map(mem_labels).fillna("Unknown").to_numpy(dtype=object)
        base["dst_kind"] = raw["dstKind"].map(mem_labels).fillna("Unknown").to_numpy(dtype=object)
        kind = base["copy_kind"]
        dev = base["device"]
        src = pd.array([pd.NA] * len(base), dtype="Int64")
        dst = pd.array([pd.NA] * len(base), dtype="Int64")
        src = pd.Series(src).mask(kind.isin([S.D2H, S.D2D]), dev)
        dst = pd.Series(dst).mask(kind.isin([S.H2D, S.D2D]), dev)
        p2p = (kind == S.P2P).to_numpy()
        src = src.mask(p2p, raw["srcDeviceId"].astype("Int64"))
        dst = dst.mask(p2p, raw["dstDeviceId"].astype("Int64"))
        base["src_device"] = src.astype("Int64").array
        base["dst_device"] = dst.astype("Int64").array
        return base.sort_values("start_ns", kind="stable", ignore_index=True)

    @cached_property
    def memset(self) -> pd.DataFrame:
        """Memsets: GPU-op columns plus ``bytes``."""
        if not self.has(S.T_MEMSET):
            return _empty_ops(["bytes"])
        base, raw = self._gpu_rows(S.T_MEMSET)
        base["bytes"] = raw["bytes"].astype("int64").to_numpy()
        return base.sort_values("start_ns", kind="stable", ignore_index=True)

    @cached_property
    def graph_runs(self) -> pd.DataFrame:
        """CUDA graph executions traced at graph level (one row per launch; their
        kernels are not recorded): GPU-op columns plus ``graph_id``, ``graph_exec_id``."""
        if not self.has(S.T_GRAPH):
            return _empty_ops(["graph_id", "graph_exec_id"])
        base, raw = self._gpu_rows(S.T_GRAPH)
        base["graph_id"] = raw["graphId"].astype("int64").to_numpy()
        base["graph_exec_id"] = raw["graphExecId"].astype("int64").to_numpy()
        return base.sort_values("start_ns", kind="stable", ignore_index=True)

    @cached_property
    def sync_events(self) -> pd.DataFrame:
        """CUPTI synchronization records: ``start_ns``, ``end_ns``, ``dur_ns``,
        ``device``, ``stream``, ``pid``, ``correlation_id``, ``sync_type`` (label)."""
        if not self.has(S.T_SYNC):
            return pd.DataFrame(
                {c: pd.Series(dtype="int64") for c in ["start_ns", "end_ns", "dur_ns", "device", "stream", "pid", "correlation_id"]}
            ).assign(sync_type=pd.Series(dtype=object))
        df = self.query(f"SELECT start, end, deviceId, streamId, correlationId, globalPid, syncType FROM {S.T_SYNC}")
        labels = self.enum_labels(S.T_ENUM_SYNC)
        out = pd.DataFrame(
            {
                "start_ns": df["start"].astype("int64"),
                "end_ns": df["end"].astype("int64"),
                "device": df["deviceId"].astype("int64"),
                "stream": df["streamId"].astype("int64"),
                "pid": S.pid_of(df["globalPid"].fillna(0).astype("int64")),
                "correlation_id": df["correlationId"].fillna(-1).astype("int64"),
                "sync_type": df["syncType"].map(labels).fillna("Unknown").astype(object),
            }
        )
        out["dur_ns"] = out["end_ns"] - out["start_ns"]
        return out

    # ---- system -------------------------------------------------------------------

    @cached_property
    def gpus(self) -> pd.DataFrame:
        """GPUs: ``device`` (CUDA device id), ``name``, ``compute_major``,
        ``compute_minor``, ``memory_bytes``, ``bus``, ``sm_count``."""
        want = {"cuDevice": "device", "id": "id", "name": "name", "computeMajor": "compute_major",
                "computeMinor": "compute_minor", "totalMemory": "memory_bytes", "busLocation": "bus",
                "smCount": "sm_count"}
        have = [c for c in want if c in self.columns(S.T_GPU)]
        if not have:
            return pd.DataFrame({v: [] for v in want.values()})
        df = self.query(f"SELECT {', '.join(have)} FROM {S.T_GPU}").rename(columns=want)
        if "device" not in df:
            df["device"] = df.get("id")
        return df.drop_duplicates("device").sort_values("device", ignore_index=True)

    @cached_property
    def threads(self) -> pd.DataFrame:
        """Thread names: ``pid``, ``tid``, ``name``."""
        if not self.has(S.T_THREADS):
            return pd.DataFrame({"pid": pd.Series(dtype="int64"), "tid": pd.Series(dtype="int64"), "name": pd.Series(dtype=object)})
        df = self.query(f"SELECT globalTid, nameId FROM {S.T_THREADS}")
        gt = df["globalTid"].astype("int64")
        return pd.DataFrame(
            {"pid": S.pid_of(gt), "tid": S.tid_of(gt), "name": self._strings_for(df["nameId"])}
        ).drop_duplicates(["pid", "tid"], keep="last", ignore_index=True)

    def lacks(self) -> list[str]:
        """What this trace lacks that a full report uses, in plain words."""
        missing = []
        if not self.has(S.T_NVTX):
            missing.append("NVTX ranges (trace with `-t cuda,nvtx`)")
        if not self.has(S.T_KERNEL) and not self.has(S.T_GRAPH):
            missing.append("kernels")
        if not self.has(S.T_MEMCPY):
            missing.append("memory copies")
        if not self.has(S.T_RUNTIME):
            missing.append("CUDA API calls")
        return missing


_HASHER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="nsysparse-sha256")


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _recode(codes: np.ndarray, lookup: np.ndarray) -> np.ndarray:
    """``lookup[codes]`` with code -1 (missing) kept as -1 (and as -1 when ``lookup`` is empty)."""
    codes = np.asarray(codes)
    if len(lookup) == 0:
        return np.full(codes.shape, -1, dtype=np.int64)
    return np.where(codes >= 0, np.asarray(lookup)[np.maximum(codes, 0)], -1)


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


def _check_not_truncated(path: Path) -> None:
    """A file shorter than its header's page count x page size was cut short.

    Cheap (reads the 100-byte header), unlike ``PRAGMA quick_check`` which reads
    every page of a gigabyte trace.
    """
    with path.open("rb") as fh:
        header = fh.read(100)
    if len(header) < 100:
        raise NotADatabase(path, "is truncated (shorter than a SQLite header); export the .nsys-rep again")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # the in-header size is valid only when the change counter matches "version-valid-for"
    valid = header[24:28] == header[92:96] and pages > 0
    if valid and path.stat().st_size < pages * page_size:
        raise NotADatabase(
            path, f"is truncated ({path.stat().st_size} of {pages * page_size} bytes); copy or export it again"
        )


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


def _empty_ranges() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "range_id": pd.Series(dtype="int64"),
            "name": pd.Series(dtype=object),
            "domain": pd.Series(dtype=object),
            "text": pd.Series(dtype=object),
            "start_ns": pd.Series(dtype="int64"),
            "end_ns": pd.Series(dtype="int64"),
            "dur_ns": pd.Series(dtype="int64"),
            "pid": pd.Series(dtype="int64"),
            "tid": pd.Series(dtype="int64"),
            "end_tid": pd.Series(dtype="Int64"),
            "kind": pd.Series(dtype=object),
            "payload": pd.Series(dtype="float64"),
            "closed": pd.Series(dtype=bool),
            "depth": pd.Series(dtype="int64"),
            "parent": pd.Series(dtype="Int64"),
        }
    )


def _empty_api() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": pd.Series(dtype=object),
            "base_name": pd.Series(dtype=object),
            "start_ns": pd.Series(dtype="int64"),
            "end_ns": pd.Series(dtype="int64"),
            "pid": pd.Series(dtype="int64"),
            "tid": pd.Series(dtype="int64"),
            "correlation_id": pd.Series(dtype="int64"),
            "return_value": pd.Series(dtype="Int64"),
            "dur_ns": pd.Series(dtype="int64"),
        }
    )


def _empty_ops(extra: list[str]) -> pd.DataFrame:
    cols = {c: pd.Series(dtype="int64") for c in ["start_ns", "end_ns", "device", "stream", "pid", "correlation_id", "dur_ns"]}
    cols.update({"api": pd.Series(dtype=object), "launch_tid": pd.Series(dtype="Int64"),
                 "api_start_ns": pd.Series(dtype="Int64"), "api_end_ns": pd.Series(dtype="Int64")})
    for c in extra:
        cols[c] = pd.Series(dtype=object if c in {"copy_kind", "src_kind", "dst_kind", "name", "short_name"} else "Int64")
    return pd.DataFrame(cols)
