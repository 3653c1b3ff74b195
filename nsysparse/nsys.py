"""Find the Nsight Systems CLI and export a ``.nsys-rep`` to SQLite with it.

Looked for, in order: ``$NSYS`` (the executable itself), ``nsys`` on ``PATH``,
then the install locations of the Nsight Systems and Nsight Compute packages
(newest version first). The runner and ``nsysparse`` share this lookup, so a
trace the runner could take is one ``nsysparse`` can read.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from glob import glob
from pathlib import Path

from .conventions import export_command
from .errors import NotAnExport

# Where NVIDIA's packages put nsys; the version folder is the wildcard.
INSTALL_GLOBS: tuple[str, ...] = (
    "/opt/nvidia/nsight-systems/*/bin/nsys",
    "/usr/local/cuda*/bin/nsys",
    "/opt/nvidia/nsight-compute/*/host/target-linux-x64/nsys",
)
SEARCHED = "$NSYS, PATH, " + ", ".join(INSTALL_GLOBS)


def _version_key(path: str) -> tuple[int, ...]:
    """``/opt/nvidia/nsight-systems/2025.3.2/bin/nsys`` -> ``(2025, 3, 2)``: newest sorts last."""
    m = re.search(r"/(\d+(?:\.\d+)*)[^/]*/", path)
    return tuple(int(x) for x in m.group(1).split(".")) if m else ()


def _executable(p: str | Path) -> bool:
    return os.path.isfile(p) and os.access(p, os.X_OK)


def find_nsys(env: Mapping[str, str] | None = None, globs: Sequence[str] | None = None) -> Path | None:
    """The nsys executable to use, or None when there is none (see the module doc).

    ``env`` (default ``os.environ``) supplies ``NSYS`` and ``PATH``; ``globs``
    (default :data:`INSTALL_GLOBS`) the install locations.
    """
    env = os.environ if env is None else env
    explicit = env.get("NSYS")
    if explicit and _executable(explicit):
        return Path(explicit)
    on_path = shutil.which("nsys", path=env.get("PATH"))
    if on_path:
        return Path(on_path)
    for pattern in INSTALL_GLOBS if globs is None else globs:
        found = [p for p in glob(pattern) if _executable(p)]
        if found:
            return Path(max(found, key=_version_key))
    return None


def export_sqlite(rep: Path, dest: Path, nsys: Path | None = None) -> Path:
    """Export ``rep`` to the SQLite file ``dest`` with nsys and return ``dest``.

    Raises :class:`NotAnExport` (exit 5) with one line naming ``rep`` when nsys
    is missing, cannot run, fails, or writes no file.
    """
    rep, dest = Path(rep), Path(dest)
    nsys = nsys or find_nsys()
    if nsys is None:
        raise NotAnExport(rep, f"is a .nsys-rep and nsys was not found ({SEARCHED}); install Nsight Systems or set NSYS, "
                               "or export it with `nsys export --type sqlite` and pass the .sqlite")
    try:
        done = subprocess.run(export_command(nsys, rep, dest), capture_output=True, text=True, errors="replace")
    except OSError as exc:
        raise NotAnExport(rep, f"could not run {nsys} to export it ({exc.strerror or exc}); check NSYS") from None
    if done.returncode != 0 or not dest.is_file() or dest.stat().st_size == 0:
        # nsys prints progress on stdout and the reason on stderr: its last line says why
        lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()] or \
                [ln.strip() for ln in done.stdout.splitlines() if ln.strip()]
        why = lines[-1] if lines else "no output"
        raise NotAnExport(rep, f"`nsys export --type sqlite` failed (exit {done.returncode}): {why}")
    return dest
