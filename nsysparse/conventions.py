"""Names the engine and the report agree on, written once.

The runner's engine emits NVTX ranges with these names; ``nsysparse report``
looks for the default ones; the I/O log is aligned on :data:`CLOCK_MARK`; a
``.nsys-rep`` becomes SQLite with :func:`export_command`. A name changed here
changes on both sides. No imports beyond the standard library: the engine
imports this without pandas.
"""

from __future__ import annotations

import os

# ---- what `nsysparse report` looks for by default (CONTRACT.md, Commands) ----
STEP = "step"  # --step: exact range text, any domain
WAIT = "wait|barrier"  # --wait: re.search on the range text
LAYER = "moe_layer"  # --layer
IO_RANGE = "disk_to_cpu"  # --io-range: its int payload is bytes read from disk

# ---- what the runner's engine emits, in NVTX domain ENGINE_DOMAIN ----
ENGINE_DOMAIN = "moe"
# main thread, per decode step and layer
R_STEP = STEP
R_PREFILL = "prefill"
R_MOE_LAYER = LAYER
R_DENSE_LAYER = "dense_layer"
R_ROUTING = "routing"
R_GPU_TO_CPU = "gpu_to_cpu"
R_EXPERT_DISPATCH = "expert_dispatch"
R_PREFETCH = "prefetch"
R_EXPERT_WAIT = "expert_wait_barrier"  # matched by WAIT: the step's bubble
R_EXPERT_COMPUTE = "expert_compute"
# the fetch thread
R_FETCH_LOOP = "fetch_loop"  # its lifetime range: not a step
R_DISK_TO_CPU = IO_RANGE  # payload: bytes
R_CPU_TO_GPU = "cpu_to_gpu"  # payload: bytes
R_STREAM_SYNC = "cuda_stream_sync"
R_SLOT_REUSE_WAIT = "slot_reuse_wait"

ENGINE_RANGES: tuple[str, ...] = (
    R_STEP, R_PREFILL, R_MOE_LAYER, R_DENSE_LAYER, R_ROUTING, R_GPU_TO_CPU, R_EXPERT_DISPATCH, R_PREFETCH,
    R_EXPERT_WAIT, R_EXPERT_COMPUTE, R_FETCH_LOOP, R_DISK_TO_CPU, R_CPU_TO_GPU, R_STREAM_SYNC, R_SLOT_REUSE_WAIT,
)
"""Every range name the engine emits."""

PAYLOAD_RANGES: tuple[str, ...] = (R_DISK_TO_CPU, R_CPU_TO_GPU)
"""Ranges whose integer payload is bytes moved (absent with the torch.cuda.nvtx backend)."""

# The NVTX mark whose integer payload is the I/O log's clock at the moment it was
# emitted; trace time minus payload aligns the log with the trace (METRICS.md).
CLOCK_MARK = "io_log_clock"


def export_command(nsys: str | os.PathLike[str], rep: str | os.PathLike[str],
                   dest: str | os.PathLike[str]) -> list[str]:
    """The ``nsys export`` command line that writes ``rep`` as SQLite to ``dest``.

    ``dest`` must not exist: nsys refuses to overwrite without
    ``--force-overwrite``, and callers export into a fresh path.
    """
    return [str(nsys), "export", "--type", "sqlite", "--output", str(dest), str(rep)]



def clock_mark_text(t_ns: int) -> str:
    """The clock mark's text where a mark cannot carry a payload (``torch.cuda.nvtx``):
    ``io_log_clock=<t_ns>``. With a payload, the text is :data:`CLOCK_MARK` alone."""
    return f"{CLOCK_MARK}={int(t_ns)}"


def parse_clock_mark(text: str, mark: str = CLOCK_MARK) -> int | None:
    """The clock value in a mark text written by :func:`clock_mark_text` (``mark=<int>``), else None."""
    head, sep, value = text.partition("=")
    if head != mark or not sep:
        return None
    try:
        return int(value)
    except ValueError:
        return None
