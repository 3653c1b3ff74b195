"""nsysparse: where an MoE decode step goes, from an Nsight Systems SQLite export."""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    InputMissing,
    NotADatabase,
    NotAnExport,
    NothingToAnalyse,
    NsysParseError,
    UsageError,
)
from .trace import Trace, open_trace  # noqa: E402

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
]
