"""Build tiny Nsight Systems-like SQLite exports from a few rows, for tests.

The real exports are large and hold what one workload did; a test of a corner
(a range that never closed, a child process reusing correlation ids, permuted
ENUM ids) wants five rows whose right answer can be worked out by hand. This
module writes such a file with the real tables and column sets of the export
schema 3.20.3 (copied from ``tests/data/edge.sqlite`` / ``graphs.sqlite``, the
comments dropped), so the loader reads it exactly as it reads a real trace.

Quick start::

    from tests.builders import TraceBuilder

    b = TraceBuilder(tmp_path / "t.sqlite", pid=100)          # main thread tid = pid
    b.range("step", 1_000, 5_000, domain="moe")                 # push/pop range "moe:step"
    c = b.api("cudaLaunchKernel_v7000", 1_100, 1_200)           # returns its correlation id
    b.kernel(2_000, 2_500, corr=c, name="gemm")                 # GPU op launched by that call
    b.memcpy(3_000, 3_400, bytes=1 << 20, launch=(1_300, 1_350))  # API call made for you
    path = b.write()                                             # then open_trace(path)

Conventions (as in real exports):

- Times are integer nanoseconds on the trace clock, which runs from 0 to
  ``ANALYSIS_DETAILS.duration`` (the capture's end). ``duration`` defaults to
  the largest timestamp written + :data:`TAIL_NS` (so no range ends exactly
  at the capture's end by accident: that reads as never closed); pass
  ``duration=`` to fix it. ``b.capture_end`` says what will be written.
- Threads are ``(pid, tid)``; the builder writes ``globalTid`` as
  ``HIGH | pid << 24 | tid`` and ``globalPid`` as ``HIGH | pid << 24`` with
  ``HIGH = 1 << 48`` (the opaque high bits nsys sets; see :func:`global_tid`).
  ``pid`` defaults to the builder's ``pid``, ``tid`` to the ``pid`` (the main
  thread).
- Correlation ids are numbered per process from 1, as CUPTI does: a second
  process reuses the first one's numbers. ``api()`` returns the id; GPU-op
  helpers take it as ``corr=``, or take ``launch=(start, end)`` (plus
  ``tid=``, ``api_name=``) to record the launching call themselves.
- Strings (kernel and API names, NVTX texts) go to ``StringIds``. NVTX texts
  go through ``textId`` like nsys 2025 writes registered strings; pass
  ``inline=True`` to use the ``text`` column instead.
- NVTX domains are per process: ``domain="moe"`` creates an eventType-75 row
  the first time a process uses that name, numbering that process's domains
  from 1 (so two processes can both have domainId 1 for different names);
  pass ``domain_id=`` to pick the id yourself.
- ENUM tables are written with the real ids and labels (:data:`MEMCPY_OPER`,
  :data:`MEM_KIND`, :data:`SYNC_TYPE`). Memory and copy kinds are given by
  label (``src_kind="Pinned"``) and written as the id the ENUM table gives
  that label; give an ``int`` to write a raw id. Pass ``mem_kind={0:
  "Pinned", 1: "Pageable", ...}`` etc. to write a different ENUM table.
- A table is created only when it gets rows (nsys writes a table only when it
  has data), except META_DATA_EXPORT, ANALYSIS_DETAILS, StringIds and the
  three ENUM tables, which are always written unless ``meta=False`` /
  ``analysis=False`` / ``enums=False``. ``empty_table(name)`` creates a table
  with no rows. ``rows(table, [dict, ...])`` adds raw rows to any table here.
- For big traces, ``ranges()`` takes arrays of starts and ends and inserts
  them with ``executemany``.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

TAIL_NS = 1_000  # default gap between the last timestamp and the capture's end
HIGH_BITS = 1 << 48  # 281474976710656: what nsys puts above the pid in a globalTid

# ENUM tables of the fixtures (nsys 2025.3.2, schema 3.20.3): id -> (name, label)
MEMCPY_OPER: dict[int, tuple[str, str]] = {
    0: ("CUDA_MEMCPY_KIND_UNKNOWN", "Unknown"),
    1: ("CUDA_MEMCPY_KIND_HTOD", "Host-to-Device"),
    2: ("CUDA_MEMCPY_KIND_DTOH", "Device-to-Host"),
    3: ("CUDA_MEMCPY_KIND_HTOA", "Host-to-Array"),
    4: ("CUDA_MEMCPY_KIND_ATOH", "Array-to-Host"),
    5: ("CUDA_MEMCPY_KIND_ATOA", "Array-to-Array"),
    6: ("CUDA_MEMCPY_KIND_ATOD", "Array-to-Device"),
    7: ("CUDA_MEMCPY_KIND_DTOA", "Device-to-Array"),
    8: ("CUDA_MEMCPY_KIND_DTOD", "Device-to-Device"),
    9: ("CUDA_MEMCPY_KIND_HTOH", "Host-to-Host"),
    10: ("CUDA_MEMCPY_KIND_PTOP", "Peer-to-Peer"),
    11: ("CUDA_MEMCPY_KIND_UVM_HTOD", "Unified Host-to-Device"),
    12: ("CUDA_MEMCPY_KIND_UVM_DTOH", "Unified Device-to-Host"),
    13: ("CUDA_MEMCPY_KIND_UVM_DTOD", "Unified Device-to-Device"),
}
MEM_KIND: dict[int, tuple[str, str]] = {
    0: ("CUDA_MEMOPR_MEMORY_KIND_PAGEABLE", "Pageable"),
    1: ("CUDA_MEMOPR_MEMORY_KIND_PINNED", "Pinned"),
    2: ("CUDA_MEMOPR_MEMORY_KIND_DEVICE", "Device"),
    3: ("CUDA_MEMOPR_MEMORY_KIND_ARRAY", "Array"),
    4: ("CUDA_MEMOPR_MEMORY_KIND_MANAGED", "Managed"),
    5: ("CUDA_MEMOPR_MEMORY_KIND_DEVICE_STATIC", "Device Static"),
    6: ("CUDA_MEMOPR_MEMORY_KIND_MANAGED_STATIC", "Managed Static"),
    7: ("CUDA_MEMOPR_MEMORY_KIND_UNKNOWN", "Unknown"),
}
SYNC_TYPE: dict[int, tuple[str, str]] = {
    0: ("CUPTI_ACTIVITY_SYNCHRONIZATION_TYPE_UNKNOWN", "Unknown"),
    1: ("CUPTI_ACTIVITY_SYNCHRONIZATION_TYPE_EVENT_SYNCHRONIZE", "Event sync"),
    2: ("CUPTI_ACTIVITY_SYNCHRONIZATION_TYPE_STREAM_WAIT_EVENT", "Stream wait sync"),
    3: ("CUPTI_ACTIVITY_SYNCHRONIZATION_TYPE_STREAM_SYNCHRONIZE", "Stream sync"),
    4: ("CUPTI_ACTIVITY_SYNCHRONIZATION_TYPE_CONTEXT_SYNCHRONIZE", "Context sync"),
}

# NVTX_EVENTS.eventType values
NVTX_MARK, NVTX_PUSH_POP, NVTX_START_END, NVTX_DOMAIN_CREATE = 34, 59, 60, 75
# CUPTI_ACTIVITY_KIND_RUNTIME.eventClass (ENUM_NSYS_EVENT_CLASS)
EVENT_CLASS_RUNTIME, EVENT_CLASS_DRIVER = 0, 1

EXPORT_META = {
    "EXPORT_PRODUCT_NAME": "NVIDIA Nsight Systems",
    "EXPORT_PRODUCT_VERSION": "2025.3.2.0",
    "EXPORT_SCHEMA_VERSION": "3.20.3",
    "EXPORT_SCHEMA_VERSION_MAJOR": "3",
    "EXPORT_SCHEMA_VERSION_MINOR": "20",
    "EXPORT_SCHEMA_VERSION_MICRO": "3",
}

# CREATE TABLE statements of schema 3.20.3, copied from the fixtures (comments dropped).
SCHEMA: dict[str, str] = {
    "META_DATA_EXPORT": """CREATE TABLE META_DATA_EXPORT (
    name TEXT NOT NULL, value TEXT)""",
    "ANALYSIS_DETAILS": """CREATE TABLE ANALYSIS_DETAILS (
    globalVid INTEGER NOT NULL, duration INTEGER NOT NULL,
    startTime INTEGER NOT NULL, stopTime INTEGER NOT NULL)""",
    "StringIds": """CREATE TABLE StringIds (
    id INTEGER NOT NULL PRIMARY KEY, value TEXT NOT NULL)""",
    "ENUM_CUDA_MEMCPY_OPER": """CREATE TABLE ENUM_CUDA_MEMCPY_OPER (
    id INTEGER NOT NULL PRIMARY KEY, name TEXT, label TEXT)""",
    "ENUM_CUDA_MEM_KIND": """CREATE TABLE ENUM_CUDA_MEM_KIND (
    id INTEGER NOT NULL PRIMARY KEY, name TEXT, label TEXT)""",
    "ENUM_CUPTI_SYNC_TYPE": """CREATE TABLE ENUM_CUPTI_SYNC_TYPE (
    id INTEGER NOT NULL PRIMARY KEY, name TEXT, label TEXT)""",
    "NVTX_EVENTS": """CREATE TABLE NVTX_EVENTS (
    start INTEGER NOT NULL, end INTEGER, eventType INTEGER NOT NULL, rangeId INTEGER,
    category INTEGER, color INTEGER, text TEXT, globalTid INTEGER, endGlobalTid INTEGER,
    textId INTEGER, domainId INTEGER, uint64Value INTEGER, int64Value INTEGER,
    doubleValue REAL, uint32Value INTEGER, int32Value INTEGER, floatValue REAL,
    jsonTextId INTEGER, jsonText TEXT, binaryData TEXT)""",
    "CUPTI_ACTIVITY_KIND_RUNTIME": """CREATE TABLE CUPTI_ACTIVITY_KIND_RUNTIME (
    start INTEGER NOT NULL, end INTEGER NOT NULL, eventClass INTEGER NOT NULL,
    globalTid INTEGER, correlationId INTEGER, nameId INTEGER NOT NULL,
    returnValue INTEGER NOT NULL, callchainId INTEGER)""",
    "CUPTI_ACTIVITY_KIND_KERNEL": """CREATE TABLE CUPTI_ACTIVITY_KIND_KERNEL (
    start INTEGER NOT NULL, end INTEGER NOT NULL, deviceId INTEGER NOT NULL,
    contextId INTEGER NOT NULL, greenContextId INTEGER, streamId INTEGER NOT NULL,
    correlationId INTEGER, globalPid INTEGER, demangledName INTEGER NOT NULL,
    shortName INTEGER NOT NULL, mangledName INTEGER, launchType INTEGER, cacheConfig INTEGER,
    registersPerThread INTEGER NOT NULL, gridX INTEGER NOT NULL, gridY INTEGER NOT NULL,
    gridZ INTEGER NOT NULL, blockX INTEGER NOT NULL, blockY INTEGER NOT NULL,
    blockZ INTEGER NOT NULL, staticSharedMemory INTEGER NOT NULL,
    dynamicSharedMemory INTEGER NOT NULL, localMemoryPerThread INTEGER NOT NULL,
    localMemoryTotal INTEGER NOT NULL, gridId INTEGER NOT NULL,
    sharedMemoryExecuted INTEGER, graphNodeId INTEGER, sharedMemoryLimitConfig INTEGER)""",
    "CUPTI_ACTIVITY_KIND_MEMCPY": """CREATE TABLE CUPTI_ACTIVITY_KIND_MEMCPY (
    start INTEGER NOT NULL, end INTEGER NOT NULL, deviceId INTEGER NOT NULL,
    contextId INTEGER NOT NULL, greenContextId INTEGER, streamId INTEGER NOT NULL,
    correlationId INTEGER, globalPid INTEGER, bytes INTEGER NOT NULL,
    copyKind INTEGER NOT NULL, deprecatedSrcId INTEGER, srcKind INTEGER, dstKind INTEGER,
    srcDeviceId INTEGER, srcContextId INTEGER, dstDeviceId INTEGER, dstContextId INTEGER,
    migrationCause INTEGER, graphNodeId INTEGER, virtualAddress INTEGER, copyCount INTEGER)""",
    "CUPTI_ACTIVITY_KIND_MEMSET": """CREATE TABLE CUPTI_ACTIVITY_KIND_MEMSET (
    start INTEGER NOT NULL, end INTEGER NOT NULL, deviceId INTEGER NOT NULL,
    contextId INTEGER NOT NULL, greenContextId INTEGER, streamId INTEGER NOT NULL,
    correlationId INTEGER, globalPid INTEGER, value INTEGER NOT NULL,
    bytes INTEGER NOT NULL, graphNodeId INTEGER, memKind INTEGER)""",
    "CUPTI_ACTIVITY_KIND_GRAPH_TRACE": """CREATE TABLE CUPTI_ACTIVITY_KIND_GRAPH_TRACE (
    start INTEGER NOT NULL, end INTEGER NOT NULL, deviceId INTEGER NOT NULL,
    contextId INTEGER NOT NULL, greenContextId INTEGER, streamId INTEGER NOT NULL,
    correlationId INTEGER, globalPid INTEGER, graphId INTEGER NOT NULL,
    graphExecId INTEGER NOT NULL)""",
    "CUPTI_ACTIVITY_KIND_SYNCHRONIZATION": """CREATE TABLE CUPTI_ACTIVITY_KIND_SYNCHRONIZATION (
    start INTEGER NOT NULL, end INTEGER NOT NULL, deviceId INTEGER NOT NULL,
    contextId INTEGER NOT NULL, greenContextId INTEGER, streamId INTEGER NOT NULL,
    correlationId INTEGER, globalPid INTEGER, deprecatedSyncType INTEGER,
    syncType INTEGER NOT NULL, eventId INTEGER NOT NULL, eventSyncId INTEGER)""",
    "TARGET_INFO_GPU": """CREATE TABLE TARGET_INFO_GPU (
    vmId INTEGER NOT NULL, id INTEGER NOT NULL, name TEXT, busLocation TEXT,
    isDiscrete INTEGER, l2CacheSize INTEGER, totalMemory INTEGER, memoryBandwidth INTEGER,
    clockRate INTEGER, smCount INTEGER, pwGpuId INTEGER, uuid TEXT, luid INTEGER,
    chipName TEXT, cuDevice INTEGER, ctxswDevPath TEXT, ctrlDevPath TEXT, revision INTEGER,
    nodeMask INTEGER, constantMemory INTEGER, maxIPC INTEGER, maxRegistersPerBlock INTEGER,
    maxShmemPerBlock INTEGER, maxShmemPerBlockOptin INTEGER, maxShmemPerSm INTEGER,
    maxRegistersPerSm INTEGER, threadsPerWarp INTEGER, asyncEngines INTEGER,
    maxWarpsPerSm INTEGER, maxBlocksPerSm INTEGER, maxThreadsPerBlock INTEGER,
    maxBlockDimX INTEGER, maxBlockDimY INTEGER, maxBlockDimZ INTEGER, maxGridDimX INTEGER,
    maxGridDimY INTEGER, maxGridDimZ INTEGER, computeMajor INTEGER, computeMinor INTEGER,
    smMajor INTEGER, smMinor INTEGER)""",
    "ThreadNames": """CREATE TABLE ThreadNames (
    nameId INTEGER NOT NULL, priority INTEGER, globalTid INTEGER)""",
}

T_NVTX = "NVTX_EVENTS"
T_RUNTIME = "CUPTI_ACTIVITY_KIND_RUNTIME"
T_KERNEL = "CUPTI_ACTIVITY_KIND_KERNEL"
T_MEMCPY = "CUPTI_ACTIVITY_KIND_MEMCPY"
T_MEMSET = "CUPTI_ACTIVITY_KIND_MEMSET"
T_GRAPH = "CUPTI_ACTIVITY_KIND_GRAPH_TRACE"
T_SYNC = "CUPTI_ACTIVITY_KIND_SYNCHRONIZATION"

NVTX_COLUMNS = ("start", "end", "eventType", "rangeId", "text", "globalTid", "endGlobalTid",
                "textId", "domainId", "int64Value", "uint64Value", "doubleValue", "int32Value",
                "uint32Value", "floatValue")
PAYLOAD_COLUMN = {int: "int64Value", float: "doubleValue"}


def global_tid(pid: int, tid: int) -> int:
    """``globalTid`` as nsys serialises it: ``1 << 48 | pid << 24 | tid``."""
    return HIGH_BITS | (pid << 24) | tid


def global_pid(pid: int) -> int:
    """``globalPid``: the ``globalTid`` with the tid bits zeroed."""
    return HIGH_BITS | (pid << 24)


class TraceBuilder:
    """Collects rows, then :meth:`write` creates the SQLite file.

    Every adder returns something useful: ``api`` and the GPU-op helpers the
    correlation id, ``range``/``mark`` the row's index in NVTX_EVENTS order of
    insertion. Nothing touches the disk before :meth:`write`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        pid: int = 100,
        duration: int | None = None,
        meta: bool | Mapping[str, str] = True,
        analysis: bool = True,
        enums: bool = True,
        memcpy_oper: Mapping[int, tuple[str, str] | str] | None = None,
        mem_kind: Mapping[int, tuple[str, str] | str] | None = None,
        sync_type: Mapping[int, tuple[str, str] | str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.pid = pid
        self.duration = duration
        self.meta = dict(EXPORT_META) if meta is True else (dict(meta) if meta else None)
        self.analysis = analysis
        self.enums = enums
        self.enum_tables = {
            "ENUM_CUDA_MEMCPY_OPER": _enum(memcpy_oper or MEMCPY_OPER),
            "ENUM_CUDA_MEM_KIND": _enum(mem_kind or MEM_KIND),
            "ENUM_CUPTI_SYNC_TYPE": _enum(sync_type or SYNC_TYPE),
        }
        self._rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._bulk_nvtx: list[tuple] = []
        self._empty: set[str] = set()
        self._strings: dict[str, int] = {}
        self._domains: dict[tuple[int, str], int] = {}  # (pid, name) -> domainId
        self._next_corr: dict[int, int] = defaultdict(lambda: 1)
        self._next_range_id = 1
        self._max_ts = 0
        self._grid_id = 0

    # ---- plumbing -----------------------------------------------------------------

    def string(self, value: str) -> int:
        """The ``StringIds`` id of ``value`` (added on first use)."""
        if value not in self._strings:
            self._strings[value] = len(self._strings) + 1
        return self._strings[value]

    def rows(self, table: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add raw rows (column -> value) to ``table``; it must be in :data:`SCHEMA`."""
        if table not in SCHEMA:
            raise KeyError(f"{table} is not a table this builder knows")
        for row in rows:
            self._rows[table].append(dict(row))
            for k in ("start", "end"):
                if row.get(k) is not None:
                    self._seen(row[k])

    def empty_table(self, table: str) -> None:
        """Create ``table`` even if it gets no rows."""
        if table not in SCHEMA:
            raise KeyError(f"{table} is not a table this builder knows")
        self._empty.add(table)

    def enum_id(self, table: str, label: str | int) -> int:
        """The id the ENUM ``table`` being written gives ``label`` (an int passes through)."""
        if isinstance(label, int):
            return label
        for i, (_, lab) in self.enum_tables[table].items():
            if lab == label:
                return i
        raise KeyError(f"{label!r} is not a label of {table}")

    def _seen(self, *ts: int | None) -> None:
        for t in ts:
            if t is not None and t > self._max_ts:
                self._max_ts = int(t)

    def _thread(self, pid: int | None, tid: int | None) -> tuple[int, int]:
        p = self.pid if pid is None else pid
        return p, (p if tid is None else tid)

    def _corr(self, pid: int) -> int:
        c = self._next_corr[pid]
        self._next_corr[pid] = c + 1
        return c

    # ---- NVTX -----------------------------------------------------------------------

    def domain(self, name: str, *, pid: int | None = None, tid: int | None = None,
               domain_id: int | None = None, ts: int = 0) -> int:
        """Create NVTX domain ``name`` in process ``pid`` (an eventType-75 row); its id.

        Ids are numbered per process from 1 unless ``domain_id`` is given.
        Calling it again for the same (pid, name) returns the existing id.
        """
        p, t = self._thread(pid, tid)
        key = (p, name)
        if key in self._domains and domain_id in (None, self._domains[key]):
            return self._domains[key]
        if domain_id is None:
            used = [d for (pp, _), d in self._domains.items() if pp == p]
            domain_id = max(used, default=0) + 1
        self._domains[key] = domain_id
        self._rows[T_NVTX].append({"start": ts, "end": None, "eventType": NVTX_DOMAIN_CREATE,
                                   "text": name, "globalTid": global_tid(p, t), "domainId": domain_id})
        return domain_id

    def _nvtx_text(self, row: dict[str, Any], text: str | None, inline: bool) -> None:
        if text is None:
            return
        if inline:
            row["text"] = text
        else:
            row["textId"] = self.string(text)

    def _domain_id(self, domain: str | None, domain_id: int | None, pid: int, tid: int) -> int | None:
        if domain is None:
            return 0 if domain_id is None else domain_id  # the default domain is id 0, as nsys writes it
        return self.domain(domain, pid=pid, tid=tid, domain_id=domain_id)

    def range(
        self,
        text: str | None,
        start: int,
        end: int | None,
        *,
        pid: int | None = None,
        tid: int | None = None,
        domain: str | None = None,
        domain_id: int | None = None,
        kind: str = "push_pop",
        end_tid: int | None = None,
        payload: int | float | None = None,
        inline: bool = False,
    ) -> None:
        """An NVTX range: ``kind`` ``"push_pop"`` (eventType 59) or ``"start_end"`` (60).

        ``end=None`` writes a NULL end (never closed). ``end_tid`` (start/end
        only) writes ``endGlobalTid`` for a range ended on another thread of the
        same process; start/end ranges always get a ``rangeId``. An ``int``
        payload goes to ``int64Value``, a ``float`` to ``doubleValue``.
        """
        p, t = self._thread(pid, tid)
        if kind not in ("push_pop", "start_end"):
            raise ValueError("kind is 'push_pop' or 'start_end'")
        row: dict[str, Any] = {
            "start": start, "end": end,
            "eventType": NVTX_PUSH_POP if kind == "push_pop" else NVTX_START_END,
            "globalTid": global_tid(p, t),
            "domainId": self._domain_id(domain, domain_id, p, t),
        }
        if kind == "start_end":
            row["rangeId"] = self._next_range_id
            self._next_range_id += 1
            row["endGlobalTid"] = global_tid(p, end_tid) if end_tid is not None else None
        elif end_tid is not None:
            raise ValueError("only a start/end range can end on another thread")
        self._nvtx_text(row, text, inline)
        if payload is not None:
            row[PAYLOAD_COLUMN[type(payload)]] = payload
        self._rows[T_NVTX].append(row)
        self._seen(start, end)

    def mark(self, text: str, ts: int, *, pid: int | None = None, tid: int | None = None,
             domain: str | None = None, payload: int | float | None = None, inline: bool = False) -> None:
        """An NVTX mark (eventType 34, no end)."""
        p, t = self._thread(pid, tid)
        row: dict[str, Any] = {"start": ts, "end": None, "eventType": NVTX_MARK,
                               "globalTid": global_tid(p, t),
                               "domainId": self._domain_id(domain, None, p, t)}
        self._nvtx_text(row, text, inline)
        if payload is not None:
            row[PAYLOAD_COLUMN[type(payload)]] = payload
        self._rows[T_NVTX].append(row)
        self._seen(ts)

    def ranges(self, text: str, starts: Sequence[int], ends: Sequence[int], *,
               pid: int | None = None, tid: int | None = None, domain: str | None = None) -> None:
        """Many push/pop ranges of one name on one thread, inserted with ``executemany``
        at :meth:`write` (a million rows take a few seconds)."""
        p, t = self._thread(pid, tid)
        did = self._domain_id(domain, None, p, t)
        tid_id = self.string(text)
        gt = global_tid(p, t)
        self._bulk_nvtx.append((list(map(int, starts)), list(map(int, ends)), tid_id, gt, did))
        if len(ends):
            self._seen(max(map(int, ends)))

    # ---- CUDA API -------------------------------------------------------------------

    def api(self, name: str, start: int, end: int, *, pid: int | None = None, tid: int | None = None,
            corr: int | None = None, return_value: int = 0) -> int:
        """A CUDA runtime (``cuda*``) or driver (``cu*``) call; returns its correlation id
        (the process's next one unless ``corr`` is given)."""
        p, t = self._thread(pid, tid)
        c = self._corr(p) if corr is None else corr
        self._rows[T_RUNTIME].append({
            "start": start, "end": end,
            "eventClass": EVENT_CLASS_RUNTIME if name.startswith("cuda") else EVENT_CLASS_DRIVER,
            "globalTid": global_tid(p, t), "correlationId": c, "nameId": self.string(name),
            "returnValue": return_value,
        })
        self._seen(start, end)
        return c

    def _launch(self, corr: int | None, launch: tuple[int, int] | None, api_name: str,
                pid: int, tid: int | None) -> int | None:
        if launch is not None:
            if corr is not None:
                raise ValueError("give corr= or launch=, not both")
            return self.api(api_name, launch[0], launch[1], pid=pid, tid=tid)
        return corr

    def _op(self, start: int, end: int, pid: int, corr: int | None, device: int, stream: int,
            context: int = 1) -> dict[str, Any]:
        self._seen(start, end)
        return {"start": start, "end": end, "deviceId": device, "contextId": context,
                "greenContextId": 0, "streamId": stream, "correlationId": corr,
                "globalPid": global_pid(pid)}

    # ---- GPU activity ---------------------------------------------------------------

    def kernel(self, start: int, end: int, *, corr: int | None = None, launch: tuple[int, int] | None = None,
               pid: int | None = None, tid: int | None = None, name: str = "kernel",
               short_name: str | None = None, device: int = 0, stream: int = 7,
               graph_node_id: int | None = None, api_name: str = "cudaLaunchKernel_v7000") -> int | None:
        """A kernel; ``name`` is the demangled name (``short_name`` defaults to it).
        Returns the correlation id."""
        p = self.pid if pid is None else pid
        c = self._launch(corr, launch, api_name, p, tid)
        self._grid_id += 1
        row = self._op(start, end, p, c, device, stream)
        row.update({"demangledName": self.string(name), "shortName": self.string(short_name or name),
                    "mangledName": self.string(name), "launchType": 0, "cacheConfig": 0,
                    "registersPerThread": 16, "gridX": 1, "gridY": 1, "gridZ": 1, "blockX": 128,
                    "blockY": 1, "blockZ": 1, "staticSharedMemory": 0, "dynamicSharedMemory": 0,
                    "localMemoryPerThread": 0, "localMemoryTotal": 0, "gridId": self._grid_id,
                    "sharedMemoryExecuted": 0, "graphNodeId": graph_node_id,
                    "sharedMemoryLimitConfig": 0})
        self._rows[T_KERNEL].append(row)
        return c

    def memcpy(self, start: int, end: int, *, bytes: int, copy_kind: str | int = "Host-to-Device",
               src_kind: str | int | None = None, dst_kind: str | int | None = None,
               corr: int | None = None, launch: tuple[int, int] | None = None,
               pid: int | None = None, tid: int | None = None, device: int = 0, stream: int = 7,
               src_device: int | None = None, dst_device: int | None = None,
               api_name: str = "cudaMemcpyAsync_v3020") -> int | None:
        """A memory copy. Kinds are ENUM labels (or raw ids). Defaults follow the
        copy kind: host side "Pageable", device side "Device". Like nsys,
        ``srcDeviceId``/``dstDeviceId`` are written only when given (peer copies).
        Returns the correlation id."""
        p = self.pid if pid is None else pid
        c = self._launch(corr, launch, api_name, p, tid)
        label = copy_kind if isinstance(copy_kind, str) else MEMCPY_OPER.get(copy_kind, ("", ""))[1]
        host_src = label.startswith("Host") or label.startswith("Unified Host")
        host_dst = label.endswith("to-Host")
        if src_kind is None:
            src_kind = "Pageable" if host_src else "Device"
        if dst_kind is None:
            dst_kind = "Pageable" if host_dst else "Device"
        row = self._op(start, end, p, c, device, stream)
        row.update({"bytes": bytes, "copyKind": self.enum_id("ENUM_CUDA_MEMCPY_OPER", copy_kind),
                    "srcKind": self.enum_id("ENUM_CUDA_MEM_KIND", src_kind),
                    "dstKind": self.enum_id("ENUM_CUDA_MEM_KIND", dst_kind),
                    "srcDeviceId": src_device, "dstDeviceId": dst_device, "copyCount": 1})
        self._rows[T_MEMCPY].append(row)
        return c

    def memset(self, start: int, end: int, *, bytes: int, value: int = 0, corr: int | None = None,
               launch: tuple[int, int] | None = None, pid: int | None = None, tid: int | None = None,
               device: int = 0, stream: int = 7, mem_kind: str | int = "Device",
               api_name: str = "cudaMemsetAsync_v3020") -> int | None:
        """A memset. Returns the correlation id."""
        p = self.pid if pid is None else pid
        c = self._launch(corr, launch, api_name, p, tid)
        row = self._op(start, end, p, c, device, stream)
        row.update({"value": value, "bytes": bytes,
                    "memKind": self.enum_id("ENUM_CUDA_MEM_KIND", mem_kind)})
        self._rows[T_MEMSET].append(row)
        return c

    def graph_run(self, start: int, end: int, *, corr: int | None = None,
                  launch: tuple[int, int] | None = None, pid: int | None = None, tid: int | None = None,
                  device: int = 0, stream: int = 7, graph_id: int = 1, graph_exec_id: int = 2,
                  api_name: str = "cudaGraphLaunch_v10000") -> int | None:
        """One graph-level CUDA graph execution. Returns the correlation id."""
        p = self.pid if pid is None else pid
        c = self._launch(corr, launch, api_name, p, tid)
        row = self._op(start, end, p, c, device, stream)
        row.update({"graphId": graph_id, "graphExecId": graph_exec_id})
        self._rows[T_GRAPH].append(row)
        return c

    def sync(self, start: int, end: int, *, sync_type: str | int = "Stream sync", corr: int | None = None,
             pid: int | None = None, device: int = 0, stream: int = 7, event_id: int = 0) -> None:
        """A CUPTI synchronization record (``syncType`` by label)."""
        p = self.pid if pid is None else pid
        row = self._op(start, end, p, corr, device, stream)
        row.update({"syncType": self.enum_id("ENUM_CUPTI_SYNC_TYPE", sync_type), "eventId": event_id})
        self._rows[T_SYNC].append(row)

    # ---- system ---------------------------------------------------------------------

    def gpu(self, device: int = 0, *, name: str = "NVIDIA H200", compute: tuple[int, int] = (9, 0),
            memory_bytes: int = 150109880320, sm_count: int = 132, bus: str = "0000:00:06.0") -> None:
        """A TARGET_INFO_GPU row (``id`` and ``cuDevice`` both ``device``)."""
        self._rows["TARGET_INFO_GPU"].append({
            "vmId": HIGH_BITS, "id": device, "cuDevice": device, "name": name, "busLocation": bus,
            "isDiscrete": 1, "totalMemory": memory_bytes, "smCount": sm_count,
            "computeMajor": compute[0], "computeMinor": compute[1],
            "smMajor": compute[0], "smMinor": compute[1]})

    def thread_name(self, name: str, *, pid: int | None = None, tid: int | None = None) -> None:
        """A ThreadNames row."""
        p, t = self._thread(pid, tid)
        self._rows["ThreadNames"].append({"nameId": self.string(name), "priority": 20,
                                          "globalTid": global_tid(p, t)})

    # ---- output ---------------------------------------------------------------------

    @property
    def capture_end(self) -> int:
        """``ANALYSIS_DETAILS.duration`` as it will be written."""
        return self._max_ts + TAIL_NS if self.duration is None else self.duration

    def write(self) -> Path:
        """Create the file (replacing one at ``path``) and return its path."""
        if self.path.exists():
            self.path.unlink()
        con = sqlite3.connect(self.path)
        try:
            con.execute("PRAGMA journal_mode = OFF")
            con.execute("PRAGMA synchronous = OFF")
            with con:
                if self.meta is not None:
                    self._create(con, "META_DATA_EXPORT")
                    con.executemany("INSERT INTO META_DATA_EXPORT VALUES (?, ?)", list(self.meta.items()))
                if self.analysis:
                    self._create(con, "ANALYSIS_DETAILS")
                    start_time = 1_700_000_000_000_000_000
                    con.execute("INSERT INTO ANALYSIS_DETAILS VALUES (?, ?, ?, ?)",
                                (HIGH_BITS, self.capture_end, start_time, start_time + self.capture_end))
                if self.enums:
                    for table, values in self.enum_tables.items():
                        self._create(con, table)
                        con.executemany(f"INSERT INTO {table} VALUES (?, ?, ?)",
                                        [(i, n, lab) for i, (n, lab) in values.items()])
                tables = set(self._rows) | self._empty | ({T_NVTX} if self._bulk_nvtx else set())
                for table in sorted(tables):
                    self._create(con, table)
                    rows = self._rows.get(table, [])
                    if rows:
                        cols = sorted({k for r in rows for k in r})
                        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
                        con.executemany(sql, [tuple(r.get(c) for c in cols) for r in rows])
                for starts, ends, text_id, gt, did in self._bulk_nvtx:
                    con.executemany(
                        f"INSERT INTO {T_NVTX} (start, end, eventType, globalTid, textId, domainId) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        ((s, e, NVTX_PUSH_POP, gt, text_id, did) for s, e in zip(starts, ends)),
                    )
                if self._strings or "StringIds" in self._empty:
                    self._create(con, "StringIds")
                    con.executemany("INSERT INTO StringIds VALUES (?, ?)",
                                    [(i, s) for s, i in self._strings.items()])
        finally:
            con.close()
        return self.path

    @staticmethod
    def _create(con: sqlite3.Connection, table: str) -> None:
        exists = con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone()
        if not exists:
            con.execute(SCHEMA[table])


def _enum(values: Mapping[int, tuple[str, str] | str]) -> dict[int, tuple[str, str]]:
    """Accept ``{id: label}`` or ``{id: (name, label)}``."""
    return {int(i): (v if isinstance(v, tuple) else (v.upper().replace("-", "_").replace(" ", "_"), v))
            for i, v in values.items()}
