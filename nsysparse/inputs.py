"""Turn what the user named into an exported ``.sqlite`` path.

A ``.sqlite`` passes through (``open_trace`` checks it). A ``.nsys-rep`` is
exported with nsys (found as :func:`nsysparse.nsys.find_nsys` finds it) into a
temporary folder that is removed afterwards; without nsys it is a
:class:`NotAnExport` (exit 5).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import InputMissing
from .nsys import export_sqlite

REP_SUFFIX = ".nsys-rep"


@contextlib.contextmanager
def resolve_trace(path: Path) -> Iterator[Path]:
    """Yield a ``.sqlite`` for ``path``; a temporary export is removed afterwards."""
    path = Path(path)
    if path.suffix != REP_SUFFIX:
        yield path
        return
    if not path.exists():
        raise InputMissing(path, "no such file; give the path of a .nsys-rep or an exported .sqlite")
    if path.is_dir():
        raise InputMissing(path, "is a directory; give the path of a .nsys-rep or an exported .sqlite")
    with tempfile.TemporaryDirectory(prefix="nsysparse-export-") as tmp:
        yield export_sqlite(path, Path(tmp) / f"{path.stem}.sqlite")
