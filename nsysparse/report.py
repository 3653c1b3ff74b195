"""Run every analysis on one trace and gather the results into a :class:`Report`.

Data flows one way: file -> Trace -> analyses -> Report -> renderers. Nothing
here draws or writes files; ``nsysparse.render`` does.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from . import intervals as iv
from . import schema as S
from .errors import NothingToAnalyse, UsageError
from .gpu import any_intervals, busy_in_windows, compute_intervals, step_devices
from .layers import layer_table, layer_windows
from .links import PEAK_KINDS, copies_with_links, default_peaks, disk_reads, link_bandwidth, step_links
from .overlap import h2d_overlap, step_h2d_overlap
from .projection import nvtx_projection
from .ranges import range_table
from .steps import assign_to_steps, find_steps, whole_span_step
from .sync import step_sync_ns, sync_calls, sync_table
from .targets import top_targets
from .trace import Trace
from .waits import step_wait_ns, wait_ranges

STEP_BYTES = {"H2D": "bytes_h2d", "D2H": "bytes_d2h", "D2D": "bytes_d2d", "P2P": "bytes_p2p", "disk": "bytes_disk"}


@dataclass(frozen=True)
class Settings:
    """What to look for. ``given`` names the options the user set explicitly: an
    explicit name that matches nothing is an error, a default one is not."""

    step: str = "step"
    wait: str = "wait|barrier"
    layer: str = "moe_layer"
    io_range: str = "disk_to_cpu"
    warmup: int | None = None
    link_peaks: dict[str, float] = field(default_factory=dict)
    given: frozenset[str] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["given"] = sorted(self.given)
        return d


def parse_link_peaks(items: list[str] | None) -> dict[str, float]:
    """``["H2D=55", "disk=7"]`` -> ``{"H2D": 55.0, "disk": 7.0}``; bad items raise UsageError."""
    out: dict[str, float] = {}
    for item in items or []:
        kind, _, value = item.partition("=")
        kind = kind.strip()
        if kind not in PEAK_KINDS:
            raise UsageError(None, f"--link-peak {item!r}: KIND must be one of {', '.join(PEAK_KINDS)}")
        try:
            gbps = float(value)
        except ValueError:
            raise UsageError(None, f"--link-peak {item!r}: GBPS must be a number (GB/s, 1e9 bytes per second)") from None
        if not gbps > 0:
            raise UsageError(None, f"--link-peak {item!r}: GBPS must be positive")
        out[kind] = gbps
    return out


@dataclass
class Report:
    """Everything ``nsysparse report`` computes for one trace."""

    input: dict[str, Any]
    settings: Settings
    tables: dict[str, pd.DataFrame]
    summary: dict[str, Any]
    notes: list[str]
    trace: Trace = field(repr=False)


def build_report(trace: Trace, settings: Settings = Settings()) -> Report:
    """Compute every table and the summary of CONTRACT.md for ``trace``."""
    try:
        re.compile(settings.wait)
    except re.error as exc:
        raise UsageError(None, f"--wait {settings.wait!r} is not a valid regular expression: {exc}") from None
    notes = [f"the trace lacks {what}" for what in trace.lacks()]
    ranges = trace.prefetch().nvtx_ranges
    path = trace.path
    # the projection needs only the loaded tables: it runs beside the step analyses
    # (numpy sorts and pandas group-bys release the GIL)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nsysparse-projection")
    projection_job = pool.submit(nvtx_projection, trace)
    pool.shutdown(wait=False)

    steps = find_steps(trace, settings.step, settings.warmup)
    if steps.empty:
        if "step" in settings.given:
            raise NothingToAnalyse(path, f"--step {settings.step!r} matches no NVTX range; {_names_hint(ranges)}")
        steps = whole_span_step(trace)
        notes.append(f"no {settings.step!r} range: the whole profiled span is one step")
    if settings.warmup is not None and settings.warmup >= len(steps) > 0:
        notes.append(f"--warmup {settings.warmup} leaves no step to aggregate")

    waits = wait_ranges(trace, settings.wait, exclude_text=settings.step)
    if waits.empty:
        if "wait" in settings.given:
            raise NothingToAnalyse(path, f"--wait {settings.wait!r} matches no NVTX range; {_names_hint(ranges)}")
        notes.append(f"no range matches --wait {settings.wait!r}: the bubble ratio is 0")
    layers_w = layer_windows(ranges, settings.layer, steps)
    if "layer" in settings.given and not (ranges["text"] == settings.layer).any():
        raise NothingToAnalyse(path, f"--layer {settings.layer!r} matches no NVTX range; {_names_hint(ranges)}")
    io = disk_reads(trace, settings.io_range)
    if "io_range" in settings.given and not (ranges["text"] == settings.io_range).any():
        raise NothingToAnalyse(path, f"--io-range {settings.io_range!r} matches no NVTX range; {_names_hint(ranges)}")

    peaks = {**default_peaks(trace), **settings.link_peaks}
    syncs = sync_calls(trace)
    compute = compute_intervals(trace)
    anyop = any_intervals(trace)

    # ---- per step ----
    st = steps.copy()
    dur = st["dur_ns"].to_numpy()
    safe = np.maximum(dur, 1)
    st["wait_ns"] = step_wait_ns(waits, st)
    st["bubble_ratio"] = np.where(dur > 0, st["wait_ns"] / safe, 0.0)
    st["gpu_busy_kernel_ns"] = busy_in_windows(compute, st)
    st["gpu_idle_ratio"] = np.where(dur > 0, 1 - st["gpu_busy_kernel_ns"] / safe, 1.0)
    st["gpu_busy_any_ns"] = busy_in_windows(anyop, st)
    st["sync_ns"] = step_sync_ns(syncs, st)
    st["sync_share"] = np.where(dur > 0, st["sync_ns"] / safe, 0.0)
    st["sync_outside_wait_ns"] = _host_stalled_ns(waits, syncs, st) - st["wait_ns"].to_numpy()
    st["h2d_busy_ns"], st["h2d_overlap_ns"] = step_h2d_overlap(trace, st)

    copies = copies_with_links(trace, io)
    step_of = assign_to_steps(st, copies["start_ns"].to_numpy(), copies["pid"].to_numpy())
    links = link_bandwidth(trace, io, peaks)
    sl = step_links(copies, step_of, links)
    kinds = copies["copy_kind"].map(lambda k: S.LINK_KIND_OF_COPY.get(k, "disk" if k == S.DISK_TO_HOST else None))
    for kind, col in STEP_BYTES.items():
        sel = (kinds == kind).to_numpy() & (step_of >= 0)
        st[col] = np.bincount(step_of[sel], weights=copies["bytes"].to_numpy()[sel], minlength=len(st)).astype(np.int64)
    floor = sl.groupby("step")["floor_ns"].max() if not sl.empty else pd.Series(dtype="float64")
    # a copy that runs past its step's end can ask for more than the step holds:
    # the step is then wholly I/O-bound, and its floor is capped at its duration
    st["io_floor_ns"] = np.minimum(floor.reindex(st["step"]).fillna(0.0).to_numpy(), st["dur_ns"].to_numpy())

    live = st[~st["warmup"]]
    idle_other = _idle_outside_host_stalls(compute, waits, syncs, live)
    overlap = h2d_overlap(trace, live if not live.empty else st)
    layers = layer_table(layers_w, live, waits, syncs, compute, copies[copies["copy_kind"] == S.H2D], io)
    projection = projection_job.result()
    first, last = trace.activity_span
    span_ns = last - first if first is not None and last is not None else 0

    tables = {
        "nvtx_ranges": ranges,
        "marks": trace.marks,
        "kernels": trace.kernels,
        "memcpy": trace.memcpy,
        "memset": trace.memset,
        "graph_runs": trace.graph_runs,
        "api_calls": trace.api_calls,
        "projection": projection,
        "steps": st,
        "step_links": sl,
        "step_devices": step_devices(trace, st),
        "layers": layers,
        "links": links,
        "sync": sync_table(syncs, st, span_ns),
        "ranges": range_table(ranges, projection),
    }
    summary = _summary(trace, settings, st, live, links, sl, overlap, idle_other, notes)
    return Report(input=trace.identity(), settings=settings, tables=tables, summary=summary, notes=notes, trace=trace)


def _host_stalled_ns(waits: pd.DataFrame, syncs: pd.DataFrame, steps: pd.DataFrame) -> np.ndarray:
    """Per step: |waits ∪ sync calls| on the step's thread, clipped to the step."""
    cols = ["start_ns", "end_ns", "pid", "tid"]
    both = pd.concat([waits[cols], syncs[cols]], ignore_index=True).astype("int64")
    return iv.clipped_union_by_thread(both, steps.reset_index(drop=True))


def _idle_outside_host_stalls(compute: pd.DataFrame, waits: pd.DataFrame, syncs: pd.DataFrame, live: pd.DataFrame) -> np.ndarray:
    """Per live step: time the GPU computes nothing while the step's thread is
    neither waiting nor synchronising (step - |kernels ∪ waits ∪ syncs|)."""
    if live.empty:
        return np.zeros(0, dtype=np.int64)
    cols = ["start_ns", "end_ns", "pid", "tid"]
    threads = live[["pid", "tid"]].drop_duplicates()
    gpu = compute[["start_ns", "end_ns"]].merge(threads, how="cross") if len(compute) else pd.DataFrame(columns=cols)
    stalls = pd.concat([waits[cols], syncs[cols], gpu[cols]], ignore_index=True)
    covered = iv.clipped_union_by_thread(stalls.astype({c: "int64" for c in cols}), live.reset_index(drop=True))
    return live["dur_ns"].to_numpy() - covered


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den > 0 else None  # plain floats: JSON-ready


def _summary(
    trace: Trace, settings: Settings, st: pd.DataFrame, live: pd.DataFrame, links: pd.DataFrame,
    sl: pd.DataFrame, overlap: pd.DataFrame, idle_other: np.ndarray, notes: list[str],
) -> dict[str, Any]:
    total = float(live["dur_ns"].sum())
    step_ms = live["dur_ns"].to_numpy() / 1e6
    h2d_busy = float(overlap["h2d_busy_ns"].sum()) if len(overlap) else 0.0
    return {
        "tool": "nsysparse",
        "tool_version": __version__,
        "steps": int(len(st)),
        "warmup": int(st["warmup"].sum()),
        "step_ms_p50": float(np.percentile(step_ms, 50)) if step_ms.size else None,
        "step_ms_p95": float(np.percentile(step_ms, 95)) if step_ms.size else None,
        "step_ms_mean": float(step_ms.mean()) if step_ms.size else None,
        "bubble_ratio": _ratio(live["wait_ns"].sum(), total),
        "gpu_idle_ratio": None if total <= 0 else float(1 - live["gpu_busy_kernel_ns"].sum() / total),
        "gpu_busy_any_ratio": _ratio(live["gpu_busy_any_ns"].sum(), total),
        "sync_share": _ratio(live["sync_ns"].sum(), total),
        "overlap_h2d_compute": _ratio(overlap["overlap_ns"].sum(), h2d_busy) if len(overlap) else None,
        "overlap_by_device": records(overlap),
        "io_floor_share": _ratio(live["io_floor_ns"].sum(), total),
        "links": records(links),
        "targets": top_targets(live, idle_other, sl, links),
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
