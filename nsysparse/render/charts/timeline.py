"""The timeline chart: one representative step, one lane per kind of activity."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ... import intervals as iv
from ...report import Report
from ...tables import overlapping
from ..labels import CATEGORY_LABELS
from .style import CATEGORY_COLOURS, DPI, MAX_BARS, FONT, KERNEL, MEMSET, SYNC, DISK, LINK_COLOURS, NVTX_PALETTE, representative_step
from .style import text_note as _text_note, size_text as _size_text
from dataclasses import dataclass


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

    - the step's exclusive breakdown, one colour per category (the band);
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
    thr = report.tables["threads"]
    names = {(int(p), int(t)): str(n) for p, t, n in zip(thr["pid"], thr["tid"], thr["name"]) if n is not None}
    io_range = report.settings.io_range
    lanes: list[Lane] = []

    seg = report.tables.get("breakdown_segments")
    if seg is not None and len(seg):
        seg = seg[seg["step"] == int(step["step"])]
        if len(seg):
            cats = seg["category"].astype(object)
            lanes.append(_lane("where the step goes", seg, lo, hi, cats.map(CATEGORY_COLOURS), cats, "breakdown"))

    r = overlapping(report.tables["nvtx_ranges"], lo, hi)
    rid = step.get("range_id")
    if rid is not None and not pd.isna(rid):
        r = r[r["range_id"] != int(rid)]
    colours = pd.Series(_nvtx_colours(r["text"], io_range), index=r.index) if len(r) else pd.Series(dtype=object)
    own = r[(r["pid"] == pid) & (r["tid"] == tid)]
    me = _thread_label(names, pid, tid)
    for depth, g in own.groupby("depth", sort=True):
        lanes.append(_lane(f"{me} · NVTX depth {depth}", g, lo, hi, colours[g.index], g["text"], "nvtx"))

    sc = report.tables["sync_calls"]
    sc = overlapping(sc[(sc["pid"] == pid) & (sc["tid"] == tid)], lo, hi)
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
    if report.tables.rows("kernels"):
        k = report.tables.window("kernels", lo, hi)  # spilled: only the step's kernels read back
        ops.append(k.assign(colour=KERNEL, text=k["short_name"].astype(object)))
    gr = report.tables["graph_runs"]
    if len(gr):
        gr = overlapping(gr, lo, hi)
        ops.append(gr.assign(colour=KERNEL, text="graph " + gr["graph_id"].astype(str)))
    m = report.tables["copies"]
    m = m[m["device"].notna().to_numpy()]  # GPU copies; disk reads are NVTX ranges above
    if len(m):
        m = overlapping(m, lo, hi)
        cat = m["category"].astype(object)
        ops.append(m.assign(colour=cat.map(LINK_COLOURS), text=cat + " " + _size_text(m["bytes"])))
    ms = report.tables["memset"]
    if len(ms):
        ms = overlapping(ms, lo, hi)
        ops.append(ms.assign(colour=MEMSET, text="memset " + _size_text(ms["bytes"])))
    ops = [o[["start_ns", "end_ns", "device", "stream", "colour", "text"]] for o in ops if len(o)]
    if ops:
        gpu = pd.concat(ops, ignore_index=True)
        for (dev, stream), g in gpu.groupby(["device", "stream"], sort=True):
            lanes.append(_lane(f"GPU {dev} · stream {stream}", g, lo, hi, g["colour"], g["text"], "gpu"))
    return [ln for ln in lanes if len(ln) and (ln.end > ln.start).any()]


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
    band = [ln for ln in lanes if ln.kind == "breakdown"]
    if band:
        shown = set(pd.unique(band[0].text))
        handles += [Patch(color=CATEGORY_COLOURS[c], label=f"step: {CATEGORY_LABELS[c]}") for c in CATEGORY_COLOURS
                    if c in shown]
    unnamed: dict[str, str] = {}
    for ln in lanes:
        if ln.kind in ("nvtx", "thread"):
            for text, colour in zip(ln.text, ln.colour):
                if text not in named and colour != DISK:
                    unnamed.setdefault(str(text), str(colour))
    for text in sorted(unnamed)[:max_ranges]:
        handles.append(Patch(color=unnamed[text], label=f"NVTX {text}"))
    return handles


