"""nsysparse: where an MoE decode step goes, from an Nsight Systems SQLite export.

The package imports lightly: ``open_trace`` and ``Trace`` (and with them
pandas and pyarrow) load on first use, so the command line can answer Ctrl-C
with one line even while the heavy libraries are still importing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

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
