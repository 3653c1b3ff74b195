"""Open an Nsight Systems SQLite export read-only and expose normalised tables.

``open_trace(path) -> Trace`` validates the file, probes once which tables and
columns exist, and builds each table lazily on first access. Every table is a
pandas DataFrame with times in integer nanoseconds (``*_ns``), names resolved
through ``StringIds`` and the ENUM tables, and ``globalTid`` split into
``pid``/``tid``. What is read from each table, and the columns and dtypes of
each normalised table (empty or not), are declared once in
:mod:`nsysparse.schema`; :mod:`nsysparse.reader` holds the SQL,
:mod:`nsysparse.nvtx` and :mod:`nsysparse.cuda` build the tables.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any
from functools import cache, cached_property
from pathlib import Path

import pandas as pd

from . import cuda, nvtx
from .call_stream import (CallFile, Launches, StreamedCalls, StreamedOps, read_launch_keys, stream_api_calls,
                          stream_os_calls, streamable_ops)
from . import schema as S
from .errors import NotAnExport
from .reader import Reader, categorical, check_file

def open_trace(path: str | os.PathLike[str]) -> "Trace":
    """Open ``path`` (an exported ``.sqlite``) read-only and check it is an nsys export.

    Raises :class:`InputMissing` (missing, unreadable, a directory),
    :class:`NotADatabase` (empty, not SQLite, corrupt; :class:`InputLocked`
    when a writer holds it) or :class:`NotAnExport` (no CUDA activity, a schema
    outside 2.9 to 3.x, a required table column missing or of the wrong type).
    Nothing is ever written beside the input.
    """
    p = Path(path)
    check_file(p)
    return Trace(p)


def _schema_tuple(version: str) -> tuple[int, ...] | None:
    parts = version.split(".")
    try:
        return tuple(int(x) for x in parts[:2])
    except ValueError:
        return None


@dataclass
class Trace:
    """A read-only view of one export. Tables are built on first access and cached."""

    path: Path
    _rd: Reader = field(init=False, repr=False)

    def __post_init__(self) -> None:
        give_back_freed_memory()
        no_huge_pages()
        self._rd = Reader(self.path)
        self._sha256  # start hashing now, in the background
        self.tables: frozenset[str] = self._rd.tables
        self._raw: dict[str, pd.DataFrame | None] = {}  # GPU-op rows read ahead by prefetch()
        has_cuda = any(t in self.tables for t in S.CUDA_TABLES)
        looks_nsys = (
            has_cuda or S.T_META in self.tables or S.T_META_OLD in self.tables
            or (S.T_STRINGS in self.tables and any(t.startswith("TARGET_INFO_") for t in self.tables))
        )
        if not looks_nsys:
            raise NotAnExport(
                self.path,
                "is SQLite but not an Nsight Systems export; run `nsys export --type sqlite` on the .nsys-rep",
            )
        version = _schema_tuple(self.schema_version)
        if version is not None and version < S.OLDEST_SCHEMA:
            raise NotAnExport(
                self.path,
                f"export schema {self.schema_version} is older than supported (2.9 to 3.x); "
                "export the .nsys-rep again with Nsight Systems 2022.1 or later",
            )
        if version is not None and version[0] > S.NEWEST_SCHEMA_MAJOR:
            raise NotAnExport(
                self.path,
                f"export schema {self.schema_version} is not supported (2.9 to 3.x); "
                "export it with an Nsight Systems release between 2022.1 and 2026.x",
            )
        if not has_cuda:
            raise NotAnExport(
                self.path,
                "holds no CUDA activity: was the trace taken with `-t cuda` (nsys profile -t cuda,nvtx)?",
            )
        if not self.meta:
            self._rd.note(
                f"the export has no metadata table ({S.T_META} or {S.T_META_OLD}): nsys version and schema unknown"
            )

    # ---- probing -------------------------------------------------------------------

    def has(self, table: str) -> bool:
        """Whether the export holds ``table`` (nsys writes a table only when it has data)."""
        return table in self.tables

    def recorded(self, key: str) -> bool:
        """Whether the export recorded a table at all: ``key`` is a table of this
        class (``kernels``, ``memcpy``, ``memset``, ``graph_runs``, ``api_calls``,
        ``sync_events``, ``os_calls``, ``nvtx_ranges``/``marks``, ``gpus``,
        ``threads``) or an export table name. False means "not recorded" (nsys
        was not asked for it, or it had nothing); True with an empty table means
        "recorded, no row read" (every row left out: see :attr:`notes`)."""
        decl = S.BY_KEY.get("nvtx" if key in ("nvtx_ranges", "marks") else key)
        if decl is None:
            return self.has(key)
        return self._rd.resolve(decl) is not None

    @property
    def has_kernels(self) -> bool:
        """Kernels were recorded (a kernel table, or graph runs standing for them)."""
        return self.recorded("kernels") or self.recorded("graph_runs")

    @property
    def has_copies(self) -> bool:
        """Memory copies were recorded."""
        return self.recorded("memcpy")

    def columns(self, table: str) -> frozenset[str]:
        """The columns of ``table`` (empty if it does not exist)."""
        return frozenset(self._rd.columns(table))

    def query(self, sql: str, params: tuple = ()) -> pd.DataFrame:
        """Run one read-only query into a DataFrame (see :meth:`Reader.query`);
        a corrupt or locked file is the user's typed error, not our bug."""
        return self._rd.query(sql, params)

    @property
    def notes(self) -> list[str]:
        """Every note the loader made so far, in plain words, for the report to print:
        rows left out (``3 of 1,204 kernel rows had no end: left out``), duplicated
        lookup ids, a missing metadata table, optional columns read as empty,
        codes decoded without ENUM tables. Complete once the tables a report reads
        are built (after :meth:`prefetch`)."""
        return list(self._rd.notes)

    def close(self) -> None:
        self._rd.close()

    def __enter__(self) -> "Trace":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- identity ----------------------------------------------------------------------

    @cached_property
    def meta(self) -> dict[str, str]:
        """The export's metadata (``META_DATA_EXPORT``, ``EXPORT_META_DATA`` before nsys
        2023.3) as a dict; empty if it has none."""
        df = self._rd.read(S.META)
        if df is None:
            return {}
        return {str(k): ("" if v is None else str(v)) for k, v in zip(df["name"], df["value"])}

    @property
    def nsys_version(self) -> str:
        return self.meta.get("EXPORT_PRODUCT_VERSION") or "unknown"

    @property
    def schema_version(self) -> str:
        return self.meta.get("EXPORT_SCHEMA_VERSION") or "unknown"

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
        if self._recorded_end_ns is not None:
            return self._recorded_end_ns
        ends = [self.activity_span[1]]
        table = self._rd.resolve(S.NVTX)
        if table is not None:
            row = self._rd.execute(
                f'SELECT MAX(CASE WHEN typeof(start) = \'integer\' THEN start END), '
                f'MAX(CASE WHEN typeof("end") = \'integer\' THEN "end" END) FROM "{table}"'
            )[0]
            ends += list(row)
        known = [int(e) for e in ends if e is not None]
        return max(known) if known else 0

    @cached_property
    def _recorded_end_ns(self) -> int | None:
        """``ANALYSIS_DETAILS.duration``, or None where the export lacks it."""
        df = self._rd.read(S.ANALYSIS)
        if df is not None and df["duration"].notna().any():
            return int(df["duration"].max())
        return None

    @cached_property
    def activity_span(self) -> tuple[int | None, int | None]:
        """First and last time of any GPU op or CUDA API call, in ns (from the loaded
        tables: a report reads them anyway, and a second SQL scan would cost as much)."""
        return activity_span(self)

    def prefetch(self, on_built: Callable[[str, object], bool] | None = None,
                 calls_to: CallFile | None = None, os_calls_to: CallFile | None = None) -> "Trace":
        """Read the large tables concurrently: the NVTX ranges, the API calls, the OS
        runtime calls and the raw rows of each GPU-op table each on a thread (SQLite reads and Arrow
        conversion release the GIL), then join the ops to their launching calls.
        ``on_built(name, frame)`` is called, on the loading thread, as soon as the API
        calls (``"api_calls"``), the OS calls (``"os_calls"``) and the kernels
        (``"kernels"``) are built (the report starts writing them to their files
        then, while the rest is read);
        when it returns True, the trace lets the table go once the GPU ops are
        joined to their calls (the OS calls at once), as :meth:`release` does.

        With ``calls_to``, the API calls are not built but streamed to that file
        once the GPU ops' rows are read, or beside those reads on many cores
        (:func:`stream_early`) (:mod:`nsysparse.call_stream`: no frame of
        them exists), and ``on_built("api_calls", streamed)`` gets the
        :class:`~nsysparse.call_stream.StreamedCalls`; where they cannot stream
        (not in start order, say) they are built as above.
        With ``os_calls_to``, the OS calls are streamed to that file in start order
        (:func:`~nsysparse.call_stream.stream_os_calls`: no frame of them exists), and
        ``on_built("os_calls", streamed)`` gets the
        :class:`~nsysparse.call_stream.StreamedRows`; where they cannot stream they
        are built as above.
        Either way :attr:`activity_span` is known on return."""
        # a table built already (a second prefetch, or one read before) is not read again
        gpu_tables = [d for d in S.GPU_OP_TABLES if self.recorded(d.key) and d.key not in self.__dict__]
        stream = calls_to is not None and "api_calls" not in self.__dict__ and self.recorded("api_calls")

        taken: list[str] = []

        def build(*names: str) -> None:  # no result: a job's result would hold its tables as long as the job
            for name in names:
                getattr(self, name)

        def built(name: str) -> None:
            fresh = name not in self.__dict__
            df = getattr(self, name)
            if fresh and on_built is not None and on_built(name, df):
                if name == "api_calls":
                    taken.append(name)  # the GPU ops' join reads it, then it goes
                else:
                    self.release(name)

        def os_calls() -> None:
            if os_calls_to is not None and "os_calls" not in self.__dict__ and self.recorded("os_calls"):
                rows = stream_os_calls(self._rd, self.strings, os_calls_to)
                if rows is not None:
                    if on_built is not None:
                        on_built("os_calls", rows)
                    return
            built("os_calls")

        streamed = None
        with ThreadPoolExecutor(max_workers=3 + len(gpu_tables), thread_name_prefix="nsysparse-load") as pool:
            self.strings  # once, before the threads that use it
            api = None if stream else pool.submit(built, "api_calls")
            os_job = pool.submit(os_calls)
            # the NVTX ranges end open ones at the capture's end: without ANALYSIS_DETAILS that is the
            # last timestamp of the loaded tables, so they are built once those are (built beside them,
            # they would build the GPU ops, and the API calls whole, on their own thread)
            nvtx_now = self._recorded_end_ns is not None
            jobs = [os_job] + ([pool.submit(build, "nvtx_ranges")] if nvtx_now else [])
            if api is not None:
                jobs.append(api)  # the breakdown reads them: 10 s at 2 GB read alone
            raw = {d.key: pool.submit(self._read_raw, d) for d in gpu_tables}
            tried = False
            if stream and stream_early():
                assert calls_to is not None
                # many cores: the calls stream now, beside the GPU ops' reads, found per distinct
                # launch key read ahead of the ops' rows (2 GB on 16 cores: the stream waited 6 s)
                ahead = read_launch_keys(self._rd, gpu_tables)
                if ahead is not None:
                    reuse_freed_memory()  # the stream's per-batch arrays from the heap (see below)
                    tried, streamed = True, self._stream_calls(calls_to, Launches.of_keys(ahead))
            for key in list(raw):  # the job goes with its rows: each raw table is freed once built
                self._raw[key] = raw.pop(key).result()
            if stream:
                assert calls_to is not None
                if not tried:
                    # once the OS calls are built: the stream's launch index and first batches are not
                    # piled on their build (2 GB: the read's peak, the OS calls' sort beside the kernels' rows)
                    os_job.result()
                    # the whole tables are read (the run's peak): the stream's arrays, made and freed
                    # per batch, reuse the heap from now (2 GB: 13 GB of page faults otherwise)
                    reuse_freed_memory()
                    streamed = self._stream_calls(calls_to)
                if streamed is None:  # not in start order, or not checkable batch by batch: built whole
                    api = pool.submit(built, "api_calls")
                elif on_built is not None:
                    on_built("api_calls", streamed)
            # the ops are joined to the API calls once those are built: cached_property has no
            # lock since Python 3.12, and a second thread asking first would read them again
            # (2 GB on 16 cores: 8 s and 1 GB more)
            if api is not None:
                api.result()
            # the kernels go to on_built as soon as built: the report writes them to their file while
            # the rest is built, and narrows them before the analyses (report._projection)
            jobs.append(pool.submit(lambda: (built("kernels"), build("memcpy", "memset", "graph_runs"))))
            for job in jobs:
                job.result()
        # every table is read (a streamed run switched at its stream already): what the analyses
        # make and free reuses the heap from now
        reuse_freed_memory()
        # every GPU-op table is built: the launch index (two int64 per API call) is not needed
        self.__dict__.pop("_ops", None)
        if streamed is not None:
            self.__dict__["activity_span"] = activity_span(self, streamed.span)
        self.activity_span  # from the API calls among others: before they go
        self.release(*taken)
        if not nvtx_now:
            self.nvtx_ranges
        return self

    def _stream_calls(self, to: CallFile, launches: Launches | None = None) -> StreamedCalls | None:
        """The API calls streamed to ``to`` (:func:`stream_api_calls`), the GPU ops'
        launching calls found as they pass (per op row of the raw tables read, or
        per distinct key in ``launches``); None where they cannot stream."""
        if launches is None:
            ops = streamable_ops(self._raw)
            if ops is None:
                return None
            launches = Launches(ops)
        streamed = stream_api_calls(self._rd, self.strings, to, launches)
        if streamed is not None:
            self.__dict__["_ops"] = StreamedOps(self._rd, self.strings, launches, streamed.rows.categories["name"])
        return streamed

    def release(self, *names: str) -> None:
        """Give up the built tables ``names`` (``"api_calls"``, ...): the trace holds
        them no longer, and builds them again from the file if asked for one."""
        for name in names:
            self.__dict__.pop(name, None)

    def narrow(self, name: str, columns: tuple[str, ...]) -> None:
        """Keep only ``columns`` of the built table ``name``: the others are freed
        (each column is an array of its own), and the table has only these from now."""
        if name in self.__dict__:
            self.__dict__[name] = self.__dict__[name][list(columns)]

    # ---- lookups -------------------------------------------------------------------

    @cached_property
    def strings(self) -> pd.Series:
        """``StringIds``: id -> value (a duplicated id: the first wins, with a note)."""
        return self._rd.lookup(S.STRINGS, "id", "value")

    def enum_labels(self, table: str) -> dict[int, str]:
        """An ENUM table as id -> label (empty if absent)."""
        decl = next((d for d in (S.ENUM_MEMCPY, S.ENUM_MEMKIND, S.ENUM_SYNC) if d.name == table), None)
        if decl is None:
            decl = S.Table(table.lower(), (table,), "enum", (S.Col("id"), S.Col("label", S.TEXT)), unique="id",
                           vital=False)
        return {int(k): str(v) for k, v in self._rd.lookup(decl, "id", "label").items()}

    def _categorical_strings(self, ids: pd.Series) -> pd.Categorical:
        return categorical(self.strings, ids)

    # ---- NVTX ----------------------------------------------------------------------

    @cached_property
    def _nvtx_domains(self) -> pd.DataFrame:
        return nvtx.domains(self._rd)

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
        return nvtx.nvtx_ranges(self._rd, self.strings, self._nvtx_domains, self.capture_end_ns)

    @cached_property
    def marks(self) -> pd.DataFrame:
        """NVTX marks: ``name``, ``ts_ns``, ``pid``, ``tid``, ``payload`` (float64) and
        ``payload_int`` (the integer payload, exact; null for none or a float)."""
        return nvtx.marks(self._rd, self.strings, self._nvtx_domains)

    # ---- CUDA API ----------------------------------------------------------------

    @cached_property
    def api_calls(self) -> pd.DataFrame:
        """CUDA runtime and driver API calls.

        Columns: ``name`` (as recorded, e.g. ``cudaStreamSynchronize_v3020``),
        ``base_name`` (trailing ``_v`` + digits removed), ``start_ns``, ``end_ns``,
        ``dur_ns``, ``pid``, ``tid``, ``correlation_id``, ``return_value``.
        """
        return cuda.api_calls(self._rd, self.strings)

    # ---- GPU activity ---------------------------------------------------------------

    @cached_property
    def _ops(self) -> cuda.Ops:
        return cuda.Ops(self._rd, self.strings, self.api_calls)

    def _gpu(self, decl: S.Table) -> pd.DataFrame:
        raw = self._raw.pop(decl.key) if decl.key in self._raw else self._read_raw(decl)
        return self._ops.build(decl, raw)

    def _read_raw(self, decl: S.Table) -> pd.DataFrame | None:
        """The raw rows of a GPU-op table, as read and compacted (:func:`cuda.compact`)."""
        return cuda.compact(decl, self._rd.read(decl), self.strings)

    @cached_property
    def kernels(self) -> pd.DataFrame:
        """Kernels: GPU-op columns (``start_ns``, ``end_ns``, ``dur_ns``, ``device``,
        ``stream``, ``pid``, ``correlation_id``, ``api`` (launching call, raw name),
        ``launch_tid``, ``api_start_ns``, ``api_end_ns``) plus ``name`` (demangled,
        as nsys's kernel summary keys it), ``short_name`` and ``graph_node_id``."""
        return self._gpu(S.KERNEL)

    @cached_property
    def memcpy(self) -> pd.DataFrame:
        """Memory copies: GPU-op columns plus ``bytes``, ``copy_kind``, ``src_kind``,
        ``dst_kind`` (labels, e.g. "Host-to-Device", "Pinned": through the ENUM tables,
        or the documented codes in exports without them), ``src_device``,
        ``dst_device`` (the GPU on each side; null for host memory: Host-to-Device
        has ``dst_device`` = deviceId, Device-to-Host ``src_device`` = deviceId,
        Device-to-Device both, Peer-to-Peer srcDeviceId/dstDeviceId)."""
        return self._gpu(S.MEMCPY)

    @cached_property
    def memset(self) -> pd.DataFrame:
        """Memsets: GPU-op columns plus ``bytes``."""
        return self._gpu(S.MEMSET)

    @cached_property
    def graph_runs(self) -> pd.DataFrame:
        """CUDA graph executions traced at graph level (one row per launch; their
        kernels are not recorded): GPU-op columns plus ``graph_id``, ``graph_exec_id``."""
        return self._gpu(S.GRAPH)

    @cached_property
    def sync_events(self) -> pd.DataFrame:
        """CUPTI synchronization records: ``start_ns``, ``end_ns``, ``dur_ns``,
        ``device``, ``stream``, ``pid``, ``correlation_id``, ``sync_type`` (label)."""
        return cuda.sync_events(self._rd)

    # ---- system -------------------------------------------------------------------

    @cached_property
    def gpus(self) -> pd.DataFrame:
        """GPUs: ``device`` (CUDA device id), ``id``, ``name``, ``compute_major``,
        ``compute_minor``, ``memory_bytes``, ``bus``, ``sm_count`` (nullable integers:
        old exports lack some)."""
        return cuda.gpus(self._rd)

    @cached_property
    def threads(self) -> pd.DataFrame:
        """Thread names: ``pid``, ``tid``, ``name`` (a thread named twice: the first)."""
        return cuda.threads(self._rd, self.strings)

    @cached_property
    def os_calls(self) -> pd.DataFrame:
        """OS runtime calls (``OSRT_API``, ``-t osrt``): ``pid``, ``tid``, ``start_ns``,
        ``end_ns``, ``dur_ns`` and ``name``; empty with those columns when absent."""
        return cuda.os_calls(self._rd, self.strings)

    def lacks(self) -> list[str]:
        """What this trace lacks that a full report uses, in plain words (from the
        declaration: each table's ``lacks`` words, when the export has no such table)."""
        return [
            d.lacks for d in S.TABLES
            if d.lacks and self._rd.resolve(d) is None and not any(self.has(u) for u in d.lacks_unless)
        ]


EARLY_STREAM_CORES = 4  # from this many cores the API calls stream beside the GPU ops' reads


def stream_early() -> bool:
    """Whether :meth:`Trace.prefetch` streams the API calls beside the GPU ops'
    reads (their launch keys read ahead), not after them: on
    EARLY_STREAM_CORES cores or more, where the reads and the stream do not
    contend for the cores (on 2 cores it was slower, and held 130-180 MB more
    at 2 GB: benchmarks/RESULTS.md). ``NSYSPARSE_STREAM_EARLY=1``/``0`` decides
    instead (benchmarks compare both on one machine)."""
    env = os.environ.get("NSYSPARSE_STREAM_EARLY", "").strip()
    if env in ("0", "1"):
        return env == "1"
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return cores >= EARLY_STREAM_CORES


def give_back_freed_memory() -> None:
    """Make memory a table frees go back to the system at once, so that peak RSS
    is what the tables hold, not what they once held (benchmarks/RESULTS.md: 1.56
    -> 1.13 GB on a 200 MB trace). glibc serves an array under its *dynamic* mmap
    threshold (which grows to 32 MB as big arrays are freed) from the heap, where
    freed pages stay mapped; a fixed threshold of 128 KiB maps every column on its
    own (Arrow's mimalloc pool stays, told to purge what it frees at once: see
    ``nsysparse/__init__.py``). Process-wide: each trace opened sets it for its
    read, and :func:`reuse_freed_memory` ends it once the read is done; a no-op
    without glibc or when ``NSYSPARSE_KEEP_ALLOCATOR`` is set. The heap's free top
    goes back past glibc's default 128 KiB too (M_TRIM_THRESHOLD)."""
    _malloc_thresholds(mmap=128 * 1024, trim=128 * 1024)


def no_huge_pages() -> None:
    """Stop numpy asking the kernel for huge pages (``madvise(MADV_HUGEPAGE)``) for
    its arrays of 4 MB or more. Where transparent huge pages are granted on request
    (the ``madvise`` setting many distributions ship), each such array the read and
    the analyses make and free is faulted in 2 MB at a time, each page zeroed whole:
    on a 2 GB trace a quarter of the run's CPU time was the kernel clearing pages
    (21.7 -> 13.8 s of system time, 33.3 -> 29.6 s, the same peak RSS:
    benchmarks/RESULTS.md). Process-wide, as numpy's own switch is; a no-op when
    ``NSYSPARSE_KEEP_ALLOCATOR`` is set or this numpy has no such switch."""
    if os.environ.get("NSYSPARSE_KEEP_ALLOCATOR"):
        return
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            switch = getattr(importlib.import_module(module), "_set_madvise_hugepage")
        except (ImportError, AttributeError):
            continue
        switch(False)
        return


# what the analyses allocate under this comes from the heap (see reuse_freed_memory)
ANALYSIS_MMAP_THRESHOLD = 1 << 20
# and this much free memory at the heap's top stays for the next slice (see reuse_freed_memory)
ANALYSIS_TRIM_THRESHOLD = 16 << 20


def reuse_freed_memory() -> None:
    """Once the tables are read (the run's peak: freed heap pages kept then would
    add to it), serve arrays under ANALYSIS_MMAP_THRESHOLD from the heap again,
    where what one is freed the next reuses: each array mapped on its own is
    faulted in afresh, page by page, and the breakdown's and the projection's
    working arrays, made and freed per slice, were ~14 GB of page faults on a
    2 GB trace, more system time than the work itself (benchmarks/RESULTS.md).
    Up to ANALYSIS_TRIM_THRESHOLD free at the heap's top is kept, not handed back
    and faulted in again by the next block: at glibc's default (128 KiB, fixed once
    the mmap threshold is set) the projection's blocks of half-megabyte arrays were
    400k page faults at 2 GB, 14k so (1.9 -> 1.3 s; the run's peak +10 MB).
    A no-op where :func:`give_back_freed_memory` is one."""
    _malloc_thresholds(mmap=ANALYSIS_MMAP_THRESHOLD, trim=ANALYSIS_TRIM_THRESHOLD)


def _malloc_thresholds(mmap: int, trim: int) -> None:
    """glibc's M_MMAP_THRESHOLD: an allocation this large or larger is mapped on
    its own and unmapped when freed (fixed: glibc's dynamic threshold ends); and
    M_TRIM_THRESHOLD: free memory this large at the heap's top goes back."""
    if os.environ.get("NSYSPARSE_KEEP_ALLOCATOR"):
        return
    libc = _libc()
    if libc is not None:
        libc.mallopt(-3, mmap)  # M_MMAP_THRESHOLD (malloc.h)
        libc.mallopt(-1, trim)  # M_TRIM_THRESHOLD


@cache
def _libc() -> Any:
    """glibc, or None (another C library, another system)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt  # noqa: B018 - a C library without it is none of ours
        return libc
    except (OSError, AttributeError):
        return None


_HASHER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="nsysparse-sha256")


def _sha256_of(path: Path) -> str:
    """The file's sha256, read into one reused buffer (a fresh 4 MB block per read
    was 2 GB of page faults on a 2 GB trace, as long as the hashing itself)."""
    h = hashlib.sha256()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def activity_span(trace: "Trace", api_span: tuple[int, int] | None = None) -> tuple[int | None, int | None]:
    """First and last time of any GPU op or CUDA API call of ``trace`` (or of a
    view with the same tables, as a time window is), in ns; (None, None) for none.
    ``api_span``: the API calls' first start and last end, when they were streamed."""
    tables = [trace.kernels, trace.memcpy, trace.memset, trace.graph_runs]
    if api_span is None:
        tables.insert(0, trace.api_calls)
    lo = [int(t["start_ns"].min()) for t in tables if len(t)] + ([api_span[0]] if api_span else [])
    hi = [int(t["end_ns"].max()) for t in tables if len(t)] + ([api_span[1]] if api_span else [])
    return (min(lo), max(hi)) if lo else (None, None)
