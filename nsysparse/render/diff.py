"""A diff as text, Markdown or JSON, and its folder: diff.json, diff.md, diff_steps.png, manifest.json."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .. import __version__
from ..diff import CHANGED, CONFIDENCE, RESAMPLES, Diff
from ..metrics import METRICS
from ..breakdown import CATEGORIES
from .labels import CATEGORY_LABELS
from ..report import jsonable
from .files import atomic_dir, write_json

CHART = "diff_steps.png"
MAX_RANGES = 15  # ranges shown in text/Markdown; diff.json has them all
LABELS = {name: m.label for name, m in METRICS.items()}


def _fmt(x: float | None, unit: str, signed: bool = False) -> str:
    """A value in its unit: ratios as % (a delta in percentage points), ns as ms."""
    if x is None:
        return "-"
    sign = "+" if signed else ""
    if unit == "ratio":
        return f"{100 * x:{sign}.1f}" + (" pt" if signed else "%")
    if unit == "ns":
        return f"{x / 1e6:{sign}.3f} ms"
    if unit == "ms":
        return f"{x:{sign}.3f} ms"
    return f"{x:{sign}.3f} {unit}"


def _ci(r: dict[str, Any]) -> str:
    if r["ci_low"] is None:
        return "-"
    return f"[{_fmt(r['ci_low'], r['unit'], True)}, {_fmt(r['ci_high'], r['unit'], True)}]"


def _rows(rows: list[dict[str, Any]], label: Callable[[str], str] = str) -> list[list[str]]:
    return [[label(r["name"]), _fmt(r["a"], r["unit"]), _fmt(r["b"], r["unit"]), _fmt(r["delta"], r["unit"], True),
             _ci(r), r["verdict"]] for r in rows]


def _ranked_ranges(d: Diff) -> tuple[list[dict[str, Any]], int]:
    """Changed ranges first, then by |delta| relative to A; at most MAX_RANGES."""
    def key(r: dict[str, Any]) -> tuple[int, float]:
        rel = abs(r["delta"]) / r["a"] if r["delta"] is not None and r["a"] else 0.0
        return (0 if r["verdict"] == CHANGED else 1 if r["delta"] is None else 2, -rel)

    ranked = sorted(d.ranges, key=key)
    return ranked[:MAX_RANGES], max(0, len(ranked) - MAX_RANGES)


def _sections(d: Diff) -> tuple[list[str], list[tuple[str, list[str], list[list[str]]]]]:
    name_a, name_b = Path(d.a["given_path"]).name, Path(d.b["given_path"]).name
    head = [
        f"nsysparse {__version__} diff · A {name_a} ({d.a['measured_steps']} measured steps) · "
        f"B {name_b} ({d.b['measured_steps']} measured steps)",
        f"delta = B − A; {round(100 * CONFIDENCE)}% bootstrap interval from {RESAMPLES} resamples of measured steps "
        "(links: of copies); changed = the interval excludes 0",
    ]
    hdr = ["A", "B", "B − A", f"{round(100 * CONFIDENCE)}% interval", "verdict"]
    ranges, more = _ranked_ranges(d)
    range_title = "Ranges (mean CPU time per instance)" + (f"; {more} more in diff.json" if more else "")
    return head, [
        ("Where the step goes (exclusive breakdown, ms per measured step)", ["part", *hdr],
         _rows(d.breakdown, lambda n: CATEGORY_LABELS.get(n, n))),
        ("Summary metrics (measured steps; the ratios overlap)", ["metric", *hdr], _rows(d.metrics, lambda n: LABELS.get(n, n))),
        (range_title, ["range", *hdr], _rows(ranges)),
        ("Links (effective GB/s = bytes / busy time, 1e9 B/s)", ["link", *hdr], _rows(d.links)),
    ]


def _table(rows: list[list[str]], header: list[str]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) if i in (0, len(header) - 1) else c.rjust(w)
                      for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in [header, *rows]]


def render_text(d: Diff) -> str:
    """The terminal form: three tables, then notes."""
    head, sections = _sections(d)
    out = list(head)
    for title, header, rows in sections:
        out += ["", title]
        out += ["  " + line for line in _table(rows, header)] if rows else ["  none"]
    out += [f"note: {n}" for n in d.notes]
    return "\n".join(out) + "\n"


def render_markdown(d: Diff) -> str:
    """The same content as GitHub Markdown."""
    head, sections = _sections(d)
    out = [f"### {head[0]}", "", head[1]]
    for title, header, rows in sections:
        out += ["", f"**{title}**", "", "| " + " | ".join(header) + " |",
                "| --- |" + " ---: |" * (len(header) - 2) + " --- |"]
        out += ["| " + " | ".join(r) + " |" for r in rows] or ["| none |" + " |" * (len(header) - 1)]
    out += [f"\n> note: {n}" for n in d.notes]
    return "\n".join(out) + "\n"


def render_json(d: Diff) -> str:
    return json.dumps(d.to_dict(), indent=2, default=jsonable, allow_nan=False) + "\n"


RENDERERS: dict[str, Callable[[Diff], str]] = {"text": render_text, "markdown": render_markdown, "json": render_json}

def parts(steps: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(column, label, colour) of the stacked parts: the breakdown's categories."""
    from .charts.style import CATEGORY_COLOURS

    return [(c, CATEGORY_LABELS[c], CATEGORY_COLOURS[c]) for c in CATEGORIES if c in steps and steps[c].any()]


def breakdown(steps: pd.DataFrame) -> pd.DataFrame:
    """Per step, in ms: each breakdown category (the parts sum to the step)."""
    out = pd.DataFrame({"step": steps["step"].to_numpy(), "warmup": steps["warmup"].to_numpy(dtype=bool)})
    for c in CATEGORIES:
        if c in steps:
            out[c] = steps[c].to_numpy(dtype=np.float64) / 1e6
    return out


def write_diff_chart(d: Diff, folder: Path) -> list[str]:
    """``diff_steps.png``: each run's per-step exclusive breakdown as stacked bars, A and B side by side on one ms scale; warm-up steps faded.
    The scale fits the measured steps (a warm-up step can be 100x longer): a
    taller bar is cut and labelled with its length."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    runs = [("A", d.a, breakdown(d.steps_a), d.steps_a), ("B", d.b, breakdown(d.steps_b), d.steps_b)]
    shown = {c: (c, label, colour) for _, _, _, st in runs for c, label, colour in parts(st)}
    stacked = [shown[c] for c in CATEGORIES if c in shown]
    live_tops = [bd.loc[~bd["warmup"], [c for c, _, _ in stacked if c in bd]].sum(axis=1).max() for _, _, bd, _ in runs]
    live_tops = [t for t in live_tops if np.isfinite(t) and t > 0]
    top = 1.15 * max(live_tops) if live_tops else None
    for ax, (tag, side, bd, steps) in zip(axes, runs):
        x = np.arange(len(bd))
        bottom = np.zeros(len(bd))
        edge = "white" if len(bd) <= 60 else "none"
        for col, label, color in stacked:
            if col not in bd:
                continue
            h = bd[col].to_numpy()
            colors = [(color, 0.35 if w else 1.0) for w in bd["warmup"]]
            ax.bar(x, h, bottom=bottom, color=colors, edgecolor=edge, linewidth=0.5)
            bottom += h
        live = steps[~steps["warmup"].to_numpy(dtype=bool)]
        dur = float(live["dur_ns"].sum())
        stats = (f"mean {dur / len(live) / 1e6:.2f} ms, host wait {live['wait_ns'].sum() / dur:.0%}"
                 if len(live) and dur > 0 else "no measured step")
        ax.set_title(f"{tag}: {Path(side['given_path']).name}\nmeasured steps: {stats}", fontsize=10)
        ax.set_xticks(x if len(bd) <= 30 else x[:: max(1, len(bd) // 15)])
        ax.set_xlim(-0.6, max(len(bd), 4) - 0.4)  # one or two steps: normal bars, not a wall
        ax.set_xlabel("step (faded: warm-up)")
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        if top is not None:
            for i in np.flatnonzero(bottom > top):
                ax.annotate(f"{bottom[i]:.0f} ms \u2191", (x[i], top), xytext=(0, -12), textcoords="offset points",
                            ha="center", fontsize=8)
    if top is not None:
        axes[0].set_ylim(0, top)
    axes[0].set_ylabel("ms")
    fig.legend(handles=[Patch(color=c, label=label) for _, label, c in stacked], loc="outside right upper", fontsize=8)
    fig.suptitle("Per-step breakdown, A vs B", fontsize=11)
    fig.savefig(folder / CHART, dpi=110)
    return [CHART]


def write_diff_folder(d: Diff, dest: Path, chart: bool = True) -> list[str]:
    """Write ``diff.json``, ``diff.md``, the chart and ``manifest.json`` into ``dest``
    atomically (the old folder is replaced whole). Returns the file names."""
    with atomic_dir(dest) as tmp:
        write_json(d.to_dict(), tmp / "diff.json")
        (tmp / "diff.md").write_text(render_markdown(d), encoding="utf-8")
        created = ["diff.json", "diff.md"]
        if chart:
            created += write_diff_chart(d, tmp)
        files = sorted(created + ["manifest.json"])
        write_json({
            "tool": "nsysparse",
            "tool_version": __version__,
            "command": "diff",
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "a": d.a, "b": d.b,
            "nsys_version": {"a": d.a["nsys_version"], "b": d.b["nsys_version"]},
            "schema_version": {"a": d.a["schema_version"], "b": d.b["schema_version"]},
            "settings": d.settings.to_dict(),
            "files": files,
        }, tmp / "manifest.json")
    return files
