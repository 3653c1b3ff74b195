"""A time window of a trace: ``--window START:END`` (seconds from the capture's
start) or ``--steps A:B`` (step indices, a Python slice).

A row belongs to the window when it starts inside it, ``[lo, hi)``: an NVTX
range, an API call, a GPU op, a mark. Rows are kept whole, never clipped (a
kernel's duration stays what the GPU took), so every table, the summary and the
charts describe the work that began in the window. :func:`windowed` gives a view
of the trace with the same tables, restricted; the analyses cannot tell it from
a trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pandas as pd

from .errors import NothingToAnalyse, UsageError

NS_PER_S = 1_000_000_000
TABLES = ("nvtx_ranges", "marks", "api_calls", "kernels", "memcpy", "memset", "graph_runs", "os_calls")


@dataclass(frozen=True)
class Window:
    """What the user asked for: ``seconds`` (start, end; either None) or ``steps``
    (a slice's start and stop; either None). At most one of the two is set."""

    seconds: tuple[float | None, float | None] | None = None
    steps: tuple[int | None, int | None] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": list(self.seconds) if self.seconds else None, "steps": list(self.steps) if self.steps else None}

    def __str__(self) -> str:
        def side(v: object) -> str:
            return "" if v is None else f"{v:g}" if isinstance(v, float) else str(v)

        if self.seconds:
            return f"--window {side(self.seconds[0])}:{side(self.seconds[1])}"
        if self.steps:
            return f"--steps {side(self.steps[0])}:{side(self.steps[1])}"
        return "the whole trace"


def parse_window(text: str | None, flag: str = "--window") -> tuple[float | None, float | None] | None:
    """``"1.5:3"`` -> (1.5, 3.0); ``":2"`` -> (None, 2.0); None -> None."""
    if text is None:
        return None
    lo, sep, hi = text.partition(":")
    if not sep:
        raise UsageError(None, f"{flag} {text!r}: give START:END in seconds from the capture's start (either side optional)")
    try:
        a = float(lo) if lo.strip() else None
        b = float(hi) if hi.strip() else None
    except ValueError:
        raise UsageError(None, f"{flag} {text!r}: START and END must be numbers of seconds") from None
    if (a is not None and a < 0) or (a is not None and b is not None and b <= a):
        raise UsageError(None, f"{flag} {text!r}: need 0 <= START < END")
    return a, b


def parse_steps(text: str | None) -> tuple[int | None, int | None] | None:
    """``"2:5"`` -> (2, 5), as a Python slice keeps steps 2, 3 and 4."""
    if text is None:
        return None
    lo, sep, hi = text.partition(":")
    try:
        a = int(lo) if lo.strip() else None
        b = int(hi) if hi.strip() else None
    except ValueError:
        a = b = -1
    if not sep or (a is not None and a < 0) or (b is not None and b < 0):
        raise UsageError(None, f"--steps {text!r}: give A:B, step indices from 0 as a Python slice (2:5 keeps 2, 3 and 4)")
    return a, b


def window_ns(trace: Any, window: Window, steps: pd.DataFrame) -> tuple[int, int, int]:
    """``(lo, hi, first_step)``: the window on the trace clock, and the index of
    the first trace step inside it. ``steps`` are the whole trace's steps.
    A window that holds nothing is a NothingToAnalyse (exit 6) naming the span."""
    first, last = trace.activity_span
    span = (f"the trace's activity spans {first / NS_PER_S:.6f} s to {last / NS_PER_S:.6f} s"
            if first is not None else "the trace holds no CUDA activity")
    if window.steps is not None:
        picked = steps.iloc[slice(*window.steps)]
        if picked.empty:
            raise NothingToAnalyse(trace.path, f"{window} selects no step; the trace has {len(steps)} "
                                               f"(0 to {len(steps) - 1}); {span}")
        return int(picked["start_ns"].min()), int(picked["end_ns"].max()), int(picked["step"].min())
    assert window.seconds is not None
    a, b = window.seconds
    lo = 0 if a is None else round(a * NS_PER_S)
    hi = (max(last or 0, trace.capture_end_ns) + 1) if b is None else round(b * NS_PER_S)
    if first is None or not (first < hi and last >= lo):
        raise NothingToAnalyse(trace.path, f"{window} holds no activity; {span}")
    inside = steps[(steps["start_ns"] >= lo) & (steps["start_ns"] < hi)]
    return lo, hi, int(inside["step"].min()) if len(inside) else 0


class WindowedTrace:
    """The tables of ``trace`` restricted to rows starting in ``[lo, hi)``; every
    other attribute (path, identity, GPUs, threads, notes) is the trace's."""

    def __init__(self, trace: Any, lo: int, hi: int) -> None:
        self._trace, self.lo, self.hi = trace, lo, hi

    def __getattr__(self, name: str) -> Any:
        if name in TABLES:
            df = getattr(self._trace, name)
            col = "ts_ns" if "ts_ns" in df.columns and "start_ns" not in df.columns else "start_ns"
            t = df[col].to_numpy()
            kept = df[(t >= self.lo) & (t < self.hi)].reset_index(drop=True)
            self.__dict__[name] = kept  # cached: the analyses read each table many times
            return kept
        return getattr(self._trace, name)

    def prefetch(self) -> "WindowedTrace":
        self._trace.prefetch()
        return self

    def release(self, *names: str) -> None:
        """Give up ``names`` here and in the trace (see :meth:`Trace.release`)."""
        for name in names:
            self.__dict__.pop(name, None)
        self._trace.release(*names)

    @cached_property
    def activity_span(self) -> tuple[int | None, int | None]:
        from .trace import activity_span

        return activity_span(self)


def windowed(trace: Any, lo: int, hi: int) -> WindowedTrace:
    return WindowedTrace(trace, lo, hi)
