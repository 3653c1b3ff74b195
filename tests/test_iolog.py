"""Aligning an engine's JSONL log with the trace on the clock mark (METRICS.md, traps)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from nsysparse import NothingToAnalyse, open_trace
from nsysparse.iolog import align_io_log, clock_offset_ns, read_io_log

CLOCK = 1_234_567_890_123_457  # a monotonic_ns value some two weeks after boot


def test_log_aligned_on_the_mark_not_by_raw_value(builder, tmp_path):
    builder.mark("io_log_clock", 5_000, domain="moe", payload=CLOCK)
    builder.range("disk_to_cpu", 5_077, 5_377, domain="moe", payload=4096)
    builder.kernel(10, 20, launch=(1, 5))
    trace = open_trace(builder.write())
    log = tmp_path / "io.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in [
        {"event": "clock_mark", "name": "io_log_clock", "t_ns": CLOCK},
        {"name": "disk_to_cpu", "start_ns": CLOCK + 77, "end_ns": CLOCK + 377, "tid": 100, "payload": 4096},
    ]) + "\n")
    assert clock_offset_ns(trace) == 5_000 - CLOCK
    aligned = align_io_log(trace, read_io_log(log))
    row = aligned[aligned["name"] == "disk_to_cpu"].iloc[0]
    r = trace.nvtx_ranges[trace.nvtx_ranges["text"] == "disk_to_cpu"].iloc[0]
    assert (row["start_ns"], row["end_ns"]) == (r["start_ns"], r["end_ns"]) == (5_077, 5_377)
    assert aligned[aligned["event"] == "clock_mark"]["t_ns"].tolist() == [5_000]


def test_integer_payload_kept_exact_beyond_float64(builder):
    big = 2**53 + 1  # float64 would round it to 2**53
    builder.mark("io_log_clock", 7, payload=big)
    builder.kernel(10, 20, launch=(1, 5))
    trace = open_trace(builder.write())
    assert trace.marks["payload_int"].tolist() == [big]
    assert clock_offset_ns(trace) == 7 - big


def test_no_mark_is_a_clear_error(builder):
    builder.kernel(10, 20, launch=(1, 5))
    trace = open_trace(builder.write())
    with pytest.raises(NothingToAnalyse, match="io_log_clock"):
        clock_offset_ns(trace)


def test_integer_payload_exact_beside_marks_without_payload(builder):
    """A column with NULLs comes back from SQLite readers as float64: the exact
    integer must not depend on every other mark carrying a payload."""
    big = 2**53 + 1
    builder.mark("after_barrier", 3)  # no payload: a NULL in the integer column
    builder.mark("io_log_clock", 7, payload=big)
    builder.kernel(10, 20, launch=(1, 5))
    trace = open_trace(builder.write())
    assert trace.marks["payload_int"].tolist() == [pd.NA, big]
    assert clock_offset_ns(trace) == 7 - big
