"""The links chart: per-copy GB/s per link, with effective rate and peak."""

from __future__ import annotations


import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from ... import schema as S
from ...report import Report
from .style import FONT, LINK_COLOURS, SHORT_KIND
from .style import HORIZONTAL as _HORIZONTAL, text_note as _text_note


def copy_rates(report: Report) -> pd.DataFrame:
    """Every copy and disk read with a duration: ``link`` (as in the links
    table), ``category`` (colour class) and ``gbps`` (bytes / duration, 1e9 B/s),
    as the copies table holds them."""
    c = report.tables["copies"]
    c = c[c["dur_ns"].to_numpy() > 0]
    return pd.DataFrame({"link": c["link"].astype(object).to_numpy(), "category": c["category"].astype(object).to_numpy(),
                         "gbps": c["gbps"].to_numpy(dtype=np.float64)})


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
    copies = report.tables["copies"]
    category_of = dict(zip(copies["link"].astype(object), copies["category"].astype(object)))
    labels, values = [], []
    by_link = {k: g["gbps"].to_numpy() for k, g in rates.groupby("link", sort=False)}
    for y, row in enumerate(links.itertuples(index=False)):
        v = by_link.get(row.link, np.zeros(0))
        cat = category_of.get(row.link, "other copy")
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


