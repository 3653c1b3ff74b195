"""NVTX ranges in the ``moe`` domain, and the optional JSONL I/O log.

Range names the engine emits (METRICS.md reads them) are written once, in
:mod:`nsysparse.conventions`: ``step``, ``prefill``, ``moe_layer``,
``dense_layer``, ``routing``, ``expert_dispatch``, ``expert_wait_barrier``,
``disk_to_cpu`` and ``cpu_to_gpu`` (integer payload: bytes moved),
``gpu_to_cpu``, ``expert_compute``, ``cuda_stream_sync``, ``prefetch``,
``slot_reuse_wait`` and the fetch thread's lifetime range ``fetch_loop``.

Two annotation backends (:data:`BACKENDS`): the ``nvtx`` package (domain
``moe``, byte payloads, the clock mark's payload), or, where that package is
missing, ``torch.cuda.nvtx`` (a CUDA build of torch; default domain, no
payloads: bytes then come from the I/O log, and the clock mark carries its
value in its text, ``io_log_clock=<t>``). :func:`annotation_backend` says
which one works here.

When annotations are off (no GPU, no backend, or ``--no-nvtx``) and there is
no I/O log, :meth:`Instrument.range` returns one shared ``nullcontext``: no
object is built and nothing is recorded.
"""
from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, ContextManager, Iterator

from nsysparse.conventions import CLOCK_MARK, ENGINE_DOMAIN, clock_mark_text

DOMAIN = ENGINE_DOMAIN
NVTX, TORCH = "nvtx", "torch"
BACKENDS = (NVTX, TORCH)
"""Annotation backends, in the order ``auto`` tries them."""
DESCRIBE = {NVTX: "the nvtx package (domain moe, byte payloads)",
            TORCH: "torch.cuda.nvtx (no nvtx package: default domain, no payloads; bytes from the I/O log)",
            None: "none (NVTX annotations off)"}
_NULL = nullcontext()


class AnnotationsUnavailable(RuntimeError):
    """The annotation backend asked for does not work in this interpreter."""


def nvtx_available() -> bool:
    """Whether the ``nvtx`` package imports."""
    try:
        import nvtx  # noqa: F401
    except ImportError:
        return False
    return True


def torch_nvtx_available() -> bool:
    """Whether ``torch.cuda.nvtx`` works: torch imports and is a CUDA build (a CPU build raises on use).

    A push/pop without a profiler attached is a no-op, so probing by calling it is harmless.
    """
    try:
        import torch.cuda.nvtx as tnvtx

        tnvtx.range_push("nsysparse_probe")
        tnvtx.range_pop()
    except (ImportError, RuntimeError, AttributeError):
        return False
    return True


def annotation_backend(prefer: str = "auto") -> str | None:
    """The backend that works here: ``prefer`` itself (``nvtx`` or ``torch``) if it works, else None;
    with ``auto`` the first of :data:`BACKENDS` that works, else None."""
    probes = {NVTX: nvtx_available, TORCH: torch_nvtx_available}
    if prefer != "auto":
        return prefer if probes[prefer]() else None
    return next((b for b in BACKENDS if probes[b]()), None)


class _NvtxPackage:
    """The ``nvtx`` package's domain API: cached attributes per name, payloads."""

    payloads = True

    def __init__(self) -> None:
        import nvtx

        self._dom = nvtx.get_domain(DOMAIN)
        self._attrs: dict[str, Any] = {}

    def push(self, name: str, payload: int | None) -> None:
        dom = self._dom
        if payload is None:
            attrs = self._attrs.get(name)
            if attrs is None:
                attrs = self._attrs[name] = dom.get_event_attributes(message=name)
        else:
            attrs = dom.get_event_attributes(message=name, payload=int(payload))
        dom.push_range(attrs)

    def pop(self) -> None:
        self._dom.pop_range()

    def clock_mark(self, t: int) -> None:
        self._dom.mark(self._dom.get_event_attributes(message=CLOCK_MARK, payload=t))


class _TorchNvtx:
    """``torch.cuda.nvtx``: push/pop of a message only; the clock value goes in the mark's text."""

    payloads = False

    def __init__(self) -> None:
        import torch.cuda.nvtx as tnvtx

        self._push, self._pop, self._mark = tnvtx.range_push, tnvtx.range_pop, tnvtx.mark

    def push(self, name: str, payload: int | None) -> None:
        self._push(name)

    def pop(self) -> None:
        self._pop()

    def clock_mark(self, t: int) -> None:
        self._mark(clock_mark_text(t))


class Instrument:
    """Emits NVTX ranges and marks, and mirrors them to a JSONL log.

    ``nvtx_on`` asks for NVTX annotations through ``backend`` (``auto``:
    the first of :data:`BACKENDS` that works, else none; ``nvtx`` or
    ``torch``: that one, or :class:`AnnotationsUnavailable`). ``io_log``
    names a JSONL file that receives one line per range (``name``,
    ``start_ns``, ``end_ns``, ``tid``, ``payload``; clock:
    ``time.monotonic_ns``) and one ``clock_mark`` line whose ``t_ns`` is also
    the value of the NVTX mark ``io_log_clock`` (see :meth:`clock_mark`), so
    the log can be aligned with the trace. The log file is created by
    :meth:`open_log`, not by the constructor.
    """

    def __init__(self, nvtx_on: bool, io_log: str | Path | None = None, backend: str = "auto") -> None:
        self.backend: str | None = None
        self._nvtx: _NvtxPackage | _TorchNvtx | None = None
        if nvtx_on:
            chosen = annotation_backend(backend)
            if chosen is None and backend != "auto":
                raise AnnotationsUnavailable(f"--nvtx-backend {backend}: {DESCRIBE[backend].split(' (')[0]} "
                                             "does not work in this interpreter")
            if chosen is not None:
                self._nvtx = _NvtxPackage() if chosen == NVTX else _TorchNvtx()
                self.backend = chosen
        self._log_path = Path(io_log) if io_log else None
        self._log: Any = None  # opened by open_log(): constructing writes nothing
        self._lock = threading.Lock()
        self._paused = False
        self.enabled = self._nvtx is not None or self._log is not None

    @property
    def nvtx_active(self) -> bool:
        """Whether NVTX annotations are emitted."""
        return self._nvtx is not None

    @property
    def payloads(self) -> bool:
        """Whether ranges carry their byte payloads in the trace (the ``nvtx`` backend)."""
        return self._nvtx is not None and self._nvtx.payloads

    def range(self, name: str, payload: int | None = None) -> ContextManager[None]:
        """A context manager around one range; a shared no-op when disabled."""
        if not self.enabled:
            return _NULL
        return self._range(name, payload)

    @contextmanager
    def _range(self, name: str, payload: int | None) -> Iterator[None]:
        ann, log = self._nvtx, self._log
        if ann is not None:
            ann.push(name, payload)
        t0 = time.monotonic_ns() if log is not None else 0
        try:
            yield
        finally:
            if ann is not None:
                ann.pop()
            if log is not None and self._log is not None:
                self._write({"name": name, "start_ns": t0, "end_ns": time.monotonic_ns(),
                             "tid": threading.get_native_id(), "payload": payload})

    def open_log(self) -> None:
        """Create the I/O log file (if one was named) and start recording into it. Idempotent."""
        if self._log_path is not None and self._log is None:
            self._log = open(self._log_path, "w", buffering=1 << 16)
            self.enabled = not self._paused

    def pause(self, paused: bool) -> None:
        """Stop (or resume) emitting new ranges; ranges already open still close."""
        self._paused = paused
        self.enabled = not paused and (self._nvtx is not None or self._log is not None)

    def clock_mark(self) -> int:
        """Emit the alignment mark: NVTX mark ``io_log_clock`` whose payload is the log clock now
        (``torch`` backend: the mark ``io_log_clock=<value>``, no payload).

        Returns the clock value. The same value is written to the I/O log as
        ``{"event": "clock_mark", "name": CLOCK_MARK, "t_ns": value}``.
        """
        t = time.monotonic_ns()
        if self._nvtx is not None:
            self._nvtx.clock_mark(t)
        if self._log is not None:
            self._write({"event": "clock_mark", "name": CLOCK_MARK, "t_ns": t,
                         "tid": threading.get_native_id()})
        return t

    def _write(self, record: dict) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            if self._log is not None:  # a range closing after close() is dropped, not a crash
                self._log.write(line)

    def close(self) -> None:
        """Flush and close the I/O log."""
        if self._log is not None:
            with self._lock:
                self._log.close()
            self._log = None
            self.enabled = not self._paused and self._nvtx is not None
