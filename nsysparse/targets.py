"""Optimisation targets from the exclusive breakdown: what each cause costs a
step, the lever that shrinks it, and what pulling that lever would save.

Every breakdown category but ``gpu_compute`` is a candidate. A target's time
is its category's exclusive time per measured step, so targets never overlap
and their shares sum to at most 1. ``saving_ms`` is what the lever would save
per step, never more than the target's own time, and null where the trace
cannot say:

- copies (``copy_h2d_pinned``, ``copy_h2d_pageable``, ``copy_d2h``,
  ``copy_d2d``, ``copy_p2p``): at the link's peak the step's bytes of that
  kind need ``bytes / peak``; the saving is the blocked time beyond that
  (pageable: "pin the host memory", at the pinned H2D peak). Without a peak
  (D2D and P2P have no default: ``--link-peak``) the saving is unknown.
- ``disk_read``: cache or prefetch; saves all of it.
- ``sync_idle``: order by events, not stream sync; saves all of it.
- ``copy_call``: pin the host memory so the call stops staging; saves all of
  it when the step has pageable copies, else unknown.
- ``launch``: CUDA graphs or fewer, larger kernels; saves all of it.
- ``host_cpu``, ``os_call``, ``host_wait_other``, ``memset``: the lever names
  what the trace shows (kernels per step, the top OS calls, what held the
  waits); how much a change saves is unknown.
"""

from __future__ import annotations

from typing import Any

from .breakdown import COPY_CLASSES

COPY_PEAK_KIND = {
    "copy_h2d_pinned": "H2D", "copy_h2d_pageable": "H2D", "copy_d2h": "D2H", "copy_d2d": "D2D", "copy_p2p": "P2P",
}
MIN_TARGET_MS = 0.0005  # half a microsecond per step: below it a cause is noise, not a target


def _mb(b: float) -> str:
    return f"{b / 1e6:.1f} MB" if b >= 1e5 else f"{b / 1e3:.1f} kB"


def breakdown_targets(
    breakdown_ms: dict[str, float],
    mean_step_ms: float,
    copy_bytes_per_step: dict[str, float],
    peaks: dict[str, float],
    kernels_per_step: float | None,
    kernel_mean_us: float | None,
    top_os_calls: list[str],
    top_holder: str | None,
) -> list[dict[str, Any]]:
    """Every category but ``gpu_compute`` with time in it, ranked by ms per step:
    ``what`` (the category), ``ms_per_step``, ``share`` (of the mean step),
    ``saving_ms`` (None when unknown) and ``lever`` (one line).

    ``breakdown_ms``: category -> mean exclusive ms per measured step;
    ``copy_bytes_per_step``: copy class (breakdown.COPY_CLASSES values) -> mean bytes per
    measured step; ``peaks``: ``--link-peak`` kind -> GB/s."""
    out = []
    launches = (f"{kernels_per_step:.0f} kernels launched per step"
                + (f", {kernel_mean_us:.1f} µs mean" if kernel_mean_us is not None else "")) if kernels_per_step else ""
    for what, ms in breakdown_ms.items():
        if what == "gpu_compute" or not ms >= MIN_TARGET_MS:
            continue
        saving: float | None = None
        if what in COPY_PEAK_KIND:
            nbytes = copy_bytes_per_step.get(COPY_CLASSES[what], 0.0)
            peak = peaks.get(COPY_PEAK_KIND[what])
            if peak:
                need_ms = nbytes / peak / 1e6  # bytes / (GB/s) = ns
                saving = max(0.0, ms - need_ms)
                at_peak = f"at the {peak:g} GB/s peak its {_mb(nbytes)} a step need {need_ms:.2f} ms"
            else:
                at_peak = f"{_mb(nbytes)} a step; give --link-peak {COPY_PEAK_KIND[what]}=GBPS for the saving"
            if what == "copy_h2d_pageable":
                lever = f"pin the host memory: {at_peak} (pinned)"
            else:
                lever = f"overlap the copies with compute (prefetch on a side stream): {at_peak}"
        elif what == "disk_read":
            saving, lever = ms, "cache or prefetch the experts: a host-memory cache turns these reads into copies"
        elif what == "sync_idle":
            saving, lever = ms, "order by events, not stream sync (cudaStreamWaitEvent), so the host keeps launching"
        elif what == "copy_call":
            pageable = copy_bytes_per_step.get("H2D pageable", 0.0) > 0
            saving = ms if pageable else None
            lever = ("pin the host memory: a pageable copy call stages the data before the copy starts"
                     if pageable else "the host is inside copy calls with no copy in flight: batch or pin them")
        elif what == "launch":
            saving = ms
            lever = "CUDA graphs or fewer, larger kernels" + (f" ({launches})" if launches else "")
        elif what == "host_cpu":
            lever = ("host work between CUDA calls: profile it (py-spy); CUDA graphs or fewer, larger kernels"
                     + (f" ({launches})" if launches else ""))
        elif what == "os_call":
            lever = "OS calls" + (f": mostly {', '.join(top_os_calls)}" if top_os_calls else "")
        elif what == "host_wait_other":
            lever = (f"waits held by {top_holder}: overlap it with compute or make it faster" if top_holder
                     else "waits nothing traced released: annotate what the thread waits for")
        else:  # memset
            lever = "the host waits on fills: fewer, larger memsets, or none"
        if saving is not None:
            saving = float(min(saving, ms))
        out.append({"what": what, "ms_per_step": float(ms),
                    "share": float(ms / mean_step_ms) if mean_step_ms > 0 else None,
                    "saving_ms": saving, "lever": lever})
    out.sort(key=lambda t: -t["ms_per_step"])
    return out
