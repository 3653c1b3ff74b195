"""The steps chart: where each step's time goes."""

from __future__ import annotations


import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from ...report import Report
from ...breakdown import CATEGORIES, breakdown_wide
from ..labels import CATEGORY_LABELS
from .style import CATEGORY_COLOURS, MAX_STEP_BARS, FONT
from .style import text_note as _text_note


def step_breakdown(report: Report) -> pd.DataFrame:
    """Per step: ``step``, ``warmup``, ``dur_ns`` and one int64 column per
    breakdown category (CATEGORIES order), which sum to ``dur_ns``. Read from the
    report's breakdown table: the renderer computes nothing."""
    st = report.tables["steps"].reset_index(drop=True)
    wide = breakdown_wide(report.tables["breakdown"]).reindex(st["step"]).fillna(0).astype("int64")
    out = pd.DataFrame({"step": st["step"].to_numpy(), "warmup": st["warmup"].to_numpy(dtype=bool),
                        "dur_ns": st["dur_ns"].to_numpy(dtype=np.int64)})
    for c in CATEGORIES:
        out[c] = wide[c].to_numpy()
    return out


def steps_figure(report: Report) -> Figure:
    """Per step, a stacked bar of its exclusive breakdown (the categories sum to
    the step), in ms. Warm-up steps are hatched and labelled; one far above the
    others is cut at the top with its value written on it, so the other bars
    stay readable."""
    b = step_breakdown(report)
    n = len(b)
    fig = Figure(figsize=(min(13.0, max(6.5, 0.3 * n + 3)), 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if n == 0:
        _text_note(ax, "no steps")
        return fig
    x = b["step"].to_numpy()
    parts = [(CATEGORY_LABELS[c], b[c], CATEGORY_COLOURS[c]) for c in CATEGORIES]
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
    title = "Where each step's time goes (exclusive: the parts sum to the step)"
    ax.set_title(title, loc="left", fontsize=11)
    ax.grid(axis="y", color="#e5e5e5", linewidth=0.5)
    ax.set_axisbelow(True)
    return fig


