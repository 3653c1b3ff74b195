"""What every chart shares: colours, sizes, and the small drawing helpers."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from ... import schema as S
from ...steps import representative_step  # noqa: F401  (the charts' step, re-exported)

DPI = 120
MAX_BARS = 5000  # per lane and colour: beyond this, sub-pixel neighbours are merged into their union
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
# One colour per breakdown category: blue for the GPU, greys for the host's own
# work, the link colours for copies, warm colours for what blocks the host.
CATEGORY_COLOURS = {
    "gpu_compute": KERNEL,
    "launch": "#9e9ac8",
    "os_call": "#c7c7c7",
    "host_cpu": "#8aa1b4",
    "copy_h2d_pinned": "#2e9d4c",
    "copy_h2d_pageable": "#c9b800",
    "copy_d2h": "#8e5cc4",
    "copy_d2d": "#27b5c9",
    "copy_p2p": "#e052a8",
    "memset": MEMSET,
    "disk_read": DISK,
    "copy_call": "#f0a45d",
    "sync_idle": SYNC,
    "host_wait_other": "#f4c7c3",
}
NVTX_PALETTE = [  # light fills so black text inside stays readable
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2",
    "#dbdb8d", "#9edae5", "#d9d9d9", "#fdd0a2", "#c7e9c0", "#dadaeb", "#fcbba1",
]
# boxplot's ``vert=False`` became ``orientation="horizontal"`` in matplotlib 3.10
HORIZONTAL: dict[str, object] = (
    {"orientation": "horizontal"} if tuple(int(p) for p in matplotlib.__version__.split(".")[:2]) >= (3, 10) else {"vert": False}
)
SHORT_KIND = {S.H2D: "H2D", S.D2H: "D2H", S.D2D: "D2D", S.P2P: "P2P", S.DISK_TO_HOST: "Disk"}


def text_note(ax: Axes, msg: str) -> None:
    ax.text(0.5, 0.5, msg, ha="center", va="center", transform=ax.transAxes, fontsize=11, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def fmt_ns(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.0f} ns"


def size_text(b: pd.Series) -> pd.Series:
    v = b.to_numpy(dtype=np.float64)
    mb = pd.Series(np.round(v / 1e6, 1), index=b.index).astype(str) + " MB"
    kb = pd.Series(np.round(v / 1e3, 1), index=b.index).astype(str) + " kB"
    return mb.where(v >= 1e5, kb)
