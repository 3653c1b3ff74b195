"""Join an engine's own JSONL I/O log with the trace.

The log runs on the engine's clock (e.g. ``time.monotonic_ns``), not the
trace's. At a known moment the engine emits an NVTX mark whose integer payload
is its clock's value then (the runner's mark is ``io_log_clock``); the offset
between the two clocks is the mark's trace time minus that payload. Aligning
on raw values instead would be off by the whole clock difference (METRICS.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .conventions import CLOCK_MARK, IO_RANGE, parse_clock_mark
from .errors import InputMissing, NotADatabase, NothingToAnalyse
from .trace import Trace


def read_io_log(path: str | Path) -> pd.DataFrame:
    """The JSONL log as a DataFrame (one row per line; the runner writes ``name``,
    ``start_ns``, ``end_ns``, ``tid``, ``payload``, and a ``clock_mark`` event)."""
    p = Path(path)
    if not p.is_file():
        raise InputMissing(p, "no such I/O log; give the JSONL file the engine wrote with --io-log")
    try:
        rows = [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise NotADatabase(p, f"is not JSON lines ({exc.msg} at line {exc.lineno})") from None
    return pd.DataFrame(rows)


def _clock_mark(trace: Trace, mark: str) -> tuple[int, int]:
    """(offset, pid of the process that emitted it) of the first clock mark (see clock_offset_ns)."""
    m = trace.marks
    text = m["name"].astype(str).str.split(":", n=1).str[-1] if len(m) else m["name"].astype(str)
    in_text = pd.array([parse_clock_mark(t, mark) for t in text], dtype="Int64")
    value = m["payload_int"].where(text == mark).astype("Int64").fillna(pd.Series(in_text, index=m.index))
    hit = value.dropna()
    if hit.empty:
        raise NothingToAnalyse(
            trace.path, f"has no NVTX mark {mark!r} with an integer payload; the engine must emit its clock as one"
        )
    first = hit.index[0]
    return int(m.at[first, "ts_ns"]) - int(hit.iloc[0]), int(m.at[first, "pid"])


def clock_offset_ns(trace: Trace, mark: str = CLOCK_MARK) -> int:
    """Nanoseconds to add to a log time to get trace time: the first mark whose text
    is ``mark`` (any domain), its timestamp minus its integer payload; or, from an
    annotation backend without payloads (``torch.cuda.nvtx``), the first whose text
    is ``mark=<int>`` (:func:`nsysparse.conventions.clock_mark_text`), minus that int."""
    return _clock_mark(trace, mark)[0]


def align_io_log(trace: Trace, log: pd.DataFrame, mark: str = CLOCK_MARK) -> pd.DataFrame:
    """``log`` with every ``*_ns`` time column (``start_ns``, ``end_ns``, ``t_ns``)
    moved onto the trace's clock, so its rows can be joined with the trace's ranges."""
    offset = clock_offset_ns(trace, mark)
    out = log.copy()
    for col in ("start_ns", "end_ns", "t_ns"):
        if col in out:
            out[col] = pd.array(out[col], dtype="Int64") + offset
    return out


def log_disk_reads(trace: Trace, log: pd.DataFrame, io_range: str = IO_RANGE, mark: str = CLOCK_MARK) -> pd.DataFrame:
    """The log's ``io_range`` lines with a byte payload, on the trace's clock, as
    :func:`nsysparse.links.disk_reads` gives them from NVTX payloads: ``start_ns``,
    ``end_ns``, ``dur_ns``, ``pid`` (the process that emitted the clock mark),
    ``tid``, ``bytes``. For traces whose annotations carry no payloads
    (``torch.cuda.nvtx``): the engine's byte counts are in its log only."""
    offset, pid = _clock_mark(trace, mark)
    if "name" in log and "payload" in log:
        rows = log[(log["name"] == io_range) & log["payload"].notna()]
    else:
        rows = log.iloc[0:0]
    start = rows["start_ns"].to_numpy(dtype=np.int64) + offset if len(rows) else np.zeros(0, np.int64)
    end = rows["end_ns"].to_numpy(dtype=np.int64) + offset if len(rows) else np.zeros(0, np.int64)
    return pd.DataFrame(
        {
            "start_ns": start,
            "end_ns": end,
            "dur_ns": end - start,
            "pid": np.full(len(rows), pid, dtype=np.int64),
            "tid": rows["tid"].to_numpy(dtype=np.int64) if len(rows) else np.zeros(0, np.int64),
            "bytes": rows["payload"].to_numpy(dtype=np.int64) if len(rows) else np.zeros(0, np.int64),
        }
    )
