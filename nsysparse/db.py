"""The results database: one SQLite file that collects every report's headline
figures, run after run, so a regression shows as a line in ``nsysparse history``.

Plain tables with primary and foreign keys, written through ``sqlite-utils``,
so ``sqlite-utils``, ``datasette`` and ``pandas.read_sql`` read it as it is:

- ``runs``: one row per (input sha256, settings JSON); ``run_id`` is the first
  16 hex digits of sha256 of ``"<input sha256>\\n<settings JSON>"``. Recording
  the same trace with the same settings again replaces the row and its child
  rows (``updated_utc`` moves, ``created_utc`` stays, so the history order does
  not change); other settings make another run.
- ``steps`` (``run_id``, ``step``, then the steps table's columns),
  ``breakdown`` (``run_id``, ``step``, ``category``, ``ns``, ``share``),
  ``links`` (``run_id``, ``link``, then the links table's columns) and
  ``targets`` (``run_id``, ``rank`` from 1, ``what``, ``ms_per_step``,
  ``share``, ``saving_ms``, ``lever``): keyed by ``run_id`` (a foreign key to
  ``runs``) and their natural key.

Everything recorded is read from the report's summary and tables; nothing is
computed here except ``history``'s change against the previous run.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from .errors import InputMissing, NotADatabase, UsageError

# the summary's scalar headline figures, copied into ``runs`` under the same names
HEADLINE = [
    "steps", "warmup", "step_ms_p50", "step_ms_p95", "step_ms_mean", "bubble_ratio", "gpu_idle_ratio",
    "gpu_busy_any_ratio", "sync_share", "overlap_h2d_compute", "io_floor_share",
]
# summary["breakdown"] categories; each becomes a ``<category>_ms`` column of ``runs``
# (mean ms per measured step). Fixed so every database has the same columns.
BREAKDOWN_CATEGORIES = [
    "gpu_compute", "launch", "os_call", "host_cpu", "copy_h2d_pinned", "copy_h2d_pageable", "copy_d2h",
    "copy_d2d", "copy_p2p", "memset", "disk_read", "copy_call", "sync_idle", "host_wait_other",
]
RUN_COLUMNS: dict[str, type] = {
    "run_id": str, "created_utc": str, "updated_utc": str, "input_path": str, "input_name": str,
    "input_size": int, "input_sha256": str, "nsys_version": str, "schema_version": str, "tool_version": str,
    "settings_json": str, "steps": int, "warmup": int,
    **{k: float for k in HEADLINE if k not in ("steps", "warmup")},
    **{f"{c}_ms": float for c in BREAKDOWN_CATEGORIES},
}
CHILD_KEYS = {"steps": ("run_id", "step"), "breakdown": ("run_id", "step", "category"),
              "links": ("run_id", "link"), "targets": ("run_id", "rank")}
CHILD_MIN_COLUMNS: dict[str, dict[str, type]] = {
    "steps": {"run_id": str, "step": int},
    "breakdown": {"run_id": str, "step": int, "category": str, "ns": int, "share": float},
    "links": {"run_id": str, "link": str},
    "targets": {"run_id": str, "rank": int, "what": str, "ms_per_step": float, "share": float,
                "saving_ms": float, "lever": str},
}


def run_id(input_sha256: str, settings: Mapping[str, Any]) -> str:
    """The id of a (trace, settings) pair: 16 hex digits, stable across machines."""
    key = f"{input_sha256}\n{_settings_json(settings)}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _settings_json(settings: Mapping[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)


def _open(db_path: str | Path, create: bool) -> Any:
    import sqlite_utils

    path = Path(db_path)
    if not create and not path.is_file():
        raise InputMissing(path, "no results database here; record one with `nsysparse report TRACE --db PATH`")
    if path.is_dir():
        raise InputMissing(path, "is a directory; --db takes a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite_utils.Database(path)
    db.execute("PRAGMA foreign_keys = ON")
    return db


def _ensure_schema(db: Any) -> None:
    if "runs" not in db.table_names():
        db["runs"].create(RUN_COLUMNS, pk="run_id")
    for name, cols in CHILD_MIN_COLUMNS.items():
        if name not in db.table_names():
            db[name].create(cols, pk=CHILD_KEYS[name], foreign_keys=[("run_id", "runs", "run_id")])
            db[name].create_index(["run_id"], if_not_exists=True)


def _plain(v: Any) -> Any:
    """A cell as SQLite takes it: numpy scalars to Python, NaN/NA to NULL, bools to 0/1."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(v) or math.isinf(v) else float(v)
    return v


def _frame(t: Any) -> pd.DataFrame | None:
    if t is None:
        return None
    if hasattr(t, "to_pandas") and not isinstance(t, pd.DataFrame):  # a pyarrow Table from `batch`
        t = t.to_pandas()
    return t


def _rows(df: pd.DataFrame | None, rid: str) -> list[dict[str, Any]]:
    if df is None or df.empty:
        return []
    return [{"run_id": rid, **{k: _plain(v) for k, v in r.items()}} for r in df.astype(object).to_dict(orient="records")]


def run_row(summary: Mapping[str, Any], now: str) -> dict[str, Any]:
    """The ``runs`` row of one report's summary (``created_utc``/``updated_utc`` = ``now``)."""
    inp = summary.get("input") or {}
    settings = summary.get("settings") or {}
    bd = summary.get("breakdown") or {}
    path = str(inp.get("path", ""))
    row: dict[str, Any] = {
        "run_id": run_id(str(inp.get("sha256", "")), settings),
        "created_utc": now, "updated_utc": now,
        "input_path": path, "input_name": Path(path).stem, "input_size": _plain(inp.get("size")),
        "input_sha256": inp.get("sha256"), "nsys_version": _str(inp.get("nsys_version")),
        "schema_version": _str(inp.get("schema_version")),
        "tool_version": summary.get("tool_version", __version__), "settings_json": _settings_json(settings),
    }
    row.update({k: _plain(summary.get(k)) for k in HEADLINE})
    row.update({f"{c}_ms": _plain(bd.get(c)) for c in BREAKDOWN_CATEGORIES})
    row.update({f"{c}_ms": _plain(v) for c, v in bd.items() if c not in BREAKDOWN_CATEGORIES})  # a new category: a new column
    return row


def _str(v: Any) -> str | None:
    return None if v is None else str(v)


def _record(db: Any, summary: Mapping[str, Any], tables: Mapping[str, Any] | None, now: str) -> str:
    row = run_row(summary, now)
    rid = row["run_id"]
    tables = tables or {}
    old = list(db.query("select created_utc from runs where run_id = ?", [rid]))
    if old:
        row["created_utc"] = old[0]["created_utc"]
    for child in CHILD_KEYS:  # a re-run replaces: its old child rows go first
        db.execute(f"delete from [{child}] where run_id = ?", [rid])
    db["runs"].upsert(row, pk="run_id", alter=True)
    targets = [
        {"run_id": rid, "rank": i, "what": t.get("what"), "ms_per_step": _plain(t.get("ms_per_step")),
         "share": _plain(t.get("share")), "saving_ms": _plain(t.get("saving_ms")), "lever": t.get("lever")}
        for i, t in enumerate(summary.get("targets") or [], 1)
    ]
    links = _frame(tables.get("links"))
    if links is None and summary.get("links"):
        links = pd.DataFrame(summary["links"])
    bd = _frame(tables.get("breakdown"))
    if bd is not None and not bd.empty:
        bd = bd[["step", "category", "ns", "share"]]
    children = {"steps": _rows(_frame(tables.get("steps")), rid), "breakdown": _rows(bd, rid),
                "links": _rows(links, rid), "targets": targets}
    for name, rows in children.items():
        if rows:
            db[name].insert_all(rows, pk=CHILD_KEYS[name], alter=True, batch_size=500)
    return rid


def record_summary(db_path: str | Path, summary: Mapping[str, Any], tables: Mapping[str, Any] | None = None) -> str:
    """Record one report given as its summary dict (``summary.json``) and, where
    at hand, its tables (DataFrames or the Arrow tables ``batch`` workers send
    back: ``steps``, ``breakdown``, ``links`` are used). Without tables only the
    ``runs``, ``links`` (from the summary) and ``targets`` rows are written.
    Returns the run id."""
    return record_many(db_path, [(summary, tables)])[0]


def record_many(db_path: str | Path, items: Iterable[tuple[Mapping[str, Any], Mapping[str, Any] | None]]) -> list[str]:
    """Record many (summary, tables) pairs through one connection, in the order
    given (each a microsecond after the one before, so the history keeps that
    order), in one transaction."""
    db = _open(db_path, create=True)
    try:
        _ensure_schema(db)
        base = datetime.now(timezone.utc)
        ids = []
        with db.atomic():  # all or nothing: a failed run leaves the database as it was
            for i, (summary, tables) in enumerate(items):
                now = (base + pd.Timedelta(microseconds=i)).isoformat(timespec="microseconds")
                ids.append(_record(db, summary, tables, now))
        return ids
    finally:
        db.close()


def record_run(db_path: str | Path, report: Any) -> str:
    """Upsert ``report`` (a :class:`nsysparse.report.Report`) into the database at
    ``db_path`` (created when missing) and return its run id (see the module doc)."""
    return record_summary(db_path, report.summary, report.tables)


def record_runs(db_path: str | Path, reports: Iterable[Any]) -> list[str]:
    """``record_run`` for each report, in one transaction; returns the run ids."""
    return record_many(db_path, [(r.summary, r.tables) for r in reports])


def metrics(db_path: str | Path) -> list[str]:
    """The numeric columns of ``runs`` that ``history`` can follow."""
    import sqlite3

    db = _open(db_path, create=False)
    try:
        try:
            names = db.table_names()
        except sqlite3.DatabaseError as exc:
            raise NotADatabase(db_path, f"is not a SQLite database ({exc})") from None
        if "runs" not in names:
            raise NotADatabase(db_path, "has no `runs` table: not an nsysparse results database")
        cols = db["runs"].columns_dict
        return [c for c, t in cols.items() if t in (int, float) and c != "input_size"]
    finally:
        db.close()


def history(db_path: str | Path, metric: str = "step_ms_p50") -> pd.DataFrame:
    """The runs in the order they were first recorded (``created_utc``, then
    insertion): ``run_id``, ``created_utc``, ``input_name``, ``input_path``,
    ``settings_json``, ``value`` (the metric), ``change`` (value minus the
    previous run's; null for the first or where either is null) and
    ``change_ratio`` (change / previous value; null where that is 0 or null).
    ``df.attrs["metric"]`` names the metric. An unknown metric is a UsageError
    that lists the known ones."""
    known = metrics(db_path)
    if metric not in known:
        raise UsageError(None, f"--metric {metric!r}: not a column of runs; one of {', '.join(known)}")
    import sqlite3

    con = sqlite3.connect(f"file:{Path(db_path)}?mode=ro", uri=True)
    try:
        df = pd.read_sql(
            f"select run_id, created_utc, input_name, input_path, settings_json, [{metric}] as value "
            "from runs order by created_utc, rowid", con)
    finally:
        con.close()
    value = pd.to_numeric(df["value"], errors="coerce").astype("float64")
    prev = value.shift(1)
    df["value"] = value
    df["change"] = value - prev
    df["change_ratio"] = (df["change"] / prev).where(prev.notna() & (prev != 0))
    df.attrs["metric"] = metric
    return df


def history_lines(df: pd.DataFrame) -> list[str]:
    """``history``'s frame as terminal lines: a header, then per run its time,
    trace name, run id, value and change (absolute, and relative in percent)."""
    metric = df.attrs.get("metric", "value")
    if df.empty:
        return [f"no runs recorded ({metric})"]
    head = ["recorded (UTC)", "trace", "run", metric, "change", "%"]
    rows = []
    for r in df.itertuples():
        rows.append([
            str(r.created_utc)[:19].replace("T", " "), str(r.input_name), str(r.run_id)[:8], _g(r.value),
            "" if pd.isna(r.change) else f"{r.change:+.4g}",
            "" if pd.isna(r.change_ratio) else f"{100 * r.change_ratio:+.1f}%",
        ])
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head))]
    fmt = lambda cells: "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return [fmt(head), *(fmt(r) for r in rows)]


def _g(v: float) -> str:
    return "-" if v is None or pd.isna(v) else f"{v:.4g}"
