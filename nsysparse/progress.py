"""Progress of a long run on stderr: one line per phase (reading each table,
analysing, writing), never on stdout (JSON mode's stdout stays one document).

    from nsysparse import progress
    with progress.phase("reading api_calls", rows=n):
        ...
    progress.set_enabled(False)   # --quiet

By default (``set_enabled(None)``) lines go to stderr only when it is a
terminal, and only for what takes long: a phase of at least ``LONG_ROWS``
rows announces itself when it starts, and every phase that lasted at least
``SHOWN_S`` seconds says so when it ends. ``set_enabled(True)`` shows every
phase (tests, logs); ``set_enabled(False)`` nothing. Safe from several
threads (the loader reads tables concurrently): each line is written whole.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

LONG_ROWS = 1_000_000  # a phase over this many rows says when it starts
SHOWN_S = 0.5  # a phase that took this long says so when it ends

_enabled: bool | None = None  # None: when stderr is a terminal
_lock = threading.Lock()


def set_enabled(on: bool | None) -> None:
    """True: every phase; False: nothing (``--quiet``); None: long phases, when stderr is a terminal."""
    global _enabled
    _enabled = on


def enabled() -> bool:
    """Whether progress lines are written now."""
    if _enabled is not None:
        return _enabled
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # a closed stream
        return False


def _say(text: str) -> None:
    with _lock:
        try:
            sys.stderr.write(f"nsysparse: {text}\n")
            sys.stderr.flush()
        except (ValueError, OSError):
            pass  # a closed or broken stderr never fails a report


@contextmanager
def phase(what: str, rows: int | None = None) -> Iterator[None]:
    """Time ``what`` (``"reading api_calls"``; ``rows``: how many it handles,
    if known) and report it as module docstring says. A phase that raises
    says nothing: the error is what the user sees."""
    if not enabled():
        yield
        return
    everything = _enabled is True
    label = what if rows is None else f"{what} ({rows:,} rows)"
    if everything or (rows or 0) >= LONG_ROWS:
        _say(f"{label} ...")
    t0 = time.perf_counter()
    yield
    dt = time.perf_counter() - t0
    if everything or dt >= SHOWN_S:
        _say(f"{label}: {dt:.1f} s")
