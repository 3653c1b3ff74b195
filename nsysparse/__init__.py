"""nsysparse: where an MoE decode step goes, from an Nsight Systems SQLite export.

The package imports lightly: ``open_trace`` and ``Trace`` (and with them
pandas and pyarrow) load on first use, so the command line can answer Ctrl-C
with one line even while the heavy libraries are still importing.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Arrow's allocator (mimalloc) keeps what a table frees for a while, in the process's
# memory: pandas' text columns are Arrow arrays, and a filtered copy of 565k copies left
# 100 MB behind. Purged at once, it goes back to the system as it is freed (2 GB trace:
# peak 1.61 -> 1.55 GB, same time). Read by mimalloc as pyarrow loads, so set before
# pandas imports it; NSYSPARSE_KEEP_ALLOCATOR keeps the allocators as they are
# (with :func:`nsysparse.trace.give_back_freed_memory`).
if "pyarrow" not in sys.modules and not os.environ.get("NSYSPARSE_KEEP_ALLOCATOR"):
    os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")

from .errors import (  # noqa: E402
    InputMissing,
    NotADatabase,
    NotAnExport,
    NothingToAnalyse,
    NsysParseError,
    OutputUnwritable,
    UsageError,
)

if TYPE_CHECKING:
    from .trace import Trace, open_trace

__all__ = [
    "__version__",
    "open_trace",
    "Trace",
    "NsysParseError",
    "UsageError",
    "InputMissing",
    "NotADatabase",
    "NotAnExport",
    "NothingToAnalyse",
    "OutputUnwritable",
]


def __getattr__(name: str) -> Any:
    if name in ("open_trace", "Trace"):
        from . import trace

        return getattr(trace, name)
    raise AttributeError(f"module 'nsysparse' has no attribute {name!r}")
