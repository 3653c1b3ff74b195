"""Named baselines: report folders kept under one folder, so that CI can say
``nsysparse diff --baseline main-h200 trace.sqlite --fail-on-regression``.

The folder is ``$NSYSPARSE_BASELINES``, else ``$XDG_CACHE_HOME/nsysparse/baselines``,
else ``~/.cache/nsysparse/baselines``; a baseline is a report folder (written
by ``nsysparse report``, charts left out) named after it.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from .errors import InputMissing, UsageError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def baselines_dir() -> Path:
    """Where named baselines live (see the module doc)."""
    env = os.environ.get("NSYSPARSE_BASELINES")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "nsysparse" / "baselines"


def baseline_path(name: str) -> Path:
    """The folder of baseline ``name`` (which need not exist yet)."""
    if not NAME.match(name):
        raise UsageError(None, f"baseline name {name!r}: use letters, digits, '.', '_' or '-' (at most 100)")
    return baselines_dir() / name


def existing_baseline(name: str) -> Path:
    """The folder of an existing baseline, or InputMissing (exit 3) listing those there are."""
    path = baseline_path(name)
    if not (path / "manifest.json").is_file():
        have = list_baselines()
        raise InputMissing(path, f"no baseline {name!r}; " + (f"saved ones: {', '.join(have)}" if have
                                                                 else "save one with `nsysparse baseline save NAME TRACE`"))
    return path


def list_baselines() -> list[str]:
    root = baselines_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "manifest.json").is_file())


def copy_folder(src: Path, dest: Path) -> None:
    """Copy report folder ``src`` to ``dest`` whole, atomically (a temporary copy renamed)."""
    from .render.files import atomic_dir

    with atomic_dir(dest) as tmp:
        for p in Path(src).iterdir():
            if p.is_file():
                shutil.copy2(p, tmp / p.name)
