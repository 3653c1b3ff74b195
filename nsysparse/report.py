"""Run every analysis on one trace and gather the results into a :class:`Report`.

Data flows one way: file -> Trace -> analyses -> Report -> renderers. Nothing
here draws; ``nsysparse.render`` does, and writes the report folder. The
files written here are the API and OS-runtime calls when ``build_report`` is
given ``spill_to`` (:mod:`nsysparse.tables`): the largest tables of a long trace
go to their Parquet files as soon as they are read, and the analyses read
their rows back a window of time at a time (:mod:`nsysparse.row_windows`).
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import Future, ThreadPoolExecutor
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from . import conventions as C
from . import progress
from . import intervals as iv
from . import schema as S
from .errors import NothingToAnalyse, UsageError
from .breakdown import CATEGORIES, breakdown_tables
from .held_by import held_by_table, wait_holders
from .targets import breakdown_targets
from .gpu import GpuBusy, compute_intervals, gpu_busy_bins, step_devices, unrecorded
from .kernels_summary import kernel_summary
from .layers import layer_table, layer_windows
from .links import copies_table, default_peaks, disk_reads, link_bandwidth, step_links
from .metrics import evaluate
from .overlap import h2d_overlap
from .projection import nvtx_projection
from .ranges import range_table
from .steps import (assign_to_steps, busiest_thread, find_steps, shown_steps, step_table, thread_calls, whole_span_step,
                    with_step_bytes, with_step_kernels)
from .sync import sync_calls, sync_table
from .overlapping_targets import top_targets
from .parquet import file_metadata
from .row_windows import RowWindows, api_call_rows, os_call_rows
from .tables import Spilled, Tables, spill
from .call_stream import CallFile, StreamedCalls, StreamedRows
from .trace import Trace
from .waits import wait_ranges
from .window import Window, window_ns, windowed


@dataclass(frozen=True)
class Settings:
    """What to look for. ``given`` names the options the user set explicitly: an
    explicit name that matches nothing is an error, a default one is not."""

    step: str = C.STEP
    wait: str = C.WAIT
    layer: str = C.LAYER
    io_range: str = C.IO_RANGE
    warmup: int | None = None
    link_peaks: dict[str, float] = field(default_factory=dict)
    given: frozenset[str] = frozenset()
    window: Window | None = None
    io_log: str | None = None  # an engine's JSONL I/O log: the disk link when its ranges carry no payloads

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["given"] = sorted(self.given)
        d["window"] = self.window.to_dict() if self.window else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Settings":
        """The settings :meth:`to_dict` wrote (a report folder's manifest)."""
        w = d.get("window")
        window = None
        if w:
            window = Window(seconds=tuple(w["seconds"]) if w.get("seconds") else None,  # type: ignore[arg-type]
                            steps=tuple(w["steps"]) if w.get("steps") else None)  # type: ignore[arg-type]
        return cls(step=d["step"], wait=d["wait"], layer=d["layer"], io_range=d["io_range"], warmup=d.get("warmup"),
                   link_peaks={k: float(v) for k, v in (d.get("link_peaks") or {}).items()},
                   given=frozenset(d.get("given") or ()), window=window, io_log=d.get("io_log"))


# Tables a report holds besides those CONTRACT.md lists: what its renderers draw.
# They are written to the report folder too, so that ``nsysparse show DIR``
# renders the same report from the folder alone.
RENDER_TABLES = ("copies", "sync_calls", "gpus", "threads", "gpu_busy", "kernels_summary", "breakdown_segments")


@dataclass
class Report:
    """Everything ``nsysparse report`` computes for one trace: ``tables`` holds
    every table its outputs need (CONTRACT.md's and RENDER_TABLES), ``summary``
    the JSON summary; renderers read these and nothing else (no trace)."""

    input: dict[str, Any]
    settings: Settings
    tables: Tables
    summary: dict[str, Any]
    notes: list[str]

    def __post_init__(self) -> None:
        if not isinstance(self.tables, Tables):
            self.tables = Tables(self.tables)


def build_report(trace: Trace, settings: Settings = Settings(), spill_to: Path | None = None) -> Report:
    """Compute every table and the summary of CONTRACT.md for ``trace``.

    With ``spill_to`` (an existing folder), the API calls are streamed to
    ``spill_to/api_calls.parquet`` and the OS-runtime calls to
    ``spill_to/os_calls.parquet`` as they are read (:mod:`nsysparse.call_stream`;
    built whole and written where they cannot stream), the kernels and the NVTX
    projection written to theirs as soon as they are made; the report's
    ``tables["api_calls"]`` (and ``kernels``, ``projection``) reads its file back
    (:mod:`nsysparse.tables`), the breakdown and what-held-the-wait read the
    calls' files a window of time at a time (:mod:`nsysparse.row_windows`), and
    the trace gives the calls up (reading them again if asked) and keeps only the
    kernels' columns the analyses read, so a long trace's analysis never holds a
    table of calls. Same tables, same summary, either way (tests/test_scale.py)."""
    try:
        re.compile(settings.wait)
    except re.error as exc:
        raise UsageError(None, f"--wait {settings.wait!r} is not a valid regular expression: {exc}") from None
    spiller = None if spill_to is None else _Spiller(Path(spill_to), trace, settings)
    try:
        # each table read says so on a long run (nsysparse.progress); spilled, the calls go to
        # their files as soon as they are built, while the rest is read (a window's calls are
        # only known once the window is cut: they go from there)
        whole = spiller is not None and settings.window is None
        trace.prefetch(spiller.take if whole else None, spiller.calls_file() if whole else None,
                       spiller.calls_file("os_calls") if whole else None)
        with progress.phase("analysing"):
            return _analyse(trace, settings, spiller)
    finally:
        if spiller is not None:  # a failure stops the files being written, and waits for the writer
            spiller.close()


class _Spiller:
    """Writes the API and OS-runtime calls, the kernels and the projection to
    their files in ``folder`` (or takes the file a call stream wrote), on a
    thread of its own (Parquet encoding releases the GIL) that then holds the
    only reference to the frame: once written, the analyses read the calls back a
    window of time at a time (:class:`RowWindows`) and the frame is freed. The
    OS calls' file is no output: it goes with the folder."""

    # how the analyses read each back (the kernels: from memory, the columns they use)
    ROWS: dict[str, Callable[..., RowWindows] | None] = {"api_calls": api_call_rows, "os_calls": os_call_rows,
                                                          "kernels": None, "projection": None}

    def __init__(self, folder: Path, trace: Trace, settings: Settings) -> None:
        self.folder, self.trace, self.settings = folder, trace, settings
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nsysparse-spill")
        self.jobs: dict[str, Future[tuple[Spilled, RowWindows | None]]] = {}
        self.cancel = threading.Event()
        self._lock = threading.Lock()  # the loading threads submit concurrently
        self._meta: dict[str, str] | None = None
        self.facts: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}

    def take(self, name: str, df: pd.DataFrame | StreamedCalls | StreamedRows) -> bool:
        """:meth:`Trace.prefetch`'s ``on_built``: the table to its file from now (or
        streamed there already), and what the report reads of the API calls besides
        their rows (:func:`call_facts`) taken now; True: the trace may let the table
        go once it has no more use for it."""
        if isinstance(df, (StreamedCalls, StreamedRows)):
            if isinstance(df, StreamedCalls):
                self.facts[name] = call_facts(df)
            done: Future[tuple[Spilled, RowWindows]] = Future()
            done.set_result((df.spilled, df.rows))
            self.jobs[name] = done
            return True
        if name == "api_calls":
            self.facts[name] = call_facts(df)
        job = self.submit(name, df)
        if name == "kernels":
            return False  # the analyses read them: narrowed once written (submit)
        if name == "os_calls":
            # written before the API calls stream (Trace.prefetch waits for this build): the
            # stream's launch index and first batches then do not meet the OS calls' frame
            # (2 GB: 8.7M calls, 357 MB, were the read's peak with them, 1.43-1.46 GB)
            job.result()
        return True

    def calls_file(self, name: str = "api_calls") -> CallFile:
        """Where :meth:`Trace.prefetch` streams the API calls (or ``"os_calls"``) to: their file here."""
        return CallFile(self.folder / f"{name}.parquet", self.meta, self.cancel)

    def meta(self) -> dict[str, str]:
        """Every file's provenance (made once: the input's sha256 waits for its hash)."""
        with self._lock:
            if self._meta is None:
                self._meta = file_metadata(self.trace.identity(), self.settings.to_dict())
            return self._meta

    def job(self, name: str, trace: Trace) -> "Future[tuple[Spilled, Any]]":
        """The job writing table ``name``: the one started as it was built, or one started now."""
        return self.jobs[name] if name in self.jobs else self.submit(name, getattr(trace, name))

    def submit(self, name: str, df: pd.DataFrame) -> "Future[tuple[Spilled, Any]]":
        """Table ``name`` to its file, once (a second call gets the first one's job).
        The kernels, once written (for a report of the whole trace), are narrowed in
        the trace to the columns the projection and the analyses read, before the
        job ends, not when the projection starts (14.2M kernels: 370 MB freed; on two
        cores at 5 GB the write ends after the read, so the run's peak is the same)."""
        meta = self.meta()
        narrow = ((self.trace, name, KERNEL_COLUMNS + PROJECTED_COLUMNS)
                  if name == "kernels" and self.settings.window is None else None)
        with self._lock:
            if name not in self.jobs:
                self.jobs[name] = self.pool.submit(_spill_rows, df, self.folder / f"{name}.parquet", meta,
                                                   self.ROWS[name], self.cancel, narrow)
            return self.jobs[name]

    def close(self) -> None:
        """Stop a file still being written (a refused trace, a failure: nothing reads it
        then) and wait for the writer."""
        self.cancel.set()
        self.pool.shutdown(wait=True)


def _analyse(trace: Trace, settings: Settings, spiller: _Spiller | None = None) -> Report:
    notes = [f"the trace lacks {what}" for what in trace.lacks()]
    ranges = trace.nvtx_ranges
    path = trace.path
    first_step, warmup = 0, settings.warmup
    if settings.window is not None:
        lo, hi, first_step = window_ns(trace, settings.window, find_steps(ranges, settings.step, 0))
        trace = windowed(trace, lo, hi)  # type: ignore[assignment]
        ranges = trace.nvtx_ranges
        if warmup is None and first_step > 0:
            warmup = 0  # the warm-up steps lie before the window
        notes.append(f"{settings.window}: only what starts between {lo / 1e9:.6f} s and {hi / 1e9:.6f} s "
                     f"of the capture is analysed")
    span = trace.activity_span  # from the API calls among others: before the trace gives them up
    # what the report reads of the API calls besides their rows (spilled: taken as they were built)
    facts = spiller.facts.get("api_calls") if spiller is not None else None  # (none for a window)
    syncs, called = facts or call_facts(trace.api_calls)
    steps = find_steps(ranges, settings.step, warmup)
    if steps.empty:
        if "step" in settings.given:
            raise NothingToAnalyse(path, f"--step {settings.step!r} matches no NVTX range; {_names_hint(ranges)}")
        steps = whole_span_step(span, called)
        notes.append(f"no {settings.step!r} range: the whole profiled span is one step, "
                     f"on thread {int(steps['tid'].iloc[0])} of process {int(steps['pid'].iloc[0])} "
                     "(the one that makes the most CUDA calls)")
    if settings.warmup is not None and settings.warmup >= len(steps) > 0:
        notes.append(f"--warmup {settings.warmup} leaves no step to aggregate")

    waits = wait_ranges(ranges, settings.wait, exclude_text=settings.step)
    if waits.empty:
        if "wait" in settings.given:
            raise NothingToAnalyse(path, f"--wait {settings.wait!r} matches no NVTX range; {_names_hint(ranges)}")
        notes.append(f"no range matches --wait {settings.wait!r}: the bubble ratio is 0")
    layers_w = layer_windows(ranges, settings.layer, steps)
    if "layer" in settings.given and not (ranges["text"] == settings.layer).any():
        raise NothingToAnalyse(path, f"--layer {settings.layer!r} matches no NVTX range; {_names_hint(ranges)}")
    io = disk_reads(ranges, settings.io_range)
    if io.empty and settings.io_log:
        from .iolog import log_disk_reads, read_io_log

        io = log_disk_reads(trace, read_io_log(settings.io_log), settings.io_range)
        notes.append(f"disk reads from the engine's I/O log {settings.io_log} ({len(io)} reads), "
                     "aligned on its clock mark: the trace's ranges carry no byte payloads")
    if "io_range" in settings.given and not (ranges["text"] == settings.io_range).any():
        raise NothingToAnalyse(path, f"--io-range {settings.io_range!r} matches no NVTX range; {_names_hint(ranges)}")

    # spilled, the calls' files are being written already (or from now, for a window) and the
    # trace gives the tables up: the analyses below read them through RowWindows
    api_job: Future[tuple[Spilled, RowWindows]] | None = None
    api_src: RowWindows | Future[tuple[Spilled, RowWindows]]
    os_src: RowWindows | Future[tuple[Spilled, RowWindows]]
    if spiller is not None:
        api_src = api_job = spiller.job("api_calls", trace)
        os_src = spiller.job("os_calls", trace)
        trace.release("api_calls", "os_calls")
    else:
        api_src, os_src = api_call_rows(trace.api_calls), os_call_rows(trace.os_calls)
    # the shared inputs of the analyses, each built once
    peaks = {**default_peaks(trace.gpus), **settings.link_peaks}
    compute = compute_intervals(trace.kernels, trace.graph_runs)
    # without kernels and without copies nothing shows the GPU's work was traced (a lone fill proves little)
    any_op = len(trace.memcpy) > 0 or len(compute) > 0
    missing = unrecorded(trace.has(S.T_KERNEL) or trace.has(S.T_GRAPH), trace.has(S.T_MEMCPY), called, any_op)
    # spilled, the kernels go to their file beside the projection, which then narrows them
    kernels_job = spiller.submit("kernels", trace.kernels) if spiller is not None and settings.window is None else None
    if api_job is not None:
        # the API calls' frame lives until their file is written: the analyses' inputs are
        # not piled on it (2 GB: a peak of 2.35-2.7 GB, by how the threads met, -> 2.3 GB)
        api_job.result()
    # the projection first, while the least is held: the one analysis that reads the kernels'
    # launching calls; spilled, the kernels then keep only KERNEL_COLUMNS (their file has the
    # rest). It runs alone: beside the step analyses, its peak met theirs (2 GB: 1.97 GB)
    projection = _projection(trace, kernels_job)
    projection_job = None
    if kernels_job is not None:
        # spilled, the projection (a row per range that launched GPU work: 2M at 5 GB) goes to its
        # file now, and the analyses keep the columns the range table reads
        projection_job = spiller.submit("projection", projection)  # type: ignore[union-attr]
        projection = projection[RANGE_TABLE_COLUMNS]
    # the GPU's busy time, kernels' and any op's, unioned once for the analyses that read it,
    # which run first and free it before the rest
    kernel_busy = GpuBusy.of(compute)
    any_busy = kernel_busy.plus(trace.memcpy, trace.memset)
    h2d = trace.memcpy[trace.memcpy["copy_kind"] == S.H2D]
    st = step_table(steps, waits, syncs, kernel_busy, any_busy, h2d)
    devices, busy = step_devices(kernel_busy, any_busy, trace.gpus, st), gpu_busy_bins(kernel_busy, any_busy, st)
    del any_busy
    live = st[~st["warmup"]]  # (the figures these read of a step are the step table's so far)
    idle_other = _idle_outside_host_stalls(kernel_busy, waits, syncs, live)
    overlap = h2d_overlap(h2d, kernel_busy, live if not live.empty else st)
    layers = layer_table(layers_w, live, waits, syncs, kernel_busy, h2d, io)
    del kernel_busy

    copies = copies_table(trace.memcpy, io)
    # the exclusive breakdown needs only the loaded tables and the steps: a thread runs it
    # beside the other step analyses (numpy and pandas release the GIL), from when the busy
    # sets are freed (their peak not piled on its). It reads its own copy of the steps.
    gpu_copies = copies.iloc[:len(trace.memcpy)]  # the memcpy rows (they come first), not the disk reads: a view
    bd_steps = st[["step", "start_ns", "end_ns", "dur_ns", "pid", "tid", "warmup"]].copy()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nsysparse-analysis")
    breakdown_job = pool.submit(_breakdown_tables, bd_steps, compute, api_src, waits, gpu_copies,
                                trace.memset, io, os_src, shown_steps(bd_steps))
    pool.shutdown(wait=False)
    step_of = assign_to_steps(st, copies["start_ns"].to_numpy(), copies["pid"].to_numpy())
    links = link_bandwidth(copies, peaks)
    sl = step_links(copies, step_of, links)
    st = with_step_bytes(st, copies, step_of, sl)
    st = with_step_kernels(st, compute)

    live = st[~st["warmup"]]
    first, last = span
    span_ns = last - first if first is not None and last is not None else 0

    tables = {
        "nvtx_ranges": ranges,
        "marks": trace.marks,
        "kernels": trace.kernels if kernels_job is None else kernels_job.result()[0],
        "memcpy": trace.memcpy,
        "memset": trace.memset,
        "graph_runs": trace.graph_runs,
        "api_calls": trace.api_calls if api_job is None else api_job,  # a Future when spilling: resolved below
        "projection": projection if projection_job is None else projection_job,  # a Future: resolved below
        "steps": st,
        "step_links": sl,
        "step_devices": devices,
        "layers": layers,
        "links": links,
        "sync": sync_table(syncs, st, span_ns),
        "ranges": range_table(ranges, projection),
        "copies": copies,
        "sync_calls": syncs,
        "gpus": trace.gpus,
        "threads": trace.threads,
        "gpu_busy": busy,
        "kernels_summary": kernel_summary(trace.kernels, st),
    }
    # ---- the exclusive breakdown, what held the waits, and the targets from them ----
    per_wait = wait_holders(st, waits, ranges, _named_gpu_ops(trace, gpu_copies), _rows(api_src), syncs)
    bd, tables["breakdown_segments"], os_names = breakdown_job.result()
    tables["breakdown"] = bd
    tables["held_by"] = held_by_table(per_wait)

    if "kernels" in missing:
        notes.append(("kernels were launched but the trace has no kernel records" if any_op else
                      "the trace records no kernel and no copy") +
                     ": GPU idle is unknown (profile with `-t cuda` and keep CUDA kernel tracing on)")
        for t in (st, tables["step_devices"]):
            t["gpu_idle_ratio"] = np.nan
            t["gpu_busy_kernel_ns"] = pd.array([pd.NA] * len(t), dtype="Int64")
    if "copies" in missing:
        notes.append("memory copies were called but the trace has no copy records: link bandwidth, "
                     "overlap and the I/O floor are unknown (profile with `-t cuda`)")
    notes[:0] = [n for n in trace.notes if n not in notes]  # what the loader dropped or derived
    summary = _summary(trace, settings, st, live, links, sl, overlap, idle_other, notes)
    summary.update(_breakdown_summary(st, live, bd, tables["held_by"], os_names, copies, step_of, peaks))
    summary["overlapping_targets"] = summary.pop("targets_overlapping")
    unknown = {"kernels": ("gpu_idle_ratio", "gpu_busy_any_ratio", "overlap_h2d_compute"),
               "copies": ("gpu_busy_any_ratio", "overlap_h2d_compute", "io_floor_share")}
    for what in missing:
        for key in unknown[what]:
            summary[key] = None
    summary["unrecorded"] = sorted(missing)
    check_summary(summary, path)
    if first_step:  # steps keep the numbers they have in the whole trace (after every analysis that joins on them)
        for t in tables.values():
            if isinstance(t, pd.DataFrame) and "step" in t.columns:
                t["step"] = t["step"] + first_step
    if api_job is not None:
        tables["api_calls"] = api_job.result()[0]
    if projection_job is not None:
        tables["projection"] = projection_job.result()[0]
    if kernels_job is not None:  # narrowed for the analyses: given up, so that a later ask reads them whole
        trace.release("kernels")
    return Report(input=trace.identity(), settings=settings, tables=Tables(tables), summary=summary, notes=notes)


def call_facts(api: pd.DataFrame | StreamedCalls) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the report reads of the API calls (their frame, or what was taken of
    them as they streamed to their file) besides their rows: the synchronising
    calls (:func:`sync_calls`), and a frame that stands in for the calls where
    only the names called and the thread making the most calls count
    (:func:`unrecorded`, :func:`whole_span_step`): one row per base name called
    (a null one included), all on that thread (``cuda_thread``)."""
    if isinstance(api, StreamedCalls):
        syncs, threads, names = sync_calls(api.syncs), api.threads, api.names
    else:
        syncs = sync_calls(api)
        if api.empty:
            return syncs, api.iloc[0:0][["pid", "tid", "base_name"]]
        threads = thread_calls(api["pid"].to_numpy(), api["tid"].to_numpy())
        base = pd.Categorical(api["base_name"])
        codes = np.asarray(base.codes)
        seen = np.flatnonzero(np.bincount(codes + 1, minlength=len(base.categories) + 1)) - 1  # -1: a null name
        names = pd.Categorical.from_codes(seen, dtype=base.dtype)
    pid, tid = busiest_thread(threads)
    return syncs, pd.DataFrame({"pid": np.full(len(names), pid, np.int64), "tid": np.full(len(names), tid, np.int64),
                                "base_name": names})


def _spill_rows(df: pd.DataFrame, path: Path, meta: dict[str, str], rows: Callable[..., RowWindows] | None,
                cancel: threading.Event | None = None, narrow: tuple[Trace, str, tuple[str, ...]] | None = None
                ) -> tuple[Spilled, RowWindows | None]:
    """``df`` to its file, and the :class:`RowWindows` (``rows(df, path)``) that read its rows back from it
    (None without ``rows``); ``narrow`` (trace, table, columns): then the trace keeps only those columns
    of that table."""
    spilled = spill(df, path, meta, cancel)
    if narrow is not None:
        trace, table, columns = narrow
        trace.narrow(table, columns)
    return spilled, None if rows is None else rows(df, path)


# The kernels' columns the analyses read after the projection: the launching call's,
# the stream, the duration, the correlation and graph node ids only go to the kernels' file.
KERNEL_COLUMNS = ("start_ns", "end_ns", "device", "pid", "name", "short_name")
# and those the projection reads besides
PROJECTED_COLUMNS = ("correlation_id", "launch_tid", "api_start_ns", "api_end_ns")
# The projection's columns the range table reads (ranges.range_table)
RANGE_TABLE_COLUMNS = ["name", "proj_dur_ns", "proj_busy_ns"]


def _projection(trace: Trace, kernels_file: "Future[tuple[Spilled, Any]] | None") -> pd.DataFrame:
    """:func:`nvtx_projection`; with ``kernels_file`` (the kernels being written to
    theirs, from when they were built), once it is written (the job then narrowed
    the trace's kernels to KERNEL_COLUMNS and PROJECTED_COLUMNS), then the kernels
    narrowed to KERNEL_COLUMNS (at 5 GB: 14.2M kernels, 1.35 GB -> 0.97 GB -> 0.49 GB) until
    the report is built, when the trace gives them up (read whole again if asked for)."""
    if kernels_file is not None:
        kernels_file.result()  # the job narrowed them once written (_Spiller.submit)
    projection = nvtx_projection(trace)
    if kernels_file is not None:
        trace.narrow("kernels", KERNEL_COLUMNS)
    return projection


def _rows(src: RowWindows | Future[tuple[Spilled, RowWindows]]) -> RowWindows:
    """The RowWindows of a table, once its file is written when it is being spilled."""
    return src.result()[1] if isinstance(src, Future) else src


def _breakdown_tables(steps: pd.DataFrame, compute: pd.DataFrame, api: Any, waits: pd.DataFrame,
                      copies: pd.DataFrame, memsets: pd.DataFrame, disk: pd.DataFrame, os_calls: Any,
                      shown: list[int]) -> Any:
    """:func:`breakdown_tables` once the calls' files are written (when spilled)."""
    return breakdown_tables(steps, compute, _rows(api), waits, copies, memsets, disk, _rows(os_calls), shown)


def _idle_outside_host_stalls(compute: GpuBusy, waits: pd.DataFrame, syncs: pd.DataFrame, live: pd.DataFrame) -> np.ndarray:
    """Per live step: time the GPU computes nothing while the step's thread is
    neither waiting nor synchronising (step - |kernels ∪ waits ∪ syncs|), with
    the kernels of every process."""
    if live.empty:
        return np.zeros(0, dtype=np.int64)
    cols = ["start_ns", "end_ns", "pid", "tid"]
    stalls = pd.concat([waits[cols], syncs[cols]], ignore_index=True).astype("int64")
    covered = iv.clipped_union_by_thread(stalls, live.reset_index(drop=True),
                                         shared=(compute.all.starts, compute.all.ends))
    return live["dur_ns"].to_numpy() - covered


# Summary keys that are times (ms, never negative) and shares (in [0, 1]).
_TIME_KEYS = ("step_ms_p50", "step_ms_p95", "step_ms_mean")
_SHARE_KEYS = ("bubble_ratio", "gpu_idle_ratio", "gpu_busy_any_ratio", "sync_share", "overlap_h2d_compute",
               "io_floor_share")
_SHARE_SLACK = 1e-9  # float rounding of a ratio of int64 sums


def check_summary(summary: dict[str, Any], path: object) -> None:
    """Refuse to write a summary that says something impossible: a negative time,
    a share outside [0, 1], NaN or infinity anywhere. The loader drops rows that
    cannot be read as declared, so reaching this is our bug: it raises
    AssertionError (exit 1 with a traceback), never a wrong number on disk."""
    bad = []

    def walk(v: Any, where: str) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, f"{where}.{k}" if where else str(k))
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                walk(x, f"{where}[{i}]")
        elif isinstance(v, float) and not math.isfinite(v):
            bad.append(f"{where} is {v}")

    walk(summary, "")
    for k in _TIME_KEYS:
        if summary.get(k) is not None and summary[k] < 0:
            bad.append(f"{k} is negative ({summary[k]})")
    for k in _SHARE_KEYS:
        v = summary.get(k)
        if v is not None and math.isfinite(v) and not -_SHARE_SLACK <= v <= 1 + _SHARE_SLACK:
            bad.append(f"{k} is outside [0, 1] ({v})")
    for k, v in (summary.get("breakdown") or {}).items():
        if v < 0:
            bad.append(f"breakdown.{k} is negative ({v})")
    for t in summary.get("targets") or []:
        if t["share"] is not None and not -_SHARE_SLACK <= t["share"] <= 1 + _SHARE_SLACK:
            bad.append(f"target {t['what']} share is outside [0, 1] ({t['share']})")
    for link in summary.get("links") or []:
        for k in ("busy_ns", "sum_dur_ns", "bytes"):
            if link.get(k) is not None and link[k] < 0:
                bad.append(f"link {link['link']} {k} is negative ({link[k]})")
    if bad:
        raise AssertionError(f"{path}: the summary would say something impossible: " + "; ".join(bad))


def _named_gpu_ops(trace: Trace, gpu_copies: pd.DataFrame) -> list[pd.DataFrame]:
    """Every GPU op with a ``name`` for what-held-the-wait, a frame per table
    (``pid``, ``end_ns``, ``name``; the kernels' a view of their columns, no copy):
    kernels by short name, copies (``gpu_copies``: the copies table's memcpy rows)
    by class (``H2D pinned`` ...), memsets, graph runs."""
    parts = [trace.kernels[["pid", "end_ns", "short_name"]].rename(columns={"short_name": "name"})]
    # the copies' classes renamed once per class (in text order, as a categorical of the names), not a name per copy
    classes = pd.Categorical(gpu_copies["category"]).remove_unused_categories()
    names = classes.rename_categories(pd.Index(["copy " + c for c in classes.categories], dtype=object))
    parts.append(pd.DataFrame({"pid": gpu_copies["pid"], "end_ns": gpu_copies["end_ns"], "name": names}))
    for df, name in ((trace.memset, "memset"), (trace.graph_runs, "graph run")):
        parts.append(pd.DataFrame({"pid": df["pid"], "end_ns": df["end_ns"],
                                   "name": pd.Categorical.from_codes(np.zeros(len(df), np.int8), categories=[name])}))
    return [p for p in parts if len(p)]


def _breakdown_summary(
    st: pd.DataFrame, live: pd.DataFrame, bd: pd.DataFrame, held: pd.DataFrame, os_names: pd.DataFrame,
    copies: pd.DataFrame, step_of: np.ndarray, peaks: dict[str, float],
) -> dict[str, Any]:
    """``breakdown`` (category -> mean ms per measured step; sums to the mean
    step), ``breakdown_share``, ``targets`` (ranked, from the breakdown),
    ``held_by`` (the top holders of the waits, ms per measured step)."""
    k = len(live)
    steps_live = live["step"].to_numpy()
    mine = bd[bd["step"].isin(steps_live)]
    per_cat = mine.groupby("category", sort=False)["ns"].sum().reindex(list(CATEGORIES)).fillna(0)
    total = float(live["dur_ns"].sum())
    breakdown = {c: (float(v) / k / 1e6 if k else 0.0) for c, v in per_cat.items()}
    share = {c: (float(v) / total if total > 0 else None) for c, v in per_cat.items()}
    by_class = (copies.assign(step=step_of)[lambda c: c["step"].isin(steps_live)]
                .groupby("category")["bytes"].sum() / max(k, 1)).to_dict() if k else {}
    h = held[held["step"].isin(steps_live)].groupby(["holder", "tid"], dropna=False, sort=False)["ns"].sum()
    h = h.sort_values(ascending=False)
    held_rows = [{"holder": holder, "tid": None if pd.isna(tid) else int(tid), "ms_per_step": float(ns) / k / 1e6}
                 for (holder, tid), ns in h.items()] if k else []
    top_os = (os_names[os_names["step"].isin(steps_live)].groupby("name")["ns"].sum().sort_values(ascending=False)
              .head(3).index.astype(str).tolist())
    kernels = float(live["kernels"].mean()) if k else None
    kmean = float(live["kernel_mean_ns"].mean()) / 1e3 if k and live["kernel_mean_ns"].notna().any() else None
    mean_step_ms = total / k / 1e6 if k else 0.0
    targets = breakdown_targets(breakdown, mean_step_ms, by_class, peaks, kernels, kmean, top_os,
                                held_rows[0]["holder"] if held_rows else None)
    return {"breakdown": breakdown, "breakdown_share": share, "targets": targets, "held_by": held_rows[:10]}


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den > 0 else None  # plain floats: JSON-ready


def _summary(
    trace: Trace, settings: Settings, st: pd.DataFrame, live: pd.DataFrame, links: pd.DataFrame,
    sl: pd.DataFrame, overlap: pd.DataFrame, idle_other: np.ndarray, notes: list[str],
) -> dict[str, Any]:
    return {
        "tool": "nsysparse",
        "tool_version": __version__,
        "steps": int(len(st)),
        "warmup": int(st["warmup"].sum()),
        **evaluate(live),
        "overlap_by_device": records(overlap),
        "links": records(links),
        "targets_overlapping": top_targets(live, idle_other, sl, links),
        "input": trace.identity(),
        "settings": settings.to_dict(),
        "notes": list(notes),
    }


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """A DataFrame as JSON-ready records: NaN/NA -> None, numpy scalars -> Python."""
    return [{k: jsonable(v) for k, v in row.items()} for row in df.to_dict(orient="records")]


def jsonable(v: Any) -> Any:
    if v is None or v is pd.NA:
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(v) or math.isinf(v) else float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def _names_hint(ranges: pd.DataFrame, k: int = 8) -> str:
    if ranges.empty:
        return "the trace has no NVTX ranges (profile with `-t cuda,nvtx`)"
    names = ranges["text"].value_counts().index[:k].tolist()
    return "range names seen: " + ", ".join(repr(n) for n in names)
