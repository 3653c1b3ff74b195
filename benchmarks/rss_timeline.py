"""Where a report's memory goes: peak RSS of each analysis stage of one trace.

    python benchmarks/rss_timeline.py TRACE [--serial]

Reads ``TRACE`` (prefetch), then runs the report's analyses as ``nsysparse report``
does (the API calls spilled to a temporary folder) with each analysis wrapped to
print its wall seconds, RSS before -> after, the peak RSS while it ran and the
page faults of the process meanwhile (a
sampler thread reads /proc/self/statm every 20 ms; with the background analysis
thread running, a stage's peak includes what that thread held then). ``--serial``
runs the background jobs in line, so each peak is the stage's own. Linux only.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import functools
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nsysparse import report as R  # noqa: E402
from nsysparse.render.files import write_report_folder  # noqa: E402
from nsysparse.trace import open_trace  # noqa: E402

STAGES = ["sync_calls", "compute_intervals", "_projection", "GpuBusy.of", "GpuBusy.plus", "copies_table", "step_table", "nvtx_projection",
          "breakdown_tables", "assign_to_steps", "link_bandwidth", "step_links", "with_step_bytes", "with_step_kernels",
          "_idle_outside_host_stalls", "h2d_overlap", "layer_table", "step_devices", "sync_table", "range_table",
          "gpu_busy_bins", "kernel_summary", "wait_holders", "held_by_table", "_named_gpu_ops", "_summary",
          "_breakdown_summary"]


def faults_k() -> int:
    """Minor page faults of the whole process so far, in thousands (a page first
    touched: 4 KiB each; what the allocator gave back and asked for again)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt // 1000


def cpu_s() -> float:
    """User plus system CPU seconds of the whole process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


class _Serial:
    """A pool that runs each job at once, in the caller's thread."""

    def __init__(self, *a: object, **k: object) -> None:
        pass

    def submit(self, fn, *a, **k):  # type: ignore[no-untyped-def]
        fut: cf.Future = cf.Future()
        fut.set_result(fn(*a, **k))
        return fut

    def shutdown(self, wait: bool = True) -> None:
        pass


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("trace", type=Path)
    p.add_argument("--serial", action="store_true", help="run the background analysis jobs in line")
    args = p.parse_args()
    peak = [0.0]

    def sample() -> None:
        while True:
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    t0 = time.time()

    def mark(what: str) -> None:
        print(f"{time.time() - t0:7.2f} s  rss {rss_mb():7.0f} MB  peak {peak[0]:7.0f} MB  faults {faults_k():6d}k"
              f"  cpu {cpu_s():6.1f} s  {what}", flush=True)

    if args.serial:
        R.ThreadPoolExecutor = _Serial  # type: ignore[misc, assignment]
    for name in STAGES:  # a function of the report module, or a method of one of its classes ("Class.method")
        owner, attr = (getattr(R, name.split(".")[0]), name.split(".")[1]) if "." in name else (R, name)
        fn = getattr(owner, attr)

        @functools.wraps(fn)
        def timed(*a, _fn=fn, _name=name, **k):  # type: ignore[no-untyped-def]
            before, peak[0], t = peak[0], rss_mb(), time.time()
            r0, f0 = rss_mb(), faults_k()
            out = _fn(*a, **k)
            print(f"    {_name:28s} {time.time() - t:6.2f} s  rss {r0:6.0f} -> {rss_mb():6.0f}  peak {peak[0]:6.0f}"
                  f"  faults +{faults_k() - f0:5d}k  [{threading.current_thread().name}]", flush=True)
            peak[0] = max(before, peak[0])
            return out

        setattr(owner, attr, timed if owner is R else staticmethod(timed) if isinstance(owner.__dict__[attr], classmethod) else timed)
    work = Path(tempfile.mkdtemp(prefix="nsysparse-rss-"))
    try:
        trace = open_trace(args.trace)
        spiller = R._Spiller(work, trace, R.Settings())  # the calls to their files as report does
        trace.prefetch(spiller.take, spiller.calls_file(), spiller.calls_file("os_calls"))
        mark("read (prefetch)")
        try:
            report = R._analyse(trace, R.Settings(), spiller)
        finally:
            spiller.close()
        mark("analysed")
        write_report_folder(report, work / "out")
        mark("written")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
