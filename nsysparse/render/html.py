"""``report.html``: the report as one self-contained page to share.

One file, opened offline: styles, script, data and images are inline and its
Content-Security-Policy (``default-src 'none'``) forbids any request. It shows,
top to bottom: the headline figures, the step breakdown (a stacked bar of the
summary's mean ms per measured step, 100% wide), the ranked targets, an
interactive timeline of a few representative steps (wheel to zoom, drag to
pan, double-click to reset, hover for details), the step table, links,
kernel summary, sync calls, the PNG charts already written beside it, notes.

Every number on the page is a value of ``report.summary`` or a cell of
``report.tables``, formatted (ns shown as ms, ratios as %); nothing is
recomputed. The headline figures carry ``data-key`` (the summary key, or
``breakdown.<category>``) and ``data-value`` (the raw value as JSON) so a
test or a scraper can read them back. The timeline carries at most
``MAX_INTERVALS`` intervals in all (the longest kept per step when a step has
more) and says so on the page. Tables that a report lacks are left out.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..kernels_summary import short_kernel_name
from ..tables import overlapping
from ..report import Report, jsonable
from ..steps import shown_steps

FILE = "report.html"
MAX_INTERVALS = 30_000  # in the embedded timeline, over all its steps
MAX_TIMELINE_STEPS = 3
MAX_STEP_ROWS = 200
MAX_KERNEL_ROWS = 25
MAX_OTHER_THREADS = 4
CHART_FILES = ("timeline.png", "steps.png", "links.png", "gpu_busy.png")
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"

CATEGORY = {  # breakdown category -> (label, colour)
    "gpu_compute": ("GPU compute", "#4c6a85"),
    "launch": ("kernel launch", "#9ecae1"),
    "os_call": ("OS calls", "#a1a1d6"),
    "host_cpu": ("host CPU", "#cfcfcf"),
    "copy_h2d_pinned": ("H2D copy, pinned", "#2e9d4c"),
    "copy_h2d_pageable": ("H2D copy, pageable", "#c9b800"),
    "copy_d2h": ("D2H copy", "#8e5cc4"),
    "copy_d2d": ("D2D copy", "#27b5c9"),
    "copy_p2p": ("P2P copy", "#e052a8"),
    "memset": ("memset", "#b0b0b0"),
    "disk_read": ("disk read", "#c0392b"),
    "copy_call": ("blocking copy call", "#fdae6b"),
    "sync_idle": ("sync, GPU idle", "#e07b39"),
    "host_wait_other": ("host wait, other", "#f0c419"),
}
EXTRA_COLOURS = ["#8c564b", "#17becf", "#bcbd22", "#7f7f7f", "#9467bd"]
COPY_COLOURS = {"H2D pinned": "#2e9d4c", "H2D pageable": "#c9b800", "D2H": "#8e5cc4", "D2D": "#27b5c9",
                "P2P": "#e052a8", "other copy": "#8c564b", "disk": "#c0392b"}
KERNEL, MEMSET, SYNC, WAIT, NVTX, GRAPH = "#4c6a85", "#b0b0b0", "#e07b39", "#f0c419", "#aec7e8", "#5d8aa8"
TARGET_NAMES = {"host_wait": "host wait (bubble)", "sync": "synchronisation", "gpu_idle_other": "GPU idle, host busy"}
HEADLINE = [  # (summary key, label, kind)
    ("step_ms_p50", "step time p50", "ms"),
    ("step_ms_p95", "step time p95", "ms"),
    ("step_ms_mean", "step time mean", "ms"),
    ("bubble_ratio", "host wait (bubble)", "pct"),
    ("gpu_idle_ratio", "GPU idle, no kernel", "pct"),
    ("sync_share", "inside sync calls", "pct"),
    ("io_floor_share", "I/O floor / step", "pct"),
    ("overlap_h2d_compute", "H2D hidden under kernels", "pct"),
]


# ---------------------------------------------------------------- formatting


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def fmt_ms(v: float | None, digits: int = 2) -> str:
    return "–" if v is None or pd.isna(v) else f"{v:,.{digits}f} ms"


def fmt_ns_ms(ns: float | None) -> str:
    """A ns cell shown in ms (a change of unit, not a computation)."""
    if ns is None or pd.isna(ns):
        return "–"
    ms = float(ns) / 1e6
    return f"{ms:,.3f} ms" if abs(ms) < 10 else f"{ms:,.2f} ms"


def fmt_pct(v: float | None) -> str:
    if v is None or pd.isna(v):
        return "–"
    v = float(v)
    return f"{100 * v:.1f}%" if v == 0 or abs(v) >= 0.001 else f"{100 * v:.3f}%"


def fmt_bytes(n: float | None) -> str:
    if n is None or pd.isna(n):
        return "–"
    n = float(n)
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def fmt_num(v: float | None, digits: int = 1) -> str:
    return "–" if v is None or pd.isna(v) else f"{float(v):,.{digits}f}"


def fmt_int(v: Any) -> str:
    return "–" if v is None or pd.isna(v) else f"{int(v):,}"


def _fig(key: str, value: Any, shown: str, label: str) -> str:
    raw = json.dumps(jsonable(value))
    return (f'<div class="fig" data-key="{esc(key)}" data-value="{esc(raw)}">'
            f'<span class="v">{esc(shown)}</span><span class="l">{esc(label)}</span></div>')


def target_label(what: str) -> str:
    return TARGET_NAMES.get(what, what.replace("link:", "link ", 1))


def _table_html(header: list[str], rows: list[list[str]], num_from: int = 1, cls: str = "") -> str:
    th = "".join(f'<th class="{"n" if i >= num_from else ""}">{esc(h)}</th>' for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f'<td class="{"n" if i >= num_from else ""}">{esc(c)}</td>' for i, c in enumerate(r)) + "</tr>"
        for r in rows)
    return f'<div class="tw"><table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


def _t(report: Report, name: str) -> pd.DataFrame | None:
    df = report.tables.get(name)
    if df is None and name in ("threads", "gpus"):
        trace = getattr(report, "trace", None)
        df = getattr(trace, name, None) if trace is not None else None
    return df if df is not None and len(df) else None


# ---------------------------------------------------------------- sections


def _head_section(report: Report) -> str:
    s = report.summary
    inp = s.get("input") or report.input
    gpus = _t(report, "gpus")
    gpu = ", ".join(str(n) for n in gpus["name"]) if gpus is not None and "name" in gpus else "unknown GPU"
    live = int(s["steps"]) - int(s["warmup"])
    figs = "".join(
        _fig(k, s.get(k), fmt_ms(s.get(k)) if kind == "ms" else fmt_pct(s.get(k)), label)
        for k, label, kind in HEADLINE if k in s)
    return f"""
<header>
  <h1>nsysparse report · <span class="mono">{esc(Path(str(inp['path'])).name)}</span></h1>
  <p class="sub">{esc(gpu)} · nsys {esc(inp['nsys_version'])} (schema {esc(inp['schema_version'])}) ·
  nsysparse {esc(s.get('tool_version', ''))} ·
  <span data-key="steps" data-value="{esc(json.dumps(s['steps']))}">{esc(s['steps'])} steps</span>,
  <span data-key="warmup" data-value="{esc(json.dumps(s['warmup']))}">{esc(s['warmup'])} warm-up</span> left out,
  {live} measured · sha256 <span class="mono">{esc(str(inp['sha256'])[:12])}…</span></p>
</header>
<section id="headline" class="figs">{figs}</section>"""


def _breakdown_section(report: Report) -> str:
    bd = report.summary.get("breakdown")
    if not bd:
        return ""
    items = [(c, float(v)) for c, v in bd.items() if v is not None and float(v) > 0]
    total = sum(v for _, v in items)  # geometry only: widths are each part of the bar
    if total <= 0:
        return ""
    colours = {c: CATEGORY.get(c, (c, EXTRA_COLOURS[i % len(EXTRA_COLOURS)])) for i, (c, _) in enumerate(items)}
    x = 0.0
    rects = []
    for c, v in items:
        w = 1000 * v / total
        label, colour = colours[c]
        rects.append(f'<rect x="{x:.3f}" y="0" width="{w:.3f}" height="36" fill="{colour}">'
                     f'<title>{esc(label)}: {esc(fmt_ms(v, 3))} per step</title></rect>')
        x += w
    legend = "".join(
        f'<li data-key="breakdown.{esc(c)}" data-value="{esc(json.dumps(jsonable(v)))}">'
        f'<i style="background:{colours[c][1]}"></i>{esc(colours[c][0])} <b>{esc(fmt_ms(v, 3))}</b></li>'
        for c, v in sorted(items, key=lambda cv: -cv[1]))
    zero = [CATEGORY.get(c, (c,))[0] for c, v in bd.items() if v is not None and float(v) == 0]
    zero_txt = f'<p class="note">No time in: {esc(", ".join(zero))}.</p>' if zero else ""
    return f"""
<section id="breakdown"><h2>Where a measured step goes</h2>
<p class="note">Mean ms per measured step by category (summary.json <code>breakdown</code>); the bar is 100% of the step.</p>
<svg class="bar" viewBox="0 0 1000 36" preserveAspectRatio="none" role="img" aria-label="step breakdown">{''.join(rects)}</svg>
<ul class="legend">{legend}</ul>{zero_txt}</section>"""


def _targets_section(report: Report) -> str:
    targets = report.summary.get("targets") or []
    if not targets:
        return ""
    has_saving = any("saving_ms" in t for t in targets)
    has_lever = any("lever" in t for t in targets)
    header = ["#", "target", "ms per step", "share of step"] + (["saving, ms"] if has_saving else []) + (["lever"] if has_lever else [])
    rows = []
    for i, t in enumerate(targets, 1):
        cells = [f'<td class="n">{i}</td>', f"<td>{esc(target_label(str(t['what'])))}</td>",
                 f'<td class="n" data-key="targets.{i - 1}.ms_per_step" data-value="{esc(json.dumps(jsonable(t["ms_per_step"])))}">{esc(fmt_ms(t["ms_per_step"], 3))}</td>',
                 f'<td class="n" data-key="targets.{i - 1}.share" data-value="{esc(json.dumps(jsonable(t["share"])))}">{esc(fmt_pct(t["share"]))}</td>']
        if has_saving:
            cells.append(f'<td class="n">{esc(fmt_ms(t.get("saving_ms"), 3))}</td>')
        if has_lever:
            cells.append(f'<td class="wrap">{esc(t.get("lever") or "")}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    th = "".join(f'<th class="{"n" if h not in ("target", "lever") else ""}">{esc(h)}</th>' for h in header)
    return f"""
<section id="targets"><h2>Targets, ranked by the step time each costs</h2>
<div class="tw"><table><thead><tr>{th}</tr></thead><tbody>{''.join(rows)}</tbody></table></div></section>"""


def _steps_section(report: Report) -> str:
    st = _t(report, "steps")
    if st is None:
        return ""
    cols = [("step", "step", fmt_int), ("warmup", "warm-up", lambda v: "yes" if bool(v) else ""),
            ("dur_ns", "duration", fmt_ns_ms), ("wait_ns", "host wait", fmt_ns_ms), ("bubble_ratio", "bubble", fmt_pct),
            ("gpu_idle_ratio", "GPU idle", fmt_pct), ("sync_share", "sync", fmt_pct), ("bytes_h2d", "H2D", fmt_bytes),
            ("bytes_disk", "disk", fmt_bytes), ("io_floor_ns", "I/O floor", fmt_ns_ms)]
    cols = [c for c in cols if c[0] in st]
    shown = st.head(MAX_STEP_ROWS)
    rows = [[f(r[c]) for c, _, f in cols] for _, r in shown.iterrows()]
    more = f'<p class="note">The first {MAX_STEP_ROWS} of {len(st)} steps; steps.parquet has all.</p>' if len(st) > MAX_STEP_ROWS else ""
    return f'<section id="steps"><h2>Steps</h2>{_table_html([h for _, h, _ in cols], rows)}{more}</section>'


def _links_section(report: Report) -> str:
    links = report.summary.get("links") or []
    if not links:
        return ""
    rows = [[str(l["link"]), fmt_int(l.get("count")), fmt_bytes(l.get("bytes")), fmt_num(l.get("gbps_effective")),
             fmt_num(l.get("gbps_p50")), fmt_num(l.get("gbps_p95")), fmt_num(l.get("peak_gbps"), 0), fmt_pct(l.get("utilisation"))]
            for l in links]
    return (f'<section id="links"><h2>Links (whole trace; GB/s = 1e9 B/s; effective = bytes / busy time)</h2>'
            f'{_table_html(["link", "copies", "bytes", "GB/s eff", "p50", "p95", "peak", "utilisation"], rows)}</section>')


def _kernels_section(report: Report) -> str:
    ks = _t(report, "kernels_summary")
    if ks is None:
        return ""
    top = ks.sort_values("total_ns", ascending=False, kind="stable").head(MAX_KERNEL_ROWS)
    rows = [[short_kernel_name(str(r["name"])), fmt_int(r["launches"]), fmt_ns_ms(r["total_ns"]), fmt_ns_ms(r["per_step_ns"]),
             f"{float(r['mean_ns']) / 1e3:,.1f} µs", f"{float(r['p50_ns']) / 1e3:,.1f} µs", f"{float(r['p95_ns']) / 1e3:,.1f} µs",
             fmt_pct(r["share"])] for _, r in top.iterrows()]
    more = f'<p class="note">The {MAX_KERNEL_ROWS} kernels with most time, of {len(ks)}; kernels_summary.parquet has all.</p>' if len(ks) > MAX_KERNEL_ROWS else ""
    return (f'<section id="kernels"><h2>Kernels</h2>'
            f'{_table_html(["kernel", "launches", "total", "per step", "mean", "p50", "p95", "share"], rows, cls="kern")}{more}</section>')


def _sync_section(report: Report) -> str:
    sy = _t(report, "sync")
    if sy is None:
        return ""
    thr = _t(report, "threads")
    names = {(int(p), int(t)): str(n) for p, t, n in zip(thr["pid"], thr["tid"], thr["name"])} if thr is not None else {}
    top = sy.sort_values("union_ns", ascending=False, kind="stable").head(12)
    rows = [[str(r["base_name"]), f"{int(r['pid'])}/{int(r['tid'])} {names.get((int(r['pid']), int(r['tid'])), '')}".strip(),
             fmt_int(r["calls"]), fmt_ns_ms(r["total_ns"]), fmt_pct(r["share"])] for _, r in top.iterrows()]
    return (f'<section id="sync"><h2>Synchronising calls</h2>'
            f'{_table_html(["call", "thread", "calls", "total", "share of its thread"], rows, num_from=2)}</section>')


def _charts_section(charts_dir: Path | None) -> str:
    if charts_dir is None:
        return ""
    imgs = []
    for name in CHART_FILES:
        p = Path(charts_dir) / name
        if p.is_file():
            data = base64.b64encode(p.read_bytes()).decode("ascii")
            imgs.append(f'<figure><img alt="{esc(name)}" src="data:image/png;base64,{data}"><figcaption>{esc(name)}</figcaption></figure>')
    return f'<section id="charts"><h2>Charts</h2>{"".join(imgs)}</section>' if imgs else ""


def _notes_section(report: Report) -> str:
    notes = report.summary.get("notes") or report.notes
    s = report.summary.get("settings") or report.settings.to_dict()
    items = "".join(f"<li>{esc(n)}</li>" for n in notes)
    return (f'<footer>{"<ul class=notes>" + items + "</ul>" if items else ""}'
            f'<p class="note">settings: <code>{esc(json.dumps(s, sort_keys=True))}</code></p></footer>')


# ---------------------------------------------------------------- timeline data


def timeline_steps(steps: pd.DataFrame, k: int = MAX_TIMELINE_STEPS) -> list[int]:
    """Row positions of the steps the timeline carries: the median measured step
    (as the PNG timeline picks it), then the slowest and the fastest measured
    (:func:`nsysparse.steps.shown_steps`, whose breakdown bands the report keeps)."""
    st = steps.reset_index(drop=True)
    pos = {int(s): i for i, s in enumerate(st["step"].to_numpy())}
    return [pos[s] for s in shown_steps(st)][:k]


class _Strings:
    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, s: Any) -> int:
        s = "" if s is None or (isinstance(s, float) and np.isnan(s)) else str(s)
        if s not in self.index:
            self.index[s] = len(self.index)
        return self.index[s]

    def list(self) -> list[str]:
        return list(self.index)


def _in(df: pd.DataFrame | None, lo: int, hi: int) -> pd.DataFrame:
    if df is None or df.empty:
        return pd.DataFrame()
    return overlapping(df, lo, hi)


def _window(report: Report, name: str, lo: int, hi: int) -> pd.DataFrame:
    """The rows of table ``name`` that overlap ``[lo, hi)`` (a spilled table: only those read back)."""
    if name not in report.tables or report.tables.rows(name) == 0:
        return pd.DataFrame()
    return report.tables.window(name, lo, hi)


def _lane(label: str, kind: str, df: pd.DataFrame, lo: int, colour: Any, text: Any, extra: Any, strs: _Strings) -> dict[str, Any]:
    n = len(df)
    s = df["start_ns"].to_numpy(dtype=np.int64)
    d = df["end_ns"].to_numpy(dtype=np.int64) - s
    col = np.broadcast_to(np.asarray(colour, dtype=object), (n,))
    txt = np.broadcast_to(np.asarray(text, dtype=object), (n,))
    ext = np.broadcast_to(np.asarray(extra, dtype=object), (n,))
    order = np.argsort(s, kind="stable")
    return {"label": label, "kind": kind, "s": (s[order] - lo).tolist(), "d": d[order].tolist(),
            "c": [strs(x) for x in col[order]], "t": [strs(x) for x in txt[order]], "x": [strs(x) for x in ext[order]]}


def _size(b: pd.Series) -> list[str]:
    return [fmt_bytes(v) for v in b.to_numpy()]


def step_timeline(report: Report, row: pd.Series, strs: _Strings, budget: int) -> dict[str, Any]:
    """One step's lanes for the page: its breakdown band, the step thread's NVTX
    ranges by depth (waits in their own colour) and sync calls, other threads'
    ranges inside the step, disk reads, then one lane per GPU stream. Times are
    ns from the step's start; durations are the tables' own."""
    lo, hi = int(row["start_ns"]), int(row["end_ns"])
    pid, tid = int(row["pid"]), int(row["tid"])
    thr = _t(report, "threads")
    names = {(int(p), int(t)): str(n) for p, t, n in zip(thr["pid"], thr["tid"], thr["name"])} if thr is not None else {}
    who = lambda p, t: f"{names.get((p, t), 'tid')} {t}"  # noqa: E731
    wait_re = re.compile(report.settings.wait)
    lanes: list[dict[str, Any]] = []

    segs = _t(report, "breakdown_segments")
    bd = _t(report, "breakdown")
    if segs is not None and (segs["step"] == row["step"]).any():  # where each part fell in the step
        g = segs[segs["step"] == row["step"]]
        cats = g["category"].astype(object).to_numpy()
        lanes.append(_lane("where the step goes", "breakdown", g, lo,
                           [CATEGORY.get(c, (c, "#999999"))[1] for c in cats],
                           [CATEGORY.get(c, (c,))[0] for c in cats], ["" for _ in cats], strs))
    elif bd is not None:  # a folder without segments: the parts laid end to end
        g = bd[(bd["step"] == row["step"]) & (bd["ns"] > 0)]
        if len(g):
            starts = lo + np.concatenate([[0], np.cumsum(g["ns"].to_numpy(dtype=np.int64))[:-1]])
            seg = pd.DataFrame({"start_ns": starts, "end_ns": starts + g["ns"].to_numpy(dtype=np.int64)})
            cats = g["category"].astype(object).to_numpy()
            lanes.append(_lane("breakdown (end to end)", "breakdown", seg, lo,
                               [CATEGORY.get(c, (c, "#999999"))[1] for c in cats],
                               [CATEGORY.get(c, (c,))[0] for c in cats],
                               [f"{fmt_pct(s)} of the step" for s in g["share"].to_numpy()], strs))

    r = _in(_t(report, "nvtx_ranges"), lo, hi)
    if len(r) and "range_id" in row and not pd.isna(row.get("range_id")):
        r = r[r["range_id"] != int(row["range_id"])]
    own = r[(r["pid"] == pid) & (r["tid"] == tid)] if len(r) else r
    for depth, g in (own.groupby("depth", sort=True) if len(own) else []):
        texts = g["text"].astype(object).to_numpy()
        colours = [WAIT if wait_re.search(str(t)) else NVTX for t in texts]
        lanes.append(_lane(f"{who(pid, tid)} · NVTX {depth}", "nvtx", g, lo, colours, g["name"].astype(object).to_numpy(),
                           ["host wait" if c == WAIT else "NVTX range" for c in colours], strs))
    sc = _in(_t(report, "sync_calls"), lo, hi)
    if len(sc):
        mine = sc[(sc["pid"] == pid) & (sc["tid"] == tid)]
        if len(mine):
            lanes.append(_lane(f"{who(pid, tid)} · sync calls", "sync", mine, lo, SYNC, mine["base_name"].astype(object).to_numpy(), "sync call", strs))
    if len(r):
        other = r[~((r["pid"] == pid) & (r["tid"] == tid))]
        other = other[~((other["start_ns"] <= lo) & (other["end_ns"] >= hi))]  # a thread's lifetime range says nothing
        busiest = other.groupby(["pid", "tid"]).size().sort_values(ascending=False).index[:MAX_OTHER_THREADS] if len(other) else []
        for p, t in busiest:
            g = other[(other["pid"] == p) & (other["tid"] == t)]
            for depth, gd in g.groupby("depth", sort=True):
                texts = gd["text"].astype(object).to_numpy()
                colours = [COPY_COLOURS["disk"] if str(x) == report.settings.io_range else NVTX for x in texts]
                lanes.append(_lane(f"{who(int(p), int(t))} · NVTX {depth}", "thread", gd, lo, colours,
                                   gd["name"].astype(object).to_numpy(), "NVTX range", strs))
    ops: list[pd.DataFrame] = []
    k = _window(report, "kernels", lo, hi)
    if len(k):
        ops.append(pd.DataFrame({"start_ns": k["start_ns"], "end_ns": k["end_ns"], "device": k["device"], "stream": k["stream"],
                                 "c": KERNEL, "t": k["short_name"].astype(object), "x": "kernel"}))
    cp = _t(report, "copies")
    if cp is not None:
        cp = _in(cp, lo, hi)
        if len(cp):
            on = cp[cp["device"].notna()]
            ops.append(pd.DataFrame({"start_ns": on["start_ns"], "end_ns": on["end_ns"], "device": on["device"], "stream": on["stream"],
                                     "c": [COPY_COLOURS.get(c, "#8c564b") for c in on["category"].astype(object)],
                                     "t": (on["category"].astype(object) + " " + pd.Series(_size(on["bytes"]), index=on.index)),
                                     "x": on["link"].astype(object)}))
            disk = cp[cp["device"].isna()]
            if len(disk):
                lanes.append(_lane("disk reads", "disk", disk, lo, COPY_COLOURS["disk"],
                                   ["disk read " + s for s in _size(disk["bytes"])], disk["link"].astype(object).to_numpy(), strs))
    else:
        m = _window(report, "memcpy", lo, hi)
        if len(m):
            ops.append(pd.DataFrame({"start_ns": m["start_ns"], "end_ns": m["end_ns"], "device": m["device"], "stream": m["stream"],
                                     "c": "#2e9d4c", "t": m["copy_kind"].astype(object) + " " + pd.Series(_size(m["bytes"]), index=m.index),
                                     "x": "copy"}))
    ms = _window(report, "memset", lo, hi)
    if len(ms):
        ops.append(pd.DataFrame({"start_ns": ms["start_ns"], "end_ns": ms["end_ns"], "device": ms["device"], "stream": ms["stream"],
                                 "c": MEMSET, "t": ["memset " + s for s in _size(ms["bytes"])], "x": "memset"}))
    gr = _window(report, "graph_runs", lo, hi)
    if len(gr):
        ops.append(pd.DataFrame({"start_ns": gr["start_ns"], "end_ns": gr["end_ns"], "device": gr["device"], "stream": gr["stream"],
                                 "c": GRAPH, "t": "graph " + gr["graph_id"].astype(str), "x": "CUDA graph run"}))
    ops = [o for o in ops if len(o)]
    if ops:
        gpu = pd.concat(ops, ignore_index=True)
        for (dev, stream), g in gpu.groupby(["device", "stream"], sort=True):
            lanes.append(_lane(f"GPU {int(dev)} · stream {int(stream)}", "gpu", g, lo, g["c"].to_numpy(), g["t"].to_numpy(), g["x"].to_numpy(), strs))

    total = sum(len(ln["s"]) for ln in lanes)
    kept = total
    if total > budget:  # keep the longest intervals of each lane, in proportion
        kept = 0
        for ln in lanes:
            n = max(1, int(len(ln["s"]) * budget / total))
            if len(ln["s"]) > n:
                keep = np.sort(np.argsort(-np.asarray(ln["d"]), kind="stable")[:n])
                for key in ("s", "d", "c", "t", "x"):
                    ln[key] = [ln[key][i] for i in keep]
            kept += len(ln["s"])
    return {"step": int(row["step"]), "warmup": bool(row["warmup"]), "dur_ns": hi - lo, "start_ns": lo,
            "dur_text": fmt_ns_ms(row["dur_ns"]), "lanes": lanes, "intervals": total, "kept": kept}


def timeline_data(report: Report, max_intervals: int = MAX_INTERVALS) -> dict[str, Any]:
    """The JSON the page's timeline draws: ``steps`` (see :func:`step_timeline`)
    and ``strings`` (labels and colours, referenced by index)."""
    st = _t(report, "steps")
    strs = _Strings()
    if st is None:
        return {"steps": [], "strings": [], "max": max_intervals}
    st = st.reset_index(drop=True)
    picks = timeline_steps(st)
    budget = max(1, max_intervals // max(len(picks), 1))
    steps = [step_timeline(report, st.iloc[i], strs, budget) for i in picks]
    names = ["median measured step", "slowest measured step", "fastest measured step"]
    for s, why in zip(steps, names):
        s["why"] = why
    return {"steps": steps, "strings": strs.list(), "max": max_intervals}


def _json_script(obj: Any) -> str:
    # inside <script>, "</" would end the element: escape it (and friends) as JSON allows
    text = json.dumps(obj, separators=(",", ":"), allow_nan=False, default=jsonable)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# ---------------------------------------------------------------- page


def render_html(report: Report, charts_dir: Path | None = None, max_intervals: int = MAX_INTERVALS) -> str:
    """The page as a string (see the module doc); ``charts_dir`` is the folder
    whose PNG charts are inlined (none when None or absent)."""
    data = timeline_data(report, max_intervals)
    name = Path(str(report.input["path"])).name
    body = "".join([
        _head_section(report), _breakdown_section(report), _targets_section(report),
        TIMELINE_SECTION, _steps_section(report), _links_section(report), _kernels_section(report),
        _sync_section(report), _charts_section(charts_dir), _notes_section(report),
    ])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>nsysparse · {esc(name)}</title>
<script>{GUARD_JS}</script>
<style>{CSS}</style></head>
<body>
<main>{body}</main>
<script type="application/json" id="timeline-data">{_json_script(data)}</script>
<script>{TIMELINE_JS}</script>
</body></html>
"""


def write_html(report: Report, path: Path, charts_dir: Path | None = None) -> None:
    """Write the page to ``path`` (by convention ``report.html`` in the report
    folder), inlining the PNG charts found in ``charts_dir`` (default: the
    folder of ``path``)."""
    path = Path(path)
    path.write_text(render_html(report, path.parent if charts_dir is None else charts_dir), encoding="utf-8")


def write_html_into(report: Report, folder: Path) -> list[str]:
    """``write_html`` into ``folder / FILE`` (after the charts), in the shape of
    ``write_report_folder``'s ``charts`` callback: returns the created names."""
    write_html(report, Path(folder) / FILE)
    return [FILE]


# ---------------------------------------------------------------- static assets

GUARD_JS = r"""
(function(){var d=document.documentElement,err=[],blk=[];
addEventListener('error',function(e){err.push(String(e.message||e.type));d.setAttribute('data-errors',err.join(' | '));},true);
addEventListener('unhandledrejection',function(e){err.push(String(e.reason));d.setAttribute('data-errors',err.join(' | '));});
addEventListener('securitypolicyviolation',function(e){blk.push(e.violatedDirective+' '+e.blockedURI);d.setAttribute('data-blocked',blk.join(' | '));});})();
"""

TIMELINE_SECTION = """
<section id="timeline"><h2>Step timeline</h2>
<div class="tl-bar"><span id="tl-steps"></span>
<span class="tl-help">wheel: zoom · drag: pan · double-click: reset</span>
<button type="button" id="tl-in">+</button><button type="button" id="tl-out">−</button><button type="button" id="tl-reset">reset</button></div>
<div id="tl-wrap"><canvas id="tl-canvas" height="200"></canvas><div id="tl-tip" hidden></div></div>
<p class="note" id="tl-note"></p>
<noscript><p class="note">The interactive timeline needs JavaScript; timeline.png below shows the median step.</p></noscript>
</section>"""

CSS = r"""
:root{--fg:#1d232a;--mut:#5b6570;--line:#d8dde3;--bg:#fff;--acc:#4c6a85}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1240px;margin:0 auto;padding:14px 20px 40px}
h1{font-size:20px;margin:4px 0 2px}h2{font-size:16px;margin:22px 0 8px;border-bottom:1px solid var(--line);padding-bottom:3px}
.sub,.note{color:var(--mut);margin:2px 0 6px}.note{font-size:12.5px}
.mono,code{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12.5px}
.figs{display:grid;grid-template-columns:repeat(auto-fill,minmax(140px,1fr));gap:8px;margin-top:12px}
.fig{border:1px solid var(--line);border-radius:6px;padding:8px 10px;display:flex;flex-direction:column}
.fig .v{font-size:20px;font-weight:600;font-variant-numeric:tabular-nums}.fig .l{color:var(--mut);font-size:12px}
svg.bar{width:100%;height:36px;display:block;border-radius:4px;overflow:hidden}
.legend{list-style:none;padding:0;margin:8px 0 0;display:flex;flex-wrap:wrap;gap:4px 16px;font-size:13px}
.legend i{display:inline-block;width:11px;height:11px;margin-right:5px;border-radius:2px;vertical-align:-1px}
.tw{overflow-x:auto}
table{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums;min-width:50%}
th,td{padding:3px 10px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
th{font-weight:600;background:#f4f6f8}td.n,th.n{text-align:right}td.wrap{white-space:normal;min-width:320px}
table.kern td:first-child{max-width:520px;overflow:hidden;text-overflow:ellipsis}
.tl-bar{display:flex;align-items:center;gap:8px;flex-wrap:wrap;margin-bottom:6px}
.tl-help{color:var(--mut);font-size:12px;margin-left:auto}
button{font:inherit;font-size:12.5px;padding:2px 9px;border:1px solid var(--line);background:#f4f6f8;border-radius:4px;cursor:pointer}
button.on{background:var(--acc);color:#fff;border-color:var(--acc)}
#tl-wrap{position:relative;border:1px solid var(--line);border-radius:4px}
#tl-canvas{display:block;width:100%;cursor:grab}
#tl-tip{position:absolute;pointer-events:none;background:rgba(29,35,42,.94);color:#fff;font-size:12px;padding:5px 8px;border-radius:4px;max-width:420px;white-space:pre-line;z-index:2}
figure{margin:10px 0}figure img{max-width:100%;border:1px solid var(--line)}figcaption{color:var(--mut);font-size:12px}
footer{margin-top:24px;border-top:1px solid var(--line);padding-top:8px}ul.notes{margin:0;padding-left:18px;color:#8a4b00}
@media print{
  @page{size:A4 landscape;margin:12mm}
  main{max-width:none;padding:0}body{font-size:11px}
  .tl-bar button,.tl-help,#tl-tip{display:none}
  section,figure,table{break-inside:avoid}
  #charts figure{break-before:page}
  .fig{border-color:#999}th{background:#eee}
}
"""

TIMELINE_JS = r"""
(function(){
'use strict';
var D=JSON.parse(document.getElementById('timeline-data').textContent);
var S=D.strings, cv=document.getElementById('tl-canvas'), tip=document.getElementById('tl-tip');
var note=document.getElementById('tl-note'), bar=document.getElementById('tl-steps');
var LABEL=190, TOP=22, LANE=18, BAND=22, GAP=3;
var cur=0, v0=0, v1=1, drag=null;
function fmtDur(ns){ns=+ns;if(ns>=1e6)return (ns/1e6).toFixed(3)+' ms';if(ns>=1e3)return (ns/1e3).toFixed(2)+' \u00b5s';return ns+' ns';}
function fmtMs(ns){return (ns/1e6).toFixed(ns<1e7?3:2)+' ms';}
function step(){return D.steps[cur];}
function laneY(i){var y=TOP,ls=step().lanes;for(var k=0;k<i;k++)y+=(ls[k].kind==='breakdown'?BAND:LANE)+GAP;return y;}
function height(){var ls=step().lanes;return laneY(ls.length)+8;}
function reset(){v0=0;v1=Math.max(step().dur_ns,1);}
function draw(){
  var st=step(), dpr=window.devicePixelRatio||1, w=cv.clientWidth||1200, h=height();
  cv.width=Math.round(w*dpr); cv.height=Math.round(h*dpr); cv.style.height=h+'px';
  var g=cv.getContext('2d'); g.setTransform(dpr,0,0,dpr,0,0); g.clearRect(0,0,w,h);
  g.fillStyle='#fff'; g.fillRect(0,0,w,h);
  var pw=w-LABEL-8, sc=pw/(v1-v0);
  // axis
  g.font='11px system-ui,sans-serif'; g.fillStyle='#5b6570'; g.strokeStyle='#e6e9ed'; g.lineWidth=1;
  var span=v1-v0, stepNs=Math.pow(10,Math.floor(Math.log10(span/6))); 
  if(span/stepNs>12)stepNs*=5; else if(span/stepNs>6)stepNs*=2;
  var dec=Math.max(0,Math.ceil(-Math.log10(stepNs/1e6)-1e-9));
  for(var t=Math.ceil(v0/stepNs)*stepNs;t<=v1;t+=stepNs){var x=LABEL+(t-v0)*sc;
    g.beginPath();g.moveTo(x+.5,TOP-4);g.lineTo(x+.5,h);g.stroke();g.fillText((t/1e6).toFixed(dec)+' ms',x+2,12);}
  st.lanes.forEach(function(ln,i){
    var y=laneY(i), lh=ln.kind==='breakdown'?BAND:LANE;
    g.fillStyle='#1d232a'; g.font='11.5px system-ui,sans-serif';
    var lab=ln.label; while(g.measureText(lab).width>LABEL-10&&lab.length>4)lab=lab.slice(0,-2);
    if(lab!==ln.label)lab=lab.slice(0,-1)+'\u2026';
    g.fillText(lab,4,y+lh-5);
    g.save(); g.beginPath(); g.rect(LABEL,y,pw,lh); g.clip();
    for(var j=0;j<ln.s.length;j++){
      var s=ln.s[j], e=s+ln.d[j]; if(e<v0||s>v1)continue;
      var x0=LABEL+(s-v0)*sc, x1=LABEL+(e-v0)*sc, ww=Math.max(x1-x0,1);
      g.fillStyle=S[ln.c[j]]; g.fillRect(x0,y,ww,lh);
      if(ww>40){var tx=S[ln.t[j]]; g.fillStyle=(S[ln.c[j]]==='#4c6a85'||S[ln.c[j]]==='#c0392b'||S[ln.c[j]]==='#8e5cc4'||S[ln.c[j]]==='#2e9d4c')?'#fff':'#1d232a';
        g.font='10.5px system-ui,sans-serif'; var room=ww-6; if(g.measureText(tx).width>room){while(tx.length>3&&g.measureText(tx+'\u2026').width>room)tx=tx.slice(0,-1);tx+='\u2026';}
        if(tx.length>1)g.fillText(tx,Math.max(x0,LABEL)+3,y+lh-5);}
    }
    g.restore();
    if(i+1<st.lanes.length&&st.lanes[i+1].kind!==ln.kind){g.strokeStyle='#b8c0c8';g.beginPath();g.moveTo(0,y+lh+GAP/2+.5);g.lineTo(w,y+lh+GAP/2+.5);g.stroke();}
  });
  cv.setAttribute('data-step',st.step); cv.setAttribute('data-lanes',st.lanes.length);
}
function pick(mx,my){
  var st=step(), pw=(cv.clientWidth||1200)-LABEL-8, sc=pw/(v1-v0);
  for(var i=0;i<st.lanes.length;i++){var ln=st.lanes[i],y=laneY(i),lh=ln.kind==='breakdown'?BAND:LANE;
    if(my<y||my>y+lh)continue; var t=v0+(mx-LABEL)/sc, tol=3/sc, best=-1, bd=Infinity;
    for(var j=0;j<ln.s.length;j++){var s=ln.s[j],e=s+ln.d[j]; if(t>=s-tol&&t<=e+tol&&ln.d[j]<bd){best=j;bd=ln.d[j];}}
    return best<0?null:{ln:ln,j:best};}
  return null;
}
function showTip(ev){
  if(drag)return; var r=cv.getBoundingClientRect(), mx=ev.clientX-r.left, my=ev.clientY-r.top;
  var p=mx>LABEL?pick(mx,my):null; if(!p){tip.hidden=true;return;}
  var ln=p.ln,j=p.j, extra=S[ln.x[j]];
  tip.textContent=S[ln.t[j]]+(extra?'\n'+extra:'')+'\n'+'starts +'+fmtMs(ln.s[j])+' into the step, '+'lasts '+fmtDur(ln.d[j])+'\n'+ln.label;
  tip.hidden=false; var tx=Math.min(mx+14,r.width-tip.offsetWidth-4); tip.style.left=Math.max(tx,0)+'px'; tip.style.top=(my+16)+'px';
}
function zoom(f,mx){var pw=(cv.clientWidth||1200)-LABEL-8, t=v0+(Math.max(mx-LABEL,0))/pw*(v1-v0);
  var n0=t-(t-v0)*f, n1=t+(v1-t)*f, full=Math.max(step().dur_ns,1);
  if(n1-n0<50){return;} if(n1-n0>full){n0=0;n1=full;} if(n0<0){n1-=n0;n0=0;} if(n1>full){n0-=n1-full;n1=full;}
  v0=Math.max(n0,0);v1=n1;draw();}
cv.addEventListener('wheel',function(ev){ev.preventDefault();var r=cv.getBoundingClientRect();zoom(ev.deltaY>0?1.25:0.8,ev.clientX-r.left);},{passive:false});
cv.addEventListener('mousedown',function(ev){drag={x:ev.clientX,a:v0,b:v1};cv.style.cursor='grabbing';tip.hidden=true;});
window.addEventListener('mouseup',function(){drag=null;cv.style.cursor='grab';});
window.addEventListener('mousemove',function(ev){if(!drag)return;var pw=(cv.clientWidth||1200)-LABEL-8, dt=(ev.clientX-drag.x)/pw*(drag.b-drag.a), full=step().dur_ns;
  var a=drag.a-dt,b=drag.b-dt; if(a<0){b-=a;a=0;} if(b>full){a-=b-full;b=full;} v0=Math.max(a,0);v1=b;draw();});
cv.addEventListener('mousemove',showTip); cv.addEventListener('mouseleave',function(){tip.hidden=true;});
cv.addEventListener('dblclick',function(){reset();draw();});
document.getElementById('tl-in').onclick=function(){zoom(0.5,LABEL+((cv.clientWidth||1200)-LABEL)/2);};
document.getElementById('tl-out').onclick=function(){zoom(2,LABEL+((cv.clientWidth||1200)-LABEL)/2);};
document.getElementById('tl-reset').onclick=function(){reset();draw();};
function select(i){cur=i;reset();draw();
  Array.prototype.forEach.call(bar.children,function(b,k){b.className=k===i?'on':'';});
  var st=step(); note.textContent='Step '+st.step+' ('+st.why+', '+st.dur_text+'): '+st.kept.toLocaleString()+' of '+st.intervals.toLocaleString()+' intervals'+(st.kept<st.intervals?' (the longest of each lane; the Parquet tables have all)':'')+'. The page carries at most '+D.max.toLocaleString()+' intervals over '+D.steps.length+' representative steps. The band on top shows which part of the breakdown each moment of the step belongs to.';}
if(!D.steps.length){note.textContent='No steps to draw.';cv.hidden=true;}
else{D.steps.forEach(function(st,i){var b=document.createElement('button');b.type='button';b.textContent='step '+st.step+' \u00b7 '+st.why;b.onclick=function(){select(i);};bar.appendChild(b);});
  select(0); window.addEventListener('resize',draw); window.addEventListener('beforeprint',draw);}
if(location.hash==='#selftest'&&D.steps.length){  // tests drive the real handlers with synthetic events
  var r=cv.getBoundingClientRect(), cx=r.left+LABEL+(r.width-LABEL)/2, full=v1-v0;
  cv.dispatchEvent(new WheelEvent('wheel',{deltaY:-100,clientX:cx,clientY:r.top+TOP+2,bubbles:true,cancelable:true}));
  var zoomed=(v1-v0)/full, before=v0;
  cv.dispatchEvent(new MouseEvent('mousedown',{clientX:cx,clientY:r.top+5,bubbles:true}));
  window.dispatchEvent(new MouseEvent('mousemove',{clientX:cx+100,clientY:r.top+5,bubbles:true}));
  window.dispatchEvent(new MouseEvent('mouseup',{bubbles:true}));
  var panned=v0; reset(); draw();
  cv.dispatchEvent(new MouseEvent('mousemove',{clientX:r.left+LABEL+2,clientY:r.top+TOP+BAND/2,bubbles:true}));
  document.documentElement.setAttribute('data-selftest',JSON.stringify({zoom:zoomed,v0_before_pan:before,v0_after_pan:panned,tip:tip.hidden?'':tip.textContent}));
}
document.documentElement.setAttribute('data-ready','1');
})();
"""
