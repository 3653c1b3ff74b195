"""Charts of a report, as PNG, drawn headless with matplotlib's object API.

Four charts, each a function ``Report -> Figure``; :func:`write_charts` saves them:

- ``timeline.png`` (:func:`timeline_figure`): one representative step, one lane
  per kind of activity (the step thread's NVTX ranges by depth, its
  synchronising calls, other threads' ranges inside the step, each GPU stream),
  copies coloured by link.
- ``steps.png`` (:func:`steps_figure`): per step, wait / sync outside wait / other.
- ``links.png`` (:func:`links_figure`): per-copy GB/s per link, with the link's
  effective GB/s and its peak.
- ``gpu_busy.png`` (:func:`gpu_busy_figure`): per time bin, the share of the bin
  with a kernel (or graph run) running and with any GPU op, per device.

Nothing here goes through ``pyplot``: no global figure state, no GUI backend,
nothing shown. The pure helpers (:func:`representative_step`,
:func:`busy_fraction`, :func:`timeline_lanes`, :func:`step_breakdown`,
:func:`copy_rates`) hold the little computing the charts need, so tests can
check it without reading pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from .. import intervals as iv
from .. import schema as S
from ..links import disk_reads, link_label, with_link_labels
from ..report import Report
from ..sync import sync_calls

DPI = 120
MAX_BARS = 5000  # per lane and colour: beyond this, sub-pixel neighbours are merged into their union
GPU_BINS = 200
MAX_STEP_BARS = 400  # beyond this many steps the step chart draws areas, not bars
FONT = 8  # points, for text inside bars and tick labels

# One colour per kind of work, shared by every chart.
KERNEL = "#4c6a85"
MEMSET = "#b0b0b0"
SYNC = "#e07b39"
DISK = "#c0392b"
LINK_COLOURS = {
    "H2D pinned": "#2e9d4c",
    "H2D pageable": "#c9b800",
    "D2H": "#8e5cc4",
    "D2D": "#27b5c9",
    "P2P": "#e052a8",
    "other copy": "#8c564b",
    "disk": DISK,
}
NVTX_PALETTE = [  # light fills so black text inside stays readable
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2",
    "#dbdb8d", "#9edae5", "#d9d9d9", "#fdd0a2", "#c7e9c0", "#dadaeb", "#fcbba1",
]
# boxplot's ``vert=False`` became ``orientation="horizontal"`` in matplotlib 3.10
_HORIZONTAL: dict[str, object] = (
    {"orientation": "horizontal"} if tuple(int(p) for p in matplotlib.__version__.split(".")[:2]) >= (3, 10) else {"vert": False}
)
SHORT_KIND = {S.H2D: "H2D", S.D2H: "D2H", S.D2D: "D2D", S.P2P: "P2P", S.DISK_TO_HOST: "Disk"}


# ---------------------------------------------------------------- pure helpers


def representative_step(steps: pd.DataFrame) -> pd.Series | None:
    """The step a timeline shows: of the non-warm-up steps (all steps when every
    one is warm-up), the one whose duration is the median. With an even count the
    two middle steps are equally close to the median; the shorter one (the lower
    median) is taken, then the earlier one. None when there are no steps."""
    if steps.empty:
        return None
    live = steps[~steps["warmup"].astype(bool)]
    pool = live if not live.empty else steps
    ordered = pool.sort_values(["dur_ns", "step"], kind="stable")
    return ordered.iloc[(len(ordered) - 1) // 2]


def bin_edges(lo: int, hi: int, bins: int = GPU_BINS) -> npt.NDArray[np.int64]:
    """``bins`` + 1 increasing int64 edges from ``lo`` to ``hi`` (fewer bins when the
    span has fewer nanoseconds than ``bins``)."""
    n = max(1, min(int(bins), int(hi - lo)))
    edges = np.unique(np.round(np.linspace(lo, hi, n + 1)).astype(np.int64))
    return edges if edges.size >= 2 else np.array([lo, lo + 1], dtype=np.int64)


def busy_fraction(starts: npt.ArrayLike, ends: npt.ArrayLike, edges: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Per bin ``[edges[i], edges[i+1])``: the fraction of it covered by the union
    of the intervals ``[starts, ends)``, in [0, 1]. Overlapping intervals count once.
    Vectorised: the union is built once and its cumulative coverage is read at the
    edges (:func:`nsysparse.intervals.covered_before`)."""
    e = np.asarray(edges, dtype=np.int64)
    us, ue = iv.union(starts, ends)
    covered = np.diff(iv.covered_before(us, ue, e)).astype(np.float64)
    width = np.diff(e).astype(np.float64)
    return np.clip(np.divide(covered, width, out=np.zeros_like(covered), where=width > 0), 0.0, 1.0)


def copy_category(copy_kind: pd.Series, src_kind: pd.Series) -> pd.Series:
    """The colour class of each copy: ``H2D pinned``, ``H2D pageable``, ``D2H``,
    ``D2D``, ``P2P`` or ``other copy`` (host-to-host, arrays)."""
    ck = copy_kind.astype(object).to_numpy()
    sk = src_kind.astype(object).to_numpy()
    out = np.full(len(ck), "other copy", dtype=object)
    out[ck == S.H2D] = "H2D pageable"
    out[(ck == S.H2D) & (sk == "Pinned")] = "H2D pinned"
    for kind in (S.D2H, S.D2D, S.P2P):
        out[ck == kind] = S.LINK_KIND_OF_COPY[kind]
    return pd.Series(out, index=copy_kind.index, dtype=object)


def step_breakdown(report: Report) -> pd.DataFrame:
    """Per step: ``step``, ``warmup``, ``dur_ns``, ``wait_ns`` (union of wait ranges
    on the step's thread), ``sync_only_ns`` (synchronising calls outside those
    waits), ``other_ns`` (the rest); the three parts sum to ``dur_ns``. Read from
    the steps table: the renderer computes nothing."""
    st = report.tables["steps"].reset_index(drop=True)
    dur = st["dur_ns"].to_numpy(dtype=np.int64)
    wait = st["wait_ns"].to_numpy(dtype=np.int64)
    sync = st["sync_outside_wait_ns"].to_numpy(dtype=np.int64)
    return pd.DataFrame(
        {
            "step": st["step"].to_numpy(),
            "warmup": st["warmup"].to_numpy(dtype=bool),
            "dur_ns": dur,
            "wait_ns": wait,
            "sync_only_ns": sync,
            "other_ns": dur - wait - sync,
        }
    )


def copy_rates(report: Report) -> pd.DataFrame:
    """Every copy with a duration, and every disk read: ``link`` (as in the links
    table), ``category`` (colour class) and ``gbps`` (bytes / duration, 1e9 B/s)."""
    parts = []
    m = report.tables["memcpy"]
    if len(m):
        m = m[m["dur_ns"] > 0]
        parts.append(pd.DataFrame({
            "link": with_link_labels(m).to_numpy(dtype=object),
            "category": copy_category(m["copy_kind"], m["src_kind"]).to_numpy(dtype=object),
            "gbps": m["bytes"].to_numpy(dtype=np.float64) / m["dur_ns"].to_numpy(dtype=np.float64),
        }))
    io = disk_reads(report.trace, report.settings.io_range)
    io = io[io["dur_ns"] > 0]
    if len(io):
        parts.append(pd.DataFrame({
            "link": link_label(S.DISK_TO_HOST, "Disk", "Host", None, None),
            "category": "disk",
            "gbps": io["bytes"].to_numpy(dtype=np.float64) / io["dur_ns"].to_numpy(dtype=np.float64),
        }))
    if not parts:
        return pd.DataFrame({"link": pd.Series(dtype=object), "category": pd.Series(dtype=object), "gbps": pd.Series(dtype="float64")})
    return pd.concat(parts, ignore_index=True)


# ---------------------------------------------------------------- timeline lanes


@dataclass
class Lane:
    """One row of the timeline: intervals in ns (clipped to the step), a fill
    colour and an optional label per interval."""

    label: str
    start: npt.NDArray[np.int64]
    end: npt.NDArray[np.int64]
    colour: npt.NDArray[np.object_]
    text: npt.NDArray[np.object_]
    kind: str  # "nvtx", "sync", "thread", "gpu"

    def __len__(self) -> int:
        return int(self.start.size)


def _thread_label(names: dict[tuple[int, int], str], pid: int, tid: int) -> str:
    name = names.get((pid, tid))
    return f"{name} {tid}" if name else f"tid {tid}"


def _in_window(df: pd.DataFrame, lo: int, hi: int) -> pd.DataFrame:
    return df[(df["start_ns"].to_numpy() < hi) & (df["end_ns"].to_numpy() > lo)]


def _lane(label: str, df: pd.DataFrame, lo: int, hi: int, colour: npt.ArrayLike, text: npt.ArrayLike, kind: str) -> Lane:
    s = np.clip(df["start_ns"].to_numpy(dtype=np.int64), lo, hi)
    e = np.clip(df["end_ns"].to_numpy(dtype=np.int64), lo, hi)
    n = len(df)
    return Lane(label, s, e, np.broadcast_to(np.asarray(colour, dtype=object), (n,)).copy(),
                np.broadcast_to(np.asarray(text, dtype=object), (n,)).copy(), kind)


def _nvtx_colours(texts: pd.Series, io_range: str) -> np.ndarray:
    uniq = sorted(set(texts.astype(object)))
    pal = {t: NVTX_PALETTE[i % len(NVTX_PALETTE)] for i, t in enumerate(uniq)}
    pal[io_range] = DISK
    return texts.astype(object).map(pal).to_numpy(dtype=object)


def timeline_lanes(report: Report, step: pd.Series, max_threads: int = 4) -> list[Lane]:
    """The lanes of the timeline of ``step``, top to bottom; every lane holds at
    least one interval inside the step window.

    - the step thread's NVTX ranges, one lane per depth (the step range itself
      left out: it is the window);
    - the step thread's synchronising calls, labelled by base name;
    - other threads' NVTX ranges inside the window, one lane per thread and
      depth, ranges covering the whole window (a fetch loop's lifetime range)
      left out; the I/O range (``--io-range``) drawn in the disk colour; at
      most ``max_threads`` threads, those with I/O ranges first;
    - one lane per (device, stream): kernels and graph runs in one colour,
      copies coloured by link, fills grey.
    """
    lo, hi = int(step["start_ns"]), int(step["end_ns"])
    pid, tid = int(step["pid"]), int(step["tid"])
    thr = report.trace.threads
    names = {(int(p), int(t)): str(n) for p, t, n in zip(thr["pid"], thr["tid"], thr["name"]) if n is not None}
    io_range = report.settings.io_range
    lanes: list[Lane] = []

    r = _in_window(report.tables["nvtx_ranges"], lo, hi)
    rid = step.get("range_id")
    if rid is not None and not pd.isna(rid):
        r = r[r["range_id"] != int(rid)]
    colours = pd.Series(_nvtx_colours(r["text"], io_range), index=r.index) if len(r) else pd.Series(dtype=object)
    own = r[(r["pid"] == pid) & (r["tid"] == tid)]
    me = _thread_label(names, pid, tid)
    for depth, g in own.groupby("depth", sort=True):
        lanes.append(_lane(f"{me} · NVTX depth {depth}", g, lo, hi, colours[g.index], g["text"], "nvtx"))

    sc = sync_calls(report.trace)
    sc = _in_window(sc[(sc["pid"] == pid) & (sc["tid"] == tid)], lo, hi)
    if len(sc):
        lanes.append(_lane(f"{me} · sync calls", sc, lo, hi, SYNC, sc["base_name"].astype(object), "sync"))

    other = r[~((r["pid"] == pid) & (r["tid"] == tid))]
    other = other[~((other["start_ns"] <= lo) & (other["end_ns"] >= hi))]
    if len(other):
        rank = other.assign(io=other["text"] == io_range, cov=np.minimum(other["end_ns"], hi) - np.maximum(other["start_ns"], lo))
        order = rank.groupby(["pid", "tid"]).agg(io=("io", "sum"), cov=("cov", "sum")).sort_values(["io", "cov"], ascending=False)
        for (p, t) in order.index[:max_threads]:
            mine = other[(other["pid"] == p) & (other["tid"] == t)]
            who = _thread_label(names, int(p), int(t))
            for depth, g in mine.groupby("depth", sort=True):
                lanes.append(_lane(f"{who} · NVTX depth {depth}", g, lo, hi, colours[g.index], g["text"], "thread"))

    ops = []
    k = report.tables["kernels"]
    if len(k):
        k = _in_window(k, lo, hi)
        ops.append(k.assign(colour=KERNEL, text=k["short_name"].astype(object)))
    gr = report.tables["graph_runs"]
    if len(gr):
        gr = _in_window(gr, lo, hi)
        ops.append(gr.assign(colour=KERNEL, text="graph " + gr["graph_id"].astype(str)))
    m = report.tables["memcpy"]
    if len(m):
        m = _in_window(m, lo, hi)
        cat = copy_category(m["copy_kind"], m["src_kind"])
        ops.append(m.assign(colour=cat.map(LINK_COLOURS), text=cat + " " + _size_text(m["bytes"])))
    ms = report.tables["memset"]
    if len(ms):
        ms = _in_window(ms, lo, hi)
        ops.append(ms.assign(colour=MEMSET, text="memset " + _size_text(ms["bytes"])))
    ops = [o[["start_ns", "end_ns", "device", "stream", "colour", "text"]] for o in ops if len(o)]
    if ops:
        gpu = pd.concat(ops, ignore_index=True)
        for (dev, stream), g in gpu.groupby(["device", "stream"], sort=True):
            lanes.append(_lane(f"GPU {dev} · stream {stream}", g, lo, hi, g["colour"], g["text"], "gpu"))
    return [ln for ln in lanes if len(ln) and (ln.end > ln.start).any()]


def _size_text(b: pd.Series) -> pd.Series:
    v = b.to_numpy(dtype=np.float64)
    mb = pd.Series(np.round(v / 1e6, 1), index=b.index).astype(str) + " MB"
    kb = pd.Series(np.round(v / 1e3, 1), index=b.index).astype(str) + " kB"
    return mb.where(v >= 1e5, kb)


# ---------------------------------------------------------------- drawing helpers


def _text_note(ax: Axes, msg: str) -> None:
    ax.text(0.5, 0.5, msg, ha="center", va="center", transform=ax.transAxes, fontsize=11, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def _merge_dense(s: np.ndarray, e: np.ndarray, min_w: float) -> tuple[np.ndarray, np.ndarray]:
    """At most about MAX_BARS rectangles: intervals closer than a pixel merge into
    their union (what the eye sees anyway)."""
    if s.size <= MAX_BARS:
        return s, e
    tol = max(int(min_w), 1)
    us, ue = iv.union(s, e + tol)
    return us, np.maximum(ue - tol, us + 1)


def _draw_lane(ax: Axes, y: float, lane: Lane, lo: int, hi: int, px_ns: float, height: float = 0.8) -> set[str]:
    """Bars of one lane, one ``broken_barh`` per colour; text inside a bar only
    where it fits (shortened with an ellipsis when at least a few characters do).
    Returns the texts written in full or in part."""
    min_w = 1.5 * px_ns  # a sub-pixel op still shows
    char_px = FONT * DPI / 72 * 0.58
    dense = len(lane) > MAX_BARS
    gap = px_ns if lane.kind in ("nvtx", "thread") else 0.0  # abutting ranges stay apart
    for colour in pd.Series(lane.colour).value_counts().index:  # the rarer colours (copies) drawn on top
        sel = lane.colour == colour
        s, e = _merge_dense(lane.start[sel], lane.end[sel], px_ns)
        w = e - s
        w = np.where(w > 4 * px_ns, w - gap, np.maximum(w, min_w))
        bars = np.column_stack([(s - lo) / 1e6, w / 1e6])
        ax.broken_barh(bars, (y - height / 2, height), facecolors=colour, linewidth=0)
    written: set[str] = set()
    if dense:
        return written
    width_px = (lane.end - lane.start) / px_ns
    room = np.floor((width_px - 6) / char_px).astype(np.int64)
    for i in np.flatnonzero(room >= 4):
        label = str(lane.text[i])
        if not label or label == "nan":
            continue
        if len(label) > room[i]:
            label = label[: int(room[i]) - 1] + "…"
        written.add(str(lane.text[i]))
        mid = ((lane.start[i] + lane.end[i]) / 2 - lo) / 1e6
        dark = lane.colour[i] in (KERNEL, DISK) or lane.colour[i] in LINK_COLOURS.values()
        ax.text(mid, y, label, ha="center", va="center", fontsize=FONT - 1, clip_on=True,
                color="white" if dark else "black")
    return written


# ---------------------------------------------------------------- charts


def timeline_figure(report: Report) -> Figure:
    """The representative step (:func:`representative_step`) as lanes
    (:func:`timeline_lanes`), time in ms from the step's start. An op narrower
    than a pixel is drawn 1.5 pixels wide so it stays visible: a burst of tiny
    kernels reads as a block here; :func:`gpu_busy_figure` gives the true share."""
    step = representative_step(report.tables["steps"])
    lanes = timeline_lanes(report, step) if step is not None else []
    width_in = 13.0
    fig = Figure(figsize=(width_in, 1.6 + 0.42 * max(len(lanes), 2)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if step is None or not lanes:
        _text_note(ax, "no activity inside the representative step" if step is not None else "no steps")
        ax.set_title("Timeline", loc="left")
        return fig
    lo, hi = int(step["start_ns"]), int(step["end_ns"])
    span = max(hi - lo, 1)
    whole = pd.isna(step.get("range_id"))
    vlo, vhi = lo, hi
    if whole:  # the whole profiled span starts with setup calls: show where work happens
        first = min(int(ln.start.min()) for ln in lanes)
        last = max(int(ln.end.max()) for ln in lanes)
        pad = max((last - first) // 30, 1)
        vlo, vhi = max(lo, first - pad), min(hi, last + pad)
    px_ns = max(vhi - vlo, 1) / (width_in * 0.78 * DPI)  # the plot area is about 78% of the width
    named: set[str] = set()
    for y, lane in enumerate(lanes):
        named |= _draw_lane(ax, y, lane, lo, hi, px_ns)
    ax.set_yticks(range(len(lanes)), [ln.label for ln in lanes], fontsize=FONT)
    ax.set_ylim(len(lanes) - 0.5, -0.5)
    margin = (vhi - vlo) / 1e6 * 0.006  # an op at the very edge stays off the axis frame
    ax.set_xlim((vlo - lo) / 1e6 - margin, (vhi - lo) / 1e6 + margin)
    ax.set_xlabel("ms from the start of the profiled span" if whole else "ms from the step's start")
    for y in range(len(lanes) - 1):  # separate groups of lanes
        if lanes[y].kind != lanes[y + 1].kind:
            ax.axhline(y + 0.5, color="#999999", linewidth=0.6)
    ax.grid(axis="x", color="#dddddd", linewidth=0.5)
    ax.set_axisbelow(True)
    st = report.tables["steps"]
    live = int((~st["warmup"]).sum())
    if whole:
        title = f"Timeline of the whole profiled span (no step ranges), {span / 1e6:.3g} ms; zoomed on its activity"
    else:
        title = f"Timeline of step {int(step['step'])}, the median of {live or len(st)} non-warm-up steps: {span / 1e6:.3g} ms"
    ax.set_title(title, loc="left", fontsize=11)
    handles = _timeline_legend(lanes, report.settings.io_range, named)
    rows = math.ceil(len(handles) / 7) or 1
    fig.legend(handles=handles, loc="outside lower center", ncol=math.ceil(len(handles) / rows) or 1,
               fontsize=FONT, frameon=False)
    return fig


def _timeline_legend(lanes: list[Lane], io_range: str, named: set[str], max_ranges: int = 16) -> list[Patch]:
    """Patches for the kinds of work drawn, then for NVTX names no bar could be
    labelled with (too narrow everywhere), so every range can still be told apart."""
    present = set()
    for ln in lanes:
        present.update(pd.unique(ln.colour))
    handles = []
    if KERNEL in present:
        handles.append(Patch(color=KERNEL, label="kernel / graph run"))
    for name, colour in LINK_COLOURS.items():
        if colour in present and name != "disk":
            handles.append(Patch(color=colour, label=name))
    if MEMSET in present:
        handles.append(Patch(color=MEMSET, label="memset"))
    if DISK in present:
        handles.append(Patch(color=DISK, label=f"disk read ({io_range})"))
    if SYNC in present:
        handles.append(Patch(color=SYNC, label="sync call"))
    unnamed: dict[str, str] = {}
    for ln in lanes:
        if ln.kind in ("nvtx", "thread"):
            for text, colour in zip(ln.text, ln.colour):
                if text not in named and colour != DISK:
                    unnamed.setdefault(str(text), str(colour))
    for text in sorted(unnamed)[:max_ranges]:
        handles.append(Patch(color=unnamed[text], label=f"NVTX {text}"))
    return handles


def steps_figure(report: Report) -> Figure:
    """Per step, a stacked bar of wait, sync outside wait and the rest, in ms.
    Warm-up steps are hatched and labelled; one far above the others is cut at
    the top with its value written on it, so the other bars stay readable."""
    b = step_breakdown(report)
    n = len(b)
    fig = Figure(figsize=(min(13.0, max(6.5, 0.3 * n + 3)), 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if n == 0:
        _text_note(ax, "no steps")
        return fig
    x = b["step"].to_numpy()
    parts = [("wait", b["wait_ns"], "#d9534f"), ("sync outside wait", b["sync_only_ns"], SYNC), ("other", b["other_ns"], "#8aa1b4")]
    warm = b["warmup"].to_numpy()
    bottom = np.zeros(n)
    width = 0.8 if n < 400 else 1.0
    handles: list[object] = []
    for label, v, colour in parts:
        ms = v.to_numpy(dtype=np.float64) / 1e6
        if not ms.any():
            continue  # a part no step has (no wait range matched) stays out of the legend
        handles.append(Patch(color=colour, label=label))
        if n > MAX_STEP_BARS:  # one filled area per part: thousands of bars cost seconds to draw
            ax.fill_between(x, bottom, bottom + ms, step="mid", color=colour, linewidth=0)
        else:
            bars = ax.bar(x, ms, width, bottom=bottom, color=colour, linewidth=0)
            for i in np.flatnonzero(warm):
                bars[i].set_alpha(0.45)
                bars[i].set_hatch("///")
                bars[i].set_edgecolor("white")
        bottom += ms
    total = b["dur_ns"].to_numpy(dtype=np.float64) / 1e6
    live = total[~warm] if (~warm).any() else total
    top = float(live.max()) * 1.25
    if total.max() > top * 1.15:  # a far slower (warm-up) step: cut it, write its value
        ax.set_ylim(0, top)
        for xi, t in zip(x[total > top], total[total > top]):
            ax.text(xi, top * 0.985, f"{t:.3g} ms ↑", ha="center", va="top", fontsize=FONT, rotation=90 if n > 12 else 0,
                    bbox=dict(facecolor="white", edgecolor="none", alpha=0.8, pad=1))
    else:
        ax.set_ylim(0, total.max() * 1.12)
    ymax = ax.get_ylim()[1]
    if warm.any():
        w_idx = x[warm]
        ax.axvspan(w_idx.min() - 0.5, w_idx.max() + 0.5, color="#eeeeee", zorder=0)
        ax.text((w_idx.min() + w_idx.max()) / 2, ymax * 0.5, "warm-up", rotation=90, ha="center", va="center",
                fontsize=FONT + 1, color="#333333", bbox=dict(facecolor="white", edgecolor="none", alpha=0.85, pad=1.5))
    med = float(np.median(live))
    handles.append(ax.axhline(med, color="#333333", linestyle="--", linewidth=0.8, label=f"median {med:.3g} ms"))
    if warm.any():
        handles.append(Patch(facecolor="#bbbbbb", hatch="///", edgecolor="white", label="warm-up (not in aggregates)"))
    ax.set_xlim(x.min() - 0.6, x.max() + 0.6)
    if n <= 25:
        ax.set_xticks(x)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=20))
    ax.set_xlabel("step")
    ax.set_ylabel("step time (ms)")
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=FONT, frameon=False)
    title = "Where each step's time goes"
    if not b["wait_ns"].any():
        title += f"  (no range matches --wait {report.settings.wait!r})"
    ax.set_title(title, loc="left", fontsize=11)
    ax.grid(axis="y", color="#e5e5e5", linewidth=0.5)
    ax.set_axisbelow(True)
    return fig


def links_figure(report: Report) -> Figure:
    """Per link, one row: each copy's GB/s (points over a box of quartiles and
    5th-95th percentiles), the link's effective GB/s (bytes / busy time) as a
    diamond and its peak as a red bar when known. Log scale when the rates span
    more than two decades."""
    links = report.tables["links"]
    rates = copy_rates(report)
    n = len(links)
    fig = Figure(figsize=(11.0, 1.4 + 0.75 * max(n, 1)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if n == 0:
        _text_note(ax, "no copies or disk reads")
        ax.set_title("Bandwidth per link", loc="left", fontsize=11)
        return fig
    rng = np.random.default_rng(0)
    labels, values = [], []
    by_link = {k: g["gbps"].to_numpy() for k, g in rates.groupby("link", sort=False)}
    for y, row in enumerate(links.itertuples(index=False)):
        v = by_link.get(row.link, np.zeros(0))
        cat = "disk" if row.copy_kind == S.DISK_TO_HOST else copy_category(pd.Series([row.copy_kind]), pd.Series([row.src_kind])).iloc[0]
        colour = LINK_COLOURS[cat]
        if v.size:
            values.append(v)
        if v.size >= 5:  # a box of fewer copies says nothing the points don't
            ax.boxplot([v], positions=[y], **_HORIZONTAL, widths=0.5, whis=(5, 95), showfliers=False,
                       patch_artist=True, boxprops=dict(facecolor="white", edgecolor="#555555"),
                       medianprops=dict(color="#222222"), whiskerprops=dict(color="#777777"), capprops=dict(color="#777777"))
        if v.size:
            shown = v if v.size <= 2000 else rng.choice(v, 2000, replace=False)
            jitter = rng.uniform(-0.18, 0.18, shown.size)
            ax.scatter(shown, y + jitter, s=10, color=colour, alpha=0.6, linewidths=0, zorder=3)
        if not pd.isna(row.gbps_effective):
            ax.scatter([row.gbps_effective], [y], marker="D", s=46, color="black", zorder=4)
        if not pd.isna(row.peak_gbps):
            ax.scatter([row.peak_gbps], [y], marker="|", s=500, linewidths=2.2, color="#d62728", zorder=4)
        eff = "n/a" if pd.isna(row.gbps_effective) else f"{_gbps(row.gbps_effective)} GB/s"
        util = "" if pd.isna(row.utilisation) else f" = {_pct(row.utilisation)} of {_gbps(row.peak_gbps)}"
        what = "reads" if row.copy_kind == S.DISK_TO_HOST else "copies"
        labels.append(f"{_short_link(row, report.settings.io_range)}\n{row.count} {what} · effective {eff}{util}")
    ax.set_yticks(range(n), labels, fontsize=FONT)
    ax.set_ylim(n - 0.5, -0.5)
    every = np.concatenate(values + [links["gbps_effective"].dropna().to_numpy(), links["peak_gbps"].dropna().to_numpy()])
    every = every[every > 0]
    if every.size and every.max() / every.min() > 100:
        ax.set_xscale("log")
        ax.set_xlim(every.min() / 1.6, every.max() * 1.6)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    else:
        ax.set_xlim(0, (every.max() if every.size else 1) * 1.1)
    ax.set_xlabel("GB/s (1e9 bytes per second), per copy: bytes / duration")
    ax.grid(axis="x", color="#e5e5e5", linewidth=0.5, which="both")
    ax.set_axisbelow(True)
    handles = [
        ax.scatter([], [], s=10, color="#777777", label="one copy"),
        ax.scatter([], [], marker="D", s=40, color="black", label="effective (bytes / busy time)"),
    ]
    if links["peak_gbps"].notna().any():
        handles.append(ax.scatter([], [], marker="|", s=200, linewidths=2.2, color="#d62728", label="link peak (--link-peak)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=FONT, frameon=False)
    ax.set_title("Bandwidth per link", loc="left", fontsize=11)
    return fig


def _gbps(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def _pct(u: float) -> str:
    return f"{u:.0%}" if u >= 0.01 else f"{u:.2%}" if u >= 0.0001 else "<0.01%"


def _short_link(row: object, io_range: str) -> str:
    if row.copy_kind == S.DISK_TO_HOST:  # type: ignore[attr-defined]
        return f"Disk→host  (NVTX {io_range!r} ranges)"

    def dev(d: object) -> str:
        return "host" if d is None or pd.isna(d) else f"GPU {int(d)}"  # type: ignore[call-overload]

    kind = SHORT_KIND.get(row.copy_kind, row.copy_kind)  # type: ignore[attr-defined]
    return f"{kind} {row.src_kind}→{row.dst_kind}  {dev(row.src_device)}→{dev(row.dst_device)}"  # type: ignore[attr-defined]


def _gpu_ops(report: Report) -> tuple[pd.DataFrame, pd.DataFrame]:
    cols = ["start_ns", "end_ns", "device"]
    t = report.tables
    compute = pd.concat([t["kernels"][cols], t["graph_runs"][cols]], ignore_index=True)
    anyop = pd.concat([compute, t["memcpy"][cols], t["memset"][cols]], ignore_index=True)
    return compute, anyop


def gpu_busy_figure(report: Report, bins: int = GPU_BINS) -> Figure:
    """Per device, the fraction of each time bin with a kernel or graph run running
    (line) and with any GPU op (filled), from :func:`busy_fraction`: on the left
    over the whole run (first to last GPU op), on the right over the non-warm-up
    steps only (setup and warm-up often fill most of a run). Steps are shaded
    alternately, warm-up steps hatched."""
    compute, anyop = _gpu_ops(report)
    devices = sorted(int(d) for d in pd.unique(anyop["device"].dropna())) if len(anyop) else []
    fig = Figure(figsize=(13.0, 1.4 + 1.9 * max(len(devices), 1)), layout="constrained")
    FigureCanvasAgg(fig)
    if not devices:
        ax = fig.add_subplot()
        _text_note(ax, "no GPU activity recorded")
        ax.set_title("GPU busy over the run", loc="left", fontsize=11)
        return fig
    st = report.tables["steps"]
    lo, hi = int(anyop["start_ns"].min()), int(anyop["end_ns"].max())
    panels = [("whole run", lo, hi, "the first GPU op")]
    live = st[~st["warmup"].astype(bool)]
    if len(live):
        zlo, zhi = int(live["start_ns"].min()), int(live["end_ns"].max())
        if zhi > zlo and (zhi - zlo) < 0.8 * (hi - lo):
            first = int(live["step"].min())
            panels.append((f"non-warm-up steps {first}–{int(live['step'].max())}", zlo, zhi, f"step {first}'s start"))
    axes = fig.subplots(len(devices), len(panels), squeeze=False, sharey=True,
                        gridspec_kw={"width_ratios": [2, 3][-len(panels):] if len(panels) == 2 else [1]})
    for col, (name, plo, phi, origin) in enumerate(panels):
        edges = bin_edges(plo, phi, bins)
        unit, scale = ("s", 1e9) if phi - plo > 5e9 else ("ms", 1e6) if phi - plo > 2e6 else ("µs", 1e3)
        x = (edges - plo) / scale
        for r, dev in enumerate(devices):
            ax = axes[r, col]
            _shade_steps(ax, st, plo, scale, label_steps=(r == 0 and col == len(panels) - 1))
            c = compute[compute["device"] == dev]
            a = anyop[anyop["device"] == dev]
            ax.stairs(busy_fraction(a["start_ns"], a["end_ns"], edges), x, fill=True, color="#9ecae1", alpha=0.85,
                      label="any GPU op (kernel, graph, copy, fill)")
            ax.stairs(busy_fraction(c["start_ns"], c["end_ns"], edges), x, color=KERNEL, linewidth=1.1,
                      label="kernel or graph run")
            ax.set_ylim(0, 1.08)
            ax.set_xlim(x[0], x[-1])
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
            ax.grid(axis="y", color="#dddddd", linewidth=0.5)
            ax.tick_params(labelsize=FONT)
            if col == 0:
                ax.set_ylabel(f"GPU {dev}\nbusy share", fontsize=FONT + 1)
            if r == 0:
                ax.set_title(f"{name}: {edges.size - 1} bins of {_fmt_ns((phi - plo) / max(edges.size - 1, 1))}",
                             fontsize=FONT + 1, loc="left")
            if r == len(devices) - 1:
                ax.set_xlabel(f"{unit} from {origin}", fontsize=FONT + 1)
    handles, _ = axes[0, 0].get_legend_handles_labels()
    handles += [Patch(facecolor="#e8eef5", label="step (alternate shades)")]
    if st["warmup"].any():
        handles.append(Patch(facecolor="#f2f2f2", hatch="//", edgecolor="#bbbbbb", label="warm-up step"))
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=FONT, frameon=False)
    fig.suptitle("GPU busy over the run", x=0.01, ha="left", fontsize=11)
    return fig


def _shade_steps(ax: Axes, st: pd.DataFrame, origin: int, scale: float, label_steps: bool) -> None:
    if len(st) > 400:
        return  # stripes that thin would be noise
    for i, row in enumerate(st.itertuples(index=False)):
        s0, s1 = (row.start_ns - origin) / scale, (row.end_ns - origin) / scale
        if row.warmup:
            ax.axvspan(s0, s1, facecolor="#f2f2f2", hatch="//", edgecolor="#bbbbbb", linewidth=0, zorder=0)
        else:
            ax.axvspan(s0, s1, facecolor="#e8eef5" if i % 2 == 0 else "#f5efe3", linewidth=0, zorder=0)
    if label_steps and len(st) <= 40:
        live = st[~st["warmup"].astype(bool)]
        for row in live.itertuples(index=False):
            mid = ((row.start_ns + row.end_ns) / 2 - origin) / scale
            ax.text(mid, 1.04, str(row.step), ha="center", va="center", fontsize=FONT - 1, color="#555555", clip_on=True)


def _fmt_ns(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.0f} ns"


CHARTS: dict[str, Callable[[Report], Figure]] = {
    "timeline.png": timeline_figure,
    "steps.png": steps_figure,
    "links.png": links_figure,
    "gpu_busy.png": gpu_busy_figure,
}


def write_charts(report: Report, folder: Path) -> list[str]:
    """Draw every chart of :data:`CHARTS` and save it as PNG in ``folder``.
    Returns the file names written."""
    folder = Path(folder)
    written = []
    for name, draw in CHARTS.items():
        fig = draw(report)
        fig.savefig(folder / name, dpi=DPI, bbox_inches="tight", facecolor="white")
        written.append(name)
    return written
