"""The GPU-busy chart: per time bin, the share with a kernel and with any GPU op."""

from __future__ import annotations


import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from ...report import Report
from .style import FONT, KERNEL
from .style import text_note as _text_note, fmt_ns as _fmt_ns


def gpu_busy_figure(report: Report) -> Figure:
    """Per device, the fraction of each time bin with a kernel or graph run running
    (line) and with any GPU op (filled), as the ``gpu_busy`` table holds them
    (:func:`nsysparse.gpu.gpu_busy_bins`): on the left over the whole run (first
    to last GPU op), on the right over the non-warm-up steps only when they fill
    less of it (setup and warm-up often fill most of a run). Steps are shaded
    alternately, warm-up steps hatched."""
    bins = report.tables["gpu_busy"]
    devices = sorted(int(d) for d in pd.unique(bins["device"])) if len(bins) else []
    fig = Figure(figsize=(13.0, 1.4 + 1.9 * max(len(devices), 1)), layout="constrained")
    FigureCanvasAgg(fig)
    if not devices:
        ax = fig.add_subplot()
        _text_note(ax, "no GPU activity recorded")
        ax.set_title("GPU busy over the run", loc="left", fontsize=11)
        return fig
    st = report.tables["steps"]
    panels = []
    for panel in pd.unique(bins["panel"]):
        b = bins[bins["panel"] == panel]
        plo, phi = int(b["start_ns"].min()), int(b["end_ns"].max())
        if panel == "run":
            panels.append(("whole run", plo, phi, "the first GPU op", b))
        else:
            live = st[~st["warmup"].astype(bool)]
            first = int(live["step"].min())
            panels.append((f"non-warm-up steps {first}–{int(live['step'].max())}", plo, phi, f"step {first}'s start", b))
    axes = fig.subplots(len(devices), len(panels), squeeze=False, sharey=True,
                        gridspec_kw={"width_ratios": [2, 3][-len(panels):] if len(panels) == 2 else [1]})
    for col, (name, plo, phi, origin, b) in enumerate(panels):
        nbins = int(b["bin"].max()) + 1
        unit, scale = ("s", 1e9) if phi - plo > 5e9 else ("ms", 1e6) if phi - plo > 2e6 else ("µs", 1e3)
        for r, dev in enumerate(devices):
            ax = axes[r, col]
            d = b[b["device"] == dev].sort_values("bin")
            x = (np.r_[d["start_ns"].to_numpy(), d["end_ns"].to_numpy()[-1:]] - plo) / scale
            _shade_steps(ax, st, plo, scale, float(x[0]), float(x[-1]), label_steps=(r == 0 and col == len(panels) - 1))
            ax.stairs(d["any_share"].to_numpy(), x, fill=True, color="#9ecae1", alpha=0.85,
                      label="any GPU op (kernel, graph, copy, fill)")
            ax.stairs(d["kernel_share"].to_numpy(), x, color=KERNEL, linewidth=1.1, label="kernel or graph run")
            ax.set_ylim(0, 1.08)
            ax.set_xlim(x[0], x[-1])
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
            ax.grid(axis="y", color="#dddddd", linewidth=0.5)
            ax.tick_params(labelsize=FONT)
            if col == 0:
                ax.set_ylabel(f"GPU {dev}\nbusy share", fontsize=FONT + 1)
            if r == 0:
                ax.set_title(f"{name}: {nbins} bins of {_fmt_ns((phi - plo) / max(nbins, 1))}",
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


def _shade_steps(ax: Axes, st: pd.DataFrame, origin: int, scale: float, lo: float, hi: float, label_steps: bool) -> None:
    """Shade each step, clipped to the panel's x range ``[lo, hi]``; label the
    measured steps whose middle lies inside it (a label far outside the axes
    makes FreeType fail on a very short panel)."""
    if len(st) > 400:
        return  # stripes that thin would be noise
    for i, row in enumerate(st.itertuples(index=False)):
        s0 = max((row.start_ns - origin) / scale, lo)
        s1 = min((row.end_ns - origin) / scale, hi)
        if s1 <= s0:
            continue
        if row.warmup:
            ax.axvspan(s0, s1, facecolor="#f2f2f2", hatch="//", edgecolor="#bbbbbb", linewidth=0, zorder=0)
        else:
            ax.axvspan(s0, s1, facecolor="#e8eef5" if i % 2 == 0 else "#f5efe3", linewidth=0, zorder=0)
    if label_steps and len(st) <= 40:
        live = st[~st["warmup"].astype(bool)]
        for row in live.itertuples(index=False):
            mid = ((row.start_ns + row.end_ns) / 2 - origin) / scale
            if lo <= mid <= hi:
                ax.text(mid, 1.04, str(row.step), ha="center", va="center", fontsize=FONT - 1, color="#555555",
                        clip_on=True)
