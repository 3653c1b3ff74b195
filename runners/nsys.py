"""Locating Nsight Systems and its importer, building the profile command, recovering an export.

nsys is looked for in ``$NSYS``, on ``PATH``, in ``/opt/nvidia/nsight-systems/*/bin``,
``/usr/local/cuda*/bin`` and in the copy bundled with Nsight Compute
(``/opt/nvidia/nsight-compute/*/host/target-linux-x64/nsys``), newest version first.
Some installs write only a ``.qdstrm`` because their importer cannot load;
:func:`ensure_sqlite` then runs ``QdstrmImporter`` itself and ``nsys export``.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from nsysparse.conventions import export_command
from nsysparse.errors import NotAnExport
from nsysparse.nsys import INSTALL_GLOBS, find_nsys  # noqa: F401 - re-exported for the runner

TRACE_FLAGS = ("-t", "cuda,nvtx,osrt")
# CPU sampling and context switches are not used by nsysparse and would swell the trace.
QUIET_FLAGS = ("--sample", "none", "--cpuctxsw", "none")
IMPORTER = "QdstrmImporter"
# one lookup for the runner and nsysparse: a trace the runner takes is one nsysparse can export
SEARCH_GLOBS = INSTALL_GLOBS


class NsysError(NotAnExport):
    """nsys ran but left no usable trace (exit 5); the message says what it did and where its log is."""


def find_importer(nsys: Path) -> Path | None:
    """``QdstrmImporter`` for this nsys: beside it, in ``../linux-desktop-glibc_2_11_3-x64`` or ``../host-linux-x64``."""
    here = Path(nsys).resolve().parent
    for cand in (here / IMPORTER, here.parent / "linux-desktop-glibc_2_11_3-x64" / IMPORTER,
                 here.parent / "host-linux-x64" / IMPORTER, here.parent / "target-linux-x64" / IMPORTER):
        if cand.is_file() and os.access(cand, os.X_OK):
            return cand
    on_path = shutil.which(IMPORTER)
    return Path(on_path) if on_path else None


def nsys_version(nsys: Path) -> str | None:
    """``nsys --version``'s version number, or None when it does not run."""
    try:
        out = subprocess.run([str(nsys), "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"\d+\.\d+\.\d+(\.\d+)?", out)
    return m.group(0) if m else out.strip() or None


def profile_command(nsys: str | Path, output_stem: str | Path, program: Sequence[str],
                    export: str = "sqlite", extra: Sequence[str] = ()) -> list[str]:
    """``nsys profile -t cuda,nvtx,osrt --export EXPORT -o STEM`` around ``program``.

    ``extra`` (the user's ``--nsys-args``) goes after our flags and before the program.
    """
    return [str(nsys), "profile", *TRACE_FLAGS, *QUIET_FLAGS, "--export", export, "--force-overwrite", "true",
            "-o", str(output_stem), *extra, *program]


@dataclass
class Recovery:
    """How the SQLite came about: ``direct`` (nsys wrote it), or the steps taken to recover it."""

    how: str
    steps: list[str]


def ensure_sqlite(nsys: Path, stem: Path, log: Path, timeout: float = 1800) -> tuple[Path, Recovery]:
    """The ``STEM.sqlite`` that ``nsys profile -o STEM --export sqlite`` should have written.

    If only ``STEM.nsys-rep`` exists, runs ``nsys export --type sqlite``; if
    only ``STEM.qdstrm`` exists, first runs ``QdstrmImporter -i`` on it.
    Commands and their output are appended to ``log``. Raises
    :class:`NsysError` (a :class:`~nsysparse.errors.NotAnExport`, exit 5) when
    no trace can be recovered.
    """
    sqlite, rep, qdstrm = stem.with_suffix(".sqlite"), stem.with_suffix(".nsys-rep"), stem.with_suffix(".qdstrm")
    if sqlite.is_file() and sqlite.stat().st_size > 0:
        return sqlite, Recovery("direct", [])
    steps: list[str] = []
    if not rep.is_file():
        if not qdstrm.is_file():
            raise NsysError(log, f"nsys left neither {sqlite.name}, {rep.name} nor {qdstrm.name} in {stem.parent}")
        importer = find_importer(nsys)
        if importer is None:
            raise NsysError(qdstrm, f"is all nsys wrote and no {IMPORTER} was found beside {nsys}; "
                                    f"import it on a machine with Nsight Systems ({IMPORTER} -i FILE)")
        run_logged([str(importer), "-i", str(qdstrm)], log, timeout)
        steps.append(f"{IMPORTER} -i {qdstrm.name}")
        if not rep.is_file():
            raise NsysError(log, f"{importer} did not write {rep}")
    sqlite.unlink(missing_ok=True)  # an empty one: export_command does not overwrite
    run_logged(export_command(nsys, rep, sqlite), log, timeout)
    steps.append(f"nsys export --type sqlite {rep.name}")
    if not sqlite.is_file():
        raise NsysError(log, f"nsys export did not write {sqlite}")
    return sqlite, Recovery("recovered", steps)


def run_logged(cmd: Sequence[str], log: Path, timeout: float, env: Mapping[str, str] | None = None) -> int:
    """Run ``cmd`` with its output appended to ``log`` (after the command line); returns its exit status."""
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        return subprocess.run(list(cmd), stdout=f, stderr=subprocess.STDOUT, timeout=timeout,
                              env=None if env is None else dict(env)).returncode

