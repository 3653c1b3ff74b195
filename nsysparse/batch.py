"""Many traces -> one Parquet dataset per table, partitioned by trace.

``--out`` holds, written atomically as a whole:

- ``<table>/trace=<name>/part-0.parquet`` for every table of the report
  (CONTRACT.md's output folder), one partition per analysed trace. ``<name>``
  is the trace's file stem; a repeated stem gets ``-2``, ``-3``, ... in the
  order the paths were given. Read a table back with
  ``pyarrow.dataset.dataset(out / "steps", partitioning="hive")`` (or
  ``pandas.read_parquet(out / "steps")``): the partition adds a ``trace``
  column. Column types are unified across traces (an all-null column in one
  trace takes the type it has in another) so that every dataset reads as one.
- ``summary.parquet``: one row per analysed trace, its ``summary.json``
  flattened (nested objects as ``a.b`` columns; lists such as ``links`` and
  ``targets`` as JSON strings), with ``trace`` and ``path`` first.
- ``failures.json``: every trace that failed, with ``path``, ``exit_code``
  (CONTRACT.md's) and ``message``.
- ``manifest.json``: tool version, settings, the traces and the files.

Traces are analysed in local processes (``--jobs``, default one per CPU), or
on a Dask cluster when ``--scheduler`` gives its address (the workers need
``nsysparse`` installed; traces are read on the workers and their tables sent
back, so the workers need the paths, not a shared output folder).
``--on-error skip`` records a failure and goes on; ``raise`` (the default)
stops at the first failure, writes nothing and exits with its code.
"""

from __future__ import annotations

import multiprocessing
import json
import os
import traceback
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__, errors
from .report import Settings

SUMMARY = "summary.parquet"
FAILURES = "failures.json"
MANIFEST = "manifest.json"
CONNECT_TIMEOUT = "20s"  # how long to keep trying a Dask scheduler

# An error's exit code -> its class, to raise a worker's failure again in the client.
_ERROR_OF_CODE = {cls.exit_code: cls for cls in (
    errors.UsageError, errors.InputMissing, errors.NotADatabase, errors.NotAnExport, errors.NothingToAnalyse)}


def partition_names(paths: Iterable[str | Path]) -> list[str]:
    """The partition name of each path: its stem, then ``-2``, ``-3``, ... for repeats."""
    used: set[str] = set()
    out = []
    for p in paths:
        stem = name = Path(p).stem
        n = 1
        while name in used:  # also steps over a file really named "<stem>-2"
            n += 1
            name = f"{stem}-{n}"
        used.add(name)
        out.append(name)
    return out


def analyse_one(path: str, settings: Settings) -> dict[str, Any]:
    """Analyse one trace (worker side): ``{"path", "tables" (Arrow), "summary",
    "meta"}``. A user's mistake raises its NsysParseError (picklable: it crosses
    the process boundary as itself); anything else is our bug and raises as is."""
    from .inputs import resolve_trace
    from .render.files import arrow_table, provenance
    from .report import build_report
    from .trace import open_trace

    with resolve_trace(Path(path)) as sqlite_path, open_trace(sqlite_path) as trace:
        report = build_report(trace, settings)
        tables = {name: arrow_table(df) for name, df in report.tables.items()}
        return {"path": path, "tables": tables, "summary": report.summary, "meta": provenance(report)}


def _outcome(fut: Any, path: str) -> dict[str, Any]:
    """A finished job as ``{"ok": True, ...result}`` or, for a user's mistake,
    ``{"ok": False, "path", "exit_code", "message"}``; our bug raises."""
    try:
        return {"ok": True, **fut.result()}
    except errors.NsysParseError as err:
        return {"ok": False, "path": path, "exit_code": err.exit_code, "message": str(err)}
    except Exception as err:  # our bug: kept whole (with the worker's traceback) for failures.json
        return {"ok": False, "path": path, "exit_code": 1, "error": err,
                "message": f"{path}: internal error: {type(err).__name__}: {err}",
                "traceback": "".join(traceback.format_exception(err))}


# ---------------------------------------------------------------- running


def _run_local(paths: list[str], settings: Settings, jobs: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(index, result)`` as each completes, from ``jobs`` local processes (in-process when 1)."""
    if jobs == 1:
        for i, p in enumerate(paths):
            done: Future[dict[str, Any]] = Future()
            try:
                done.set_result(analyse_one(p, settings))
            except Exception as err:
                done.set_exception(err)
            yield i, _outcome(done, p)
        return
    # forkserver, not fork: forking a process whose threads (the input hasher) may hold
    # a lock leaves the child waiting on it for ever
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("forkserver")) as pool:
        index: dict[Future[dict[str, Any]], int] = {pool.submit(analyse_one, p, settings): i for i, p in enumerate(paths)}
        pending = set(index)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield index[fut], _outcome(fut, paths[index[fut]])
        finally:  # stopped early (raise, Ctrl-C): drop what has not started
            for fut in pending:
                fut.cancel()


def _run_dask(paths: list[str], settings: Settings, address: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(index, result)`` as each completes, from the Dask cluster at ``address``."""
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise errors.UsageError(None, "--scheduler needs dask.distributed: pip install 'nsysparse[dask]'") from None
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        raise errors.UsageError(None, f"--scheduler {address}: cannot reach the Dask scheduler ({exc})") from None
    with client:
        futures = client.map(analyse_one, paths, settings=settings, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for fut in as_completed(futures):
                yield index[fut.key], _outcome(fut, paths[index[fut.key]])
        finally:  # stopped early: cancel what is left
            client.cancel([f for f in futures if not f.done()])


def run_batch(
    paths: list[str], settings: Settings, jobs: int | None = None, scheduler: str | None = None,
    on_error: str = "raise",
) -> tuple[list[tuple[str, dict[str, Any]]], list[dict[str, Any]]]:
    """Analyse every path. Returns ``(analysed, failures)``: ``analysed`` is
    ``(partition name, result)`` in the order the paths were given; ``failures``
    has ``path``, ``exit_code``, ``message`` per failed trace, in that order too.
    With ``on_error="raise"`` the first failure to come back is raised as its
    NsysParseError (one that is our bug as a RuntimeError with its traceback)."""
    names = partition_names(paths)
    jobs = jobs or min(len(paths), os.cpu_count() or 1)
    results = _run_dask(paths, settings, scheduler) if scheduler else _run_local(paths, settings, jobs)
    by_index: dict[int, dict[str, Any]] = {}
    try:
        for i, res in results:
            if not res["ok"] and on_error == "raise":
                if "error" in res:
                    raise res["error"]
                raise _ERROR_OF_CODE[res["exit_code"]](None, res["message"])
            by_index[i] = res
    finally:
        results.close()  # on an early stop, cancels the work not yet started
    analysed = [(names[i], by_index[i]) for i in range(len(paths)) if by_index[i]["ok"]]
    failures = [{k: by_index[i][k] for k in ("path", "exit_code", "message", "traceback") if k in by_index[i]}
                for i in range(len(paths)) if not by_index[i]["ok"]]
    return analysed, failures


# ---------------------------------------------------------------- writing


def flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects -> ``a.b`` keys; lists (and empty objects) -> JSON strings."""
    out: dict[str, Any] = {}
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{key}."))
        elif isinstance(v, (dict, list, tuple)):
            out[key] = json.dumps(v, default=_json_default, allow_nan=False)
        else:
            out[key] = v
    return out


def _json_default(v: Any) -> Any:
    from .report import jsonable

    return jsonable(v)


def _unified(tables: list[pa.Table]) -> pa.Schema:
    """One schema for a table across traces (null -> the other's type, int -> float, ...)."""
    return pa.unify_schemas([t.schema.remove_metadata() for t in tables], promote_options="permissive")


def _conform(table: pa.Table, schema: pa.Schema, meta: dict[bytes, bytes]) -> pa.Table:
    cols = [table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type)
            for f in schema]
    return pa.Table.from_arrays(cols, schema=schema.with_metadata(meta))


def write_batch(out: Path, analysed: list[tuple[str, dict[str, Any]]], failures: list[dict[str, Any]],
                paths: list[str], settings: Settings) -> list[str]:
    """Write the datasets, ``summary.parquet``, ``failures.json`` and the manifest
    into ``out`` atomically; returns the top-level entries created."""
    from .render.files import atomic_dir, write_json

    table_names = sorted({n for _, res in analysed for n in res["tables"]})
    with atomic_dir(out) as tmp:
        created = []
        for table in table_names:
            parts = [(name, res["tables"][table], res) for name, res in analysed if table in res["tables"]]
            schema = _unified([t for _, t, _ in parts])
            for name, t, res in parts:
                meta = {**(t.schema.metadata or {}),
                        **{f"nsysparse.{k}".encode(): str(v).encode() for k, v in res["meta"].items()}}
                folder = tmp / table / f"trace={quote(name, safe='')}"
                folder.mkdir(parents=True)
                pq.write_table(_conform(t, schema, meta), folder / "part-0.parquet")
            created.append(f"{table}/")
        rows = [{"trace": name, "path": res["path"], **flatten(res["summary"])} for name, res in analysed]
        summary = pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False) if rows else pa.table({"trace": pa.array([], pa.string()), "path": pa.array([], pa.string())})
        meta = {b"nsysparse.nsysparse_version": __version__.encode(),
                b"nsysparse.settings": json.dumps(settings.to_dict(), sort_keys=True).encode()}
        pq.write_table(summary.replace_schema_metadata({**(summary.schema.metadata or {}), **meta}), tmp / SUMMARY)
        header = {"tool": "nsysparse", "tool_version": __version__, "settings": settings.to_dict()}
        write_json({**header, "failures": failures}, tmp / FAILURES)
        created += [SUMMARY, FAILURES, MANIFEST]
        write_json({
            **header,
            "command": "batch",
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "traces": [{"trace": name, "path": res["path"], "nsys_version": res["summary"]["input"]["nsys_version"],
                        "schema_version": res["summary"]["input"]["schema_version"],
                        "sha256": res["summary"]["input"]["sha256"]} for name, res in analysed],
            "failed": [f["path"] for f in failures],
            "inputs": list(paths),
            "files": sorted(created),
        }, tmp / MANIFEST)
    return sorted(created)
