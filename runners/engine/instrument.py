"""NVTX ranges in the ``moe`` domain, and the optional JSONL I/O log.

Range names the engine emits (METRICS.md reads them): ``step``, ``prefill``,
``moe_layer``, ``dense_layer``, ``routing``, ``expert_dispatch``,
``expert_wait_barrier``, ``disk_to_cpu`` and ``cpu_to_gpu`` (integer payload:
bytes moved), ``gpu_to_cpu``, ``expert_compute``, ``cuda_stream_sync``,
``prefetch``, ``slot_reuse_wait`` and the fetch thread's lifetime range
``fetch_loop``.

When annotations are off (no GPU, no ``nvtx`` package, or ``--no-nvtx``) and
there is no I/O log, :meth:`Instrument.range` returns one shared
``nullcontext``: no object is built and nothing is recorded.
"""
from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import ContextManager, Iterator

DOMAIN = "moe"
CLOCK_MARK = "io_log_clock"
_NULL = nullcontext()


def nvtx_available() -> bool:
    """Whether the ``nvtx`` package imports."""
    try:
        import nvtx  # noqa: F401
    except ImportError:
        return False
    return True


class Instrument:
    """Emits NVTX ranges and marks, and mirrors them to a JSONL log.

    ``nvtx_on`` asks for NVTX annotations; they are emitted only when the
    ``nvtx`` package imports. ``io_log`` names a JSONL file that receives one
    line per range (``name``, ``start_ns``, ``end_ns``, ``tid``, ``payload``;
    clock: ``time.monotonic_ns``) and one ``clock_mark`` line whose ``t_ns``
    is also the payload of the NVTX mark ``io_log_clock`` (see
    :meth:`clock_mark`), so the log can be aligned with the trace.
    """

    def __init__(self, nvtx_on: bool, io_log: str | Path | None = None) -> None:
        self._domain = None
        if nvtx_on:
            try:
                import nvtx
            except ImportError:
                nvtx = None
            if nvtx is not None:
                self._domain = nvtx.get_domain(DOMAIN)
        self._attrs: dict[str, object] = {}
        self._log = open(io_log, "w", buffering=1 << 16) if io_log else None
        self._lock = threading.Lock()
        self._paused = False
        self.enabled = self._domain is not None or self._log is not None

    @property
    def nvtx_active(self) -> bool:
        """Whether NVTX annotations are emitted."""
        return self._domain is not None

    def range(self, name: str, payload: int | None = None) -> ContextManager[None]:
        """A context manager around one range; a shared no-op when disabled."""
        if not self.enabled:
            return _NULL
        return self._range(name, payload)

    @contextmanager
    def _range(self, name: str, payload: int | None) -> Iterator[None]:
        dom = self._domain
        if dom is not None:
            if payload is None:
                attrs = self._attrs.get(name)
                if attrs is None:
                    attrs = self._attrs[name] = dom.get_event_attributes(message=name)
            else:
                attrs = dom.get_event_attributes(message=name, payload=int(payload))
            dom.push_range(attrs)
        t0 = time.monotonic_ns() if self._log is not None else 0
        try:
            yield
        finally:
            if dom is not None:
                dom.pop_range()
            if self._log is not None:
                self._write({"name": name, "start_ns": t0, "end_ns": time.monotonic_ns(),
                             "tid": threading.get_native_id(), "payload": payload})

    def pause(self, paused: bool) -> None:
        """Stop (or resume) emitting new ranges; ranges already open still close."""
        self._paused = paused
        self.enabled = not paused and (self._domain is not None or self._log is not None)

    def clock_mark(self) -> int:
        """Emit the alignment mark: NVTX mark ``io_log_clock`` whose payload is the log clock now.

        Returns the clock value. The same value is written to the I/O log as
        ``{"event": "clock_mark", "name": "io_log_clock", "t_ns": value}``.
        """
        t = time.monotonic_ns()
        if self._domain is not None:
            self._domain.mark(self._domain.get_event_attributes(message=CLOCK_MARK, payload=t))
        if self._log is not None:
            self._write({"event": "clock_mark", "name": CLOCK_MARK, "t_ns": t,
                         "tid": threading.get_native_id()})
        return t

    def _write(self, record: dict) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            self._log.write(line)

    def close(self) -> None:
        """Flush and close the I/O log."""
        if self._log is not None:
            with self._lock:
                self._log.close()
            self._log = None
            self.enabled = not self._paused and self._domain is not None
