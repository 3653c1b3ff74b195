"""``python -m runners.bandwidth``: pinned host<->device copy bandwidth of this machine, timed with CUDA events.

Measures a large copy (default 256 MiB) and an expert-sized copy, from a
``pin_memory`` tensor and from ``cudaHostRegister``-ed page-aligned memory
(what the engine uses), so the engine's expert copies can be compared with
what the link gives. GB/s means 1e9 bytes per second.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys

from .engine.presets import PRESETS


def measure(nbytes: int, repeats: int, source: str, direction: str = "h2d", rewrite: bool = False) -> dict:
    """Median and best GB/s of ``repeats`` copies of ``nbytes`` (``source``: pin_memory|registered).

    ``rewrite``: the CPU rewrites the host buffer before each copy, as a disk
    read into a bounce buffer does, so the copy reads freshly written memory.
    """
    import torch

    from .engine.memory import HostSlab

    slab = None
    if source == "registered":
        slab = HostSlab(1, -(-nbytes // 4096) * 4096, 0, "bfloat16", pin=True)
        host = torch.from_numpy(slab.io_buffer(0)[:nbytes])
        source = slab.pinning
    else:
        host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
    dev = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    stream = torch.cuda.Stream()
    times = []
    with torch.cuda.stream(stream):
        fill = torch.ones(nbytes, dtype=torch.uint8) if rewrite else None
        for i in range(repeats + 2):
            if fill is not None:
                host.copy_(fill)
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record(stream)
            if direction == "h2d":
                dev.copy_(host, non_blocking=True)
            else:
                host.copy_(dev, non_blocking=True)
            b.record(stream)
            b.synchronize()
            if i >= 2:  # two warm-ups
                times.append(a.elapsed_time(b) / 1e3)
    if slab is not None:
        del host
        slab.close()
    gbps = [nbytes / t / 1e9 for t in times]
    return {"bytes": nbytes, "direction": direction, "source": source, "rewritten_before_copy": rewrite,
            "repeats": repeats,
            "gbps_median": statistics.median(gbps), "gbps_max": max(gbps)}


def main(argv: list[str] | None = None) -> int:
    """Print (and with ``--json``, write) the measurements."""
    parser = argparse.ArgumentParser(prog="python -m runners.bandwidth", description=__doc__)
    parser.add_argument("--size-mib", type=int, default=256, help="large copy size (MiB)")
    parser.add_argument("--preset", default="deepseek", choices=sorted(PRESETS), help="expert size to measure too")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", default=None, help="write the results here")
    ns = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("runners.bandwidth: no CUDA GPU visible", file=sys.stderr)
        return 4
    large = ns.size_mib << 20
    expert = PRESETS[ns.preset].expert_bytes
    rows = [measure(large, ns.repeats, "pin_memory"), measure(large, ns.repeats, "registered"),
            measure(expert, ns.repeats * 3, "pin_memory"), measure(expert, ns.repeats * 3, "registered"),
            measure(expert, ns.repeats * 3, "registered", rewrite=True), measure(large, ns.repeats, "pin_memory", "d2h")]
    out = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "copies": rows}
    for r in rows:
        print(f"{r['direction']} {r['bytes'] / 2**20:8.1f} MiB from {r['source']:16s}"
              f"{' rewritten' if r['rewritten_before_copy'] else '':10s} "
              f"median {r['gbps_median']:6.2f} GB/s  max {r['gbps_max']:6.2f} GB/s")
    if ns.json:
        with open(ns.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
