"""How the reports name things: one place for text, Markdown, charts and HTML."""

from __future__ import annotations

# What each breakdown category means, as the reports name it (METRICS.md, Breakdown).
CATEGORY_LABELS = {
    "gpu_compute": "GPU computing (kernels, graphs)",
    "launch": "host in other CUDA calls (launches)",
    "os_call": "host in OS calls",
    "host_cpu": "host work outside traced calls",
    "copy_h2d_pinned": "blocked, H2D copy in flight (pinned)",
    "copy_h2d_pageable": "blocked, H2D copy in flight (pageable)",
    "copy_d2h": "blocked, D2H copy in flight",
    "copy_d2d": "blocked, D2D copy in flight",
    "copy_p2p": "blocked, peer copy in flight",
    "memset": "blocked, memset in flight",
    "disk_read": "blocked, disk read in progress",
    "copy_call": "blocked in a copy call (staging)",
    "sync_idle": "blocked in a sync call, GPU idle",
    "host_wait_other": "blocked in a wait, nothing in flight",
}
