"""The report the shared outputs' tests (HTML, Perfetto, results database) read:
a fixture of ``tests/data`` reported as ``nsysparse report`` reports it, cached."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import nsysparse
from nsysparse.report import Report, build_report

DATA = Path(__file__).resolve().parent / "data"


@lru_cache(maxsize=None)
def _report(name: str) -> Report:
    return build_report(nsysparse.open_trace(DATA / f"{name}.sqlite"))


def shared_report(name: str = "offload_disk") -> Report:
    """The fixture ``tests/data/<name>.sqlite`` reported (a fresh copy of the
    cached report's containers, so a test may change them)."""
    r = _report(name)
    return Report(input=dict(r.input), settings=r.settings, tables=dict(r.tables), summary=dict(r.summary),
                  notes=list(r.notes))
