"""Write a report folder atomically: Parquet tables, summary.json, manifest.json, charts.

Everything is written into a temporary folder beside the destination and
renamed into place, so an interrupted run leaves the previous folder or none.
"""

from __future__ import annotations

import contextlib
import errno
from concurrent.futures import ThreadPoolExecutor
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from .. import __version__, progress
from ..parquet import arrow_schema, arrow_table, file_metadata, write_parquet  # noqa: F401 (arrow_*: re-exported)
from ..errors import InputMissing, OutputUnwritable, UsageError
from ..report import Report, Settings, jsonable

MANIFEST = "manifest.json"
SUMMARY = "summary.json"


STALE_TMP_S = 3600  # a temporary folder of ours this old was left by a killed run


def check_out(dest: Path, inputs: Sequence[Path] = (), force: bool = False) -> Path:
    """The folder ``dest`` a command may write, or a UsageError (exit 2) that says
    why not. Never: the input itself, a folder holding an input, ``.``, ``..`` or
    any folder above the current one, an existing file, or an existing folder
    that is not an nsysparse output folder (its manifest says so) unless
    ``force``. A symbolic link is followed: its target is what gets replaced."""
    given = Path(dest)
    real = Path(os.path.realpath(given))
    cwd = Path(os.path.realpath(os.getcwd()))
    if given.name in ("", ".", "..") or real == cwd or real in cwd.parents:
        raise UsageError(given, "--out must name a folder of its own, not the current folder or one above it")
    for inp in inputs:
        r = Path(os.path.realpath(inp))
        if r == real:
            raise UsageError(given, "--out is the input itself; give a new folder")
        if real in r.parents:
            raise UsageError(given, f"--out holds the input {inp}; replacing it would delete it: give a new folder")
    if real.exists() and not real.is_dir():
        raise UsageError(given, "--out is an existing file; give a folder")
    if real.is_dir() and any(real.iterdir()) and not force and not is_output_folder(real):
        raise UsageError(given, "--out is a folder that nsysparse did not write; it would be replaced whole: "
                                "give a new folder, or --force to replace it")
    return real


def is_output_folder(folder: Path) -> bool:
    """Whether ``folder`` was written by nsysparse (its manifest.json says so)."""
    try:
        return json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8")).get("tool") == "nsysparse"
    except (OSError, ValueError, AttributeError):
        return False


def sweep_stale(parent: Path, name: str, now: float | None = None) -> list[Path]:
    """Remove ``.NAME.tmp-*`` / ``.NAME.old-*`` folders of ours in ``parent``
    older than STALE_TMP_S (left by a run that was killed mid-write)."""
    now = time.time() if now is None else now
    gone = []
    for p in Path(parent).glob(f".{name}.*-*"):
        if not (p.name.startswith(f".{name}.tmp-") or p.name.startswith(f".{name}.old-")) or not p.is_dir():
            continue
        try:
            if now - p.stat().st_mtime > STALE_TMP_S:
                shutil.rmtree(p, ignore_errors=True)
                gone.append(p)
        except OSError:
            continue
    return gone


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT)  # the user's to fix: exit 8


@contextlib.contextmanager
def atomic_dir(dest: Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``dest``; on success it replaces
    ``dest`` whole, on failure it is removed and ``dest`` is untouched. The
    folder gets the permissions the user's umask gives a new folder (mkdtemp's
    0700 would hide it from teammates). Permission and disk-full errors are an
    :class:`OutputUnwritable` (exit 8) naming the folder."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale(dest.parent, dest.name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
        os.chmod(tmp, 0o777 & ~_umask())
    except OSError as exc:
        raise OutputUnwritable(dest, f"cannot write the output folder here ({exc.strerror or exc}); give another --out") from None
    try:
        yield tmp
        old = None
        if dest.exists():
            old = dest.parent / f".{dest.name}.old-{os.getpid()}"
            os.replace(dest, old)
        os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno in _UNWRITABLE:
            raise OutputUnwritable(dest, f"cannot write the output folder ({exc.strerror}); "
                                         "nothing was replaced: free space or give another --out") from None
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def spill_folder(dest: Path) -> Iterator[Path]:
    """A temporary folder beside ``dest`` for what ``build_report(spill_to=)``
    writes ahead of the report folder (same file system: the folder writer links
    from it), removed afterwards; named as :func:`sweep_stale` finds it if a
    killed run leaves it behind."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-spill-", dir=dest.parent))
    except OSError as exc:
        raise OutputUnwritable(dest, f"cannot write the output folder here ({exc.strerror or exc}); give another --out") from None
    try:
        yield tmp
    except OSError as exc:  # the spilled table's write, as atomic_dir words its own
        if exc.errno in _UNWRITABLE:
            raise OutputUnwritable(dest, f"cannot write the output folder ({exc.strerror}); "
                                         "nothing was replaced: free space or give another --out") from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def provenance(report: Report) -> dict[str, str]:
    """What every output carries: tool version, the input's nsys version and schema, settings."""
    return file_metadata(report.input, report.settings.to_dict())


def write_json(obj: Any, path: Path) -> None:
    path.write_text(json.dumps(obj, indent=2, default=jsonable, allow_nan=False) + "\n", encoding="utf-8")


def write_report_folder(
    report: Report,
    dest: Path,
    charts: Callable[[Report, Path], list[str]] | None = None,
) -> list[str]:
    """Write every table, ``summary.json``, the charts and ``manifest.json`` into
    ``dest`` atomically. Returns the created file names."""
    meta = provenance(report)
    tables = report.tables
    spilled = {name: s for name in tables if (s := tables.spilled(name)) is not None}
    with atomic_dir(dest) as tmp:
        rows = sum(tables.rows(name) for name in tables)
        with progress.phase(f"writing {len(tables)} tables", rows=rows):
            for name, s in spilled.items():  # written already, with this provenance: linked, not written again
                _link_or_copy(s.path, tmp / f"{name}.parquet")
            # tables in parallel, largest first: Arrow conversion and Parquet encoding
            # release the GIL; each table goes in slices (write_parquet), so the
            # threads hold a slice each, not a copy of each table
            items = sorted(tables.in_memory().items(), key=lambda item: -len(item[1]))
            with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
                list(pool.map(lambda item: write_parquet(item[1], tmp / f"{item[0]}.parquet", meta), items))
        created = [f"{name}.parquet" for name in tables]
        if charts is not None:  # before the summary: a chart that fails adds a note to it
            with progress.phase("drawing charts"):
                created += charts(report, tmp)
        write_json(report.summary, tmp / SUMMARY)
        created.append(SUMMARY)
        manifest = {
            "tool": "nsysparse",
            "tool_version": __version__,
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "input": report.input,
            "nsys_version": report.input["nsys_version"],
            "schema_version": report.input["schema_version"],
            "settings": report.settings.to_dict(),
            "notes": report.notes,
            "files": sorted(created + [MANIFEST]),
        }
        write_json(manifest, tmp / MANIFEST)
    for name, s in spilled.items():  # the folder's file is the one the report reads back from now on
        tables[name] = replace(s, path=Path(dest) / f"{name}.parquet")
    return sorted(created + [MANIFEST])


def _link_or_copy(src: Path, dst: Path) -> None:
    """``src`` at ``dst`` too: a hard link where the file system allows, else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def read_report_folder(folder: Path) -> Report:
    """The :class:`Report` a report folder holds: its tables, summary, input,
    settings and notes, read back from the files alone (the trace may be gone).
    Renderers given it print and draw what ``nsysparse report`` did."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputMissing(folder, "no such report folder (give the --out folder of `nsysparse report`)")
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        summary = json.loads((folder / SUMMARY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UsageError(folder, f"is not an nsysparse report folder: it lacks a readable {MANIFEST} and {SUMMARY}") from None
    if manifest.get("tool") != "nsysparse" or "settings" not in manifest:
        raise UsageError(folder, f"is not an nsysparse report folder: its {MANIFEST} was not written by nsysparse")
    tables = {f[: -len(".parquet")]: pd.read_parquet(folder / f) for f in manifest.get("files", []) if f.endswith(".parquet")}
    settings = Settings.from_dict(manifest["settings"])
    return Report(input=manifest["input"], settings=settings, tables=tables, summary=summary,
                  notes=list(manifest.get("notes", [])))
