"""The terminal report (``--format text``) and its Markdown twin: read in ten seconds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..kernels_summary import kernel_summary_lines, short_kernel_name
from .labels import CATEGORY_LABELS
from ..report import Report, jsonable



def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if x is None else fmt.format(x)


def _bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


MIN_SHARE = 0.001  # parts below 0.1% of the step are summed into one line


def _visible_parts(breakdown: dict[str, float], mean: float | None) -> list[tuple[str, str, float, float | None]]:
    """(category, label, ms, share) of each part of the step at or above
    MIN_SHARE, then one line for the rest: the lines still sum to the step."""
    if not breakdown or not mean:
        return []
    rows = [(c, CATEGORY_LABELS.get(c, c), ms, ms / mean) for c, ms in breakdown.items()]
    big = [r for r in rows if r[3] >= MIN_SHARE]
    rest = [r for r in rows if 0 < r[3] < MIN_SHARE]
    if rest:
        ms = sum(r[2] for r in rest)
        big.append(("other", f"{len(rest)} smaller parts", ms, ms / mean))
    return big


def _ms(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f} ms"


def _lines(report: Report) -> dict[str, Any]:
    """The report's content as plain rows, shared by text and Markdown."""
    s = report.summary
    gpus = report.tables["gpus"]
    gpu = ", ".join(
        f"{r['name']}" + (f" (cc {int(r['compute_major'])}.{int(r['compute_minor'])})"
                          if not pd.isna(r.get("compute_major")) and not pd.isna(r.get("compute_minor")) else "")
        for _, r in gpus.iterrows()
    ) if not gpus.empty and "name" in gpus else "unknown"
    live = s["steps"] - s["warmup"]
    head = [
        f"nsysparse {s['tool_version']} · {Path(s['input']['path']).name} · nsys {s['input']['nsys_version']} (schema {s['input']['schema_version']})",
        f"GPU: {gpu}",
        f"Steps: {s['steps']} ({s['warmup']} warm-up left out, {live} measured) · step time p50 {_num(s['step_ms_p50'], '{:.2f}')} ms · p95 {_num(s['step_ms_p95'], '{:.2f}')} ms",
    ]
    mean = s.get("step_ms_mean")
    breakdown = _visible_parts(s.get("breakdown") or {}, mean)
    shares = [
        ("host wait (bubble ratio)", s["bubble_ratio"]),
        ("inside sync calls (sync share)", s["sync_share"]),
        ("GPU idle, no kernel running", s["gpu_idle_ratio"]),
        ("GPU busy with anything (copies too)", s["gpu_busy_any_ratio"]),
        ("I/O floor / step time", s["io_floor_share"]),
        ("H2D copy time hidden under kernels", s["overlap_h2d_compute"]),
    ]
    links = [
        [
            l["link"], str(l["count"]), _bytes(l["bytes"]), _num(l["gbps_effective"]), _num(l["gbps_p50"]),
            _num(l["gbps_p95"]), _num(l["peak_gbps"], "{:.0f}"), _pct(l["utilisation"]),
        ]
        for l in s["links"]
    ]
    targets = [
        [f"{i}.", t["what"], _ms(t["ms_per_step"]), _pct(t["share"]), _ms(t.get("saving_ms")), t.get("lever", "")]
        for i, t in enumerate(s["targets"], 1)
    ]
    held = [f"{h['holder']}" + (f" (tid {h['tid']})" if h.get("tid") is not None else "") + f" {h['ms_per_step']:.2f} ms"
            for h in s.get("held_by", [])[:3]]
    return {"head": head, "breakdown": breakdown, "mean": mean, "shares": shares, "links": links, "targets": targets,
            "notes": s["notes"], "threads": _sync_threads(report), "layers": _layers(report), "held": held}


def _sync_threads(report: Report, k: int = 3) -> list[str]:
    """The threads that synchronise most, each with its own share (never summed)."""
    sync = report.tables["sync"]
    if sync.empty:
        return []
    threads = report.tables["threads"]
    names = threads.set_index(["pid", "tid"])["name"] if not threads.empty else {}
    per = sync.groupby(["pid", "tid"]).agg(share=("share", "sum"), calls=("calls", "sum"), top=("union_ns", "idxmax"))
    per = per.sort_values("share", ascending=False).head(k)
    out = []
    for (pid, tid), row in per.iterrows():
        name = names.get((pid, tid), "") if hasattr(names, "get") else ""
        label = f"{pid}/{tid}" + (f" {name}" if name else "")
        out.append(f"{label}: {_pct(min(row['share'], 1.0))} in {int(row['calls'])} calls, mostly {sync.loc[row['top'], 'base_name']}")
    return out


def _layers(report: Report) -> str:
    lay = report.tables["layers"]
    live = report.summary["steps"] - report.summary["warmup"]
    if lay.empty or live <= 0:
        return ""
    parts = [f"L{int(r.layer)} {r.wait_ns / live / 1e6:.2f}" for r in lay.itertuples()]
    worst = lay.loc[lay["wait_ns"].idxmax(), "layer"]
    return f"host wait per layer, ms per step: {', '.join(parts)} (most: layer {int(worst)})"


LINK_HEADER = ["link", "copies", "bytes", "GB/s eff", "p50", "p95", "peak", "util"]


def _table(rows: list[list[str]], header: list[str]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return [fmt(header), *(fmt(r) for r in rows)]


BAR = 24  # characters for 100%
TOP_TARGETS = 5


def _bars(parts: list[tuple[str, str, float, float | None]]) -> list[str]:
    """One bar per part; the bars of an exclusive breakdown sum to BAR characters
    (largest remainders get the rounding), so they read as a whole."""
    shares = np.array([p[3] or 0.0 for p in parts])
    raw = shares * BAR
    n = np.floor(raw).astype(int)
    left = int(round(shares.sum() * BAR)) - int(n.sum())
    if left > 0:
        n[np.argsort(-(raw - n))[:left]] += 1
    return ["#" * int(k) for k in n]


def render_text(report: Report) -> str:
    """The terminal report: the exclusive breakdown of the step and the ranked
    targets first, then the overlapping views, threads, layers, links, kernels."""
    c = _lines(report)
    out = [*c["head"], ""]
    if c["breakdown"]:
        out.append(f"Where the step goes (mean measured step, {_ms(c['mean'])}; exclusive: the parts sum to 100%)")
        for (cat, label, ms, share), bar in zip(c["breakdown"], _bars(c["breakdown"])):
            out.append(f"  {label:<40} {ms:>9.2f} ms {_pct(share):>6}  {bar}")
        out += ["", "Top targets (each part's time per step; the lever; what pulling it would save)"]
        shown = [t for t in c["targets"] if t[2] != "n/a"][:TOP_TARGETS]
        for n, what, ms, share, save, lever in shown:
            out.append(f"  {n:<3} {what:<18} {ms:>10} {share:>6}  saves {save:>10}")
            out.append(f"      {lever}")
        if len(c["targets"]) > len(shown):
            out.append(f"  ({len(c['targets']) - len(shown)} more in summary.json)")
        if not shown:
            out.append("  none: the GPU computes for the whole step")
        if c["held"]:
            out += ["", "Waits held by (per measured step): " + "; ".join(c["held"])]
        out += ["", "Overlapping views (each a share of the step; they overlap, so they do not add up)"]
    else:
        out.append("Where the step goes (measured steps, share of step time)")
    for label, v in c["shares"]:
        bar = "#" * int(round(BAR * v)) if v is not None else ""
        out.append(f"  {label:<40} {_pct(v):>7}  {bar}")
    if c["threads"]:
        out += ["", "Sync by thread (share of that thread's steps, or of the run)"]
        out += [f"  {line}" for line in c["threads"]]
    if c["layers"]:
        out += ["", f"Layers: {c['layers']}"]
    out += ["", "Links (whole trace; GB/s = 1e9 B/s; eff = bytes / busy time)"]
    out += ["  " + line for line in _table(c["links"], LINK_HEADER)] if c["links"] else ["  no transfers"]
    kern = kernel_summary_lines(report.tables["kernels_summary"], 10) if "kernels_summary" in report.tables else []
    if kern:
        out += ["", f"Kernels (top {len(kern) - 1} of {len(report.tables['kernels_summary'])} by GPU time; "
                    "share of all kernel time)"]
        out += ["  " + line for line in kern]
    if c["notes"]:
        out += ["", *(f"note: {n}" for n in c["notes"])]
    return "\n".join(out) + "\n"


def render_markdown(report: Report) -> str:
    """The same content as GitHub Markdown."""
    c = _lines(report)
    out = [f"### {c['head'][0]}", "", *(f"- {h}" for h in c["head"][1:]), ""]
    if c["breakdown"]:
        out += [f"**Where the step goes** (mean measured step, {_ms(c['mean'])}; exclusive: the parts sum to 100%)", "",
                "| part | ms per step | share |", "| --- | ---: | ---: |"]
        out += [f"| {label} | {ms:.2f} | {_pct(share)} |" for _, label, ms, share in c["breakdown"]]
        out += ["", "| # | top target | ms per step | share | saves | lever |", "| --- | --- | ---: | ---: | ---: | --- |"]
        out += ["| " + " | ".join(r) + " |" for r in c["targets"]]
        if c["held"]:
            out += ["", "Waits held by (per measured step): " + "; ".join(c["held"])]
        out += ["", "| overlapping views (they do not add up) | share |", "| --- | ---: |"]
    else:
        out += ["| where the step goes | share |", "| --- | ---: |"]
    out += [f"| {label} | {_pct(v)} |" for label, v in c["shares"]]
    out += ["", "| " + " | ".join(LINK_HEADER) + " |", "| --- |" + " ---: |" * (len(LINK_HEADER) - 1)]
    out += ["| " + " | ".join(r) + " |" for r in c["links"]]
    ks = report.tables.get("kernels_summary")
    if ks is not None and len(ks):
        out += ["", f"| kernel (top {min(10, len(ks))} of {len(ks)}) | launches | total ms | per step ms | mean µs | "
                    "p50 µs | p95 µs | share |", "| --- |" + " ---: |" * 7]
        for r in ks.head(10).itertuples():
            per = "-" if pd.isna(r.per_step_ns) else f"{r.per_step_ns / 1e6:.3f}"
            out.append(f"| `{short_kernel_name(str(r.name))}` | {r.launches} | {r.total_ns / 1e6:.3f} | {per} | "
                       f"{r.mean_ns / 1e3:.1f} | {r.p50_ns / 1e3:.1f} | {r.p95_ns / 1e3:.1f} | {_pct(r.share)} |")
    if c["notes"]:
        out += ["", *(f"> note: {n}" for n in c["notes"])]
    return "\n".join(out) + "\n"


def render_json(report: Report) -> str:
    return json.dumps(report.summary, indent=2, default=jsonable, allow_nan=False) + "\n"
