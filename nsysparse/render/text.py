"""The terminal report (``--format text``) and its Markdown twin: read in ten seconds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..report import Report, jsonable

TARGET_NAMES = {"host_wait": "host wait (bubble)", "sync": "synchronisation", "gpu_idle_other": "GPU idle, host busy"}


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


def _target_label(what: str) -> str:
    return TARGET_NAMES.get(what, what.replace("link:", "link ", 1))


def _lines(report: Report) -> dict[str, Any]:
    """The report's content as plain rows, shared by text and Markdown."""
    s = report.summary
    gpus = report.tables["gpus"]
    gpu = ", ".join(
        f"{r['name']} (cc {int(r['compute_major'])}.{int(r['compute_minor'])})" for _, r in gpus.iterrows()
    ) if not gpus.empty and "compute_major" in gpus else "unknown"
    live = s["steps"] - s["warmup"]
    head = [
        f"nsysparse {s['tool_version']} · {Path(s['input']['path']).name} · nsys {s['input']['nsys_version']} (schema {s['input']['schema_version']})",
        f"GPU: {gpu}",
        f"Steps: {s['steps']} ({s['warmup']} warm-up left out, {live} measured) · step time p50 {_num(s['step_ms_p50'], '{:.2f}')} ms · p95 {_num(s['step_ms_p95'], '{:.2f}')} ms",
    ]
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
        [f"{i}.", _target_label(t["what"]), f"{t['ms_per_step']:.2f} ms", _pct(t["share"])]
        for i, t in enumerate(s["targets"], 1)
    ]
    return {"head": head, "shares": shares, "links": links, "targets": targets, "notes": s["notes"],
            "threads": _sync_threads(report), "layers": _layers(report)}


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


def render_text(report: Report) -> str:
    """The compact terminal report, ending with the top three targets."""
    c = _lines(report)
    out = [*c["head"], "", "Where the step goes (measured steps, share of step time)"]
    for label, v in c["shares"]:
        bar = "#" * int(round(20 * v)) if v is not None else ""
        out.append(f"  {label:<38} {_pct(v):>7}  {bar}")
    if c["threads"]:
        out += ["", "Sync by thread (share of that thread's steps, or of the run)"]
        out += [f"  {line}" for line in c["threads"]]
    if c["layers"]:
        out += ["", f"Layers: {c['layers']}"]
    out += ["", "Links (whole trace; GB/s = 1e9 B/s; eff = bytes / busy time)"]
    out += ["  " + line for line in _table(c["links"], LINK_HEADER)] if c["links"] else ["  no transfers"]
    out += ["", "Top targets (step time each costs, per measured step)"]
    out += [f"  {n} {what:<52} {ms:>10}  {share:>6} of the step" for n, what, ms, share in c["targets"]] or ["  none"]
    if c["notes"]:
        out += ["", *(f"note: {n}" for n in c["notes"])]
    return "\n".join(out) + "\n"


def render_markdown(report: Report) -> str:
    """The same content as GitHub Markdown."""
    c = _lines(report)
    out = [f"### {c['head'][0]}", "", *(f"- {h}" for h in c["head"][1:]), "", "| where the step goes | share |", "| --- | ---: |"]
    out += [f"| {label} | {_pct(v)} |" for label, v in c["shares"]]
    out += ["", "| " + " | ".join(LINK_HEADER) + " |", "| --- |" + " ---: |" * (len(LINK_HEADER) - 1)]
    out += ["| " + " | ".join(r) + " |" for r in c["links"]]
    out += ["", "| # | top target | ms per step | share |", "| --- | --- | ---: | ---: |"]
    out += ["| " + " | ".join(r) + " |" for r in c["targets"]]
    if c["notes"]:
        out += ["", *(f"> note: {n}" for n in c["notes"])]
    return "\n".join(out) + "\n"


def render_json(report: Report) -> str:
    return json.dumps(report.summary, indent=2, default=jsonable, allow_nan=False) + "\n"
