"""``timeline.perfetto.json``: every table row is one slice on its track, tracks
nest, times are the trace's in µs with ns precision; Perfetto's own trace
processor loads it where its binary can be had (it is downloaded on first use,
so offline the test skips and the structural checks stand)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nsysparse.render.perfetto import BREAKDOWN_PID, DISK_PID, GPU_PID, LANE_TID, nest_lanes, write_perfetto, write_perfetto_into
from tests.share_fixture import shared_report


@pytest.fixture(scope="module")
def report():
    return shared_report()


@pytest.fixture(scope="module")
def written(report, tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("perfetto")
    assert write_perfetto_into(report, folder) == ["timeline.perfetto.json"]
    path = folder / "timeline.perfetto.json"
    return path, json.loads(path.read_text())


def _counts(doc: dict) -> Counter:
    return Counter((e["pid"], e["tid"] % LANE_TID, e["cat"]) for e in doc["traceEvents"] if e["ph"] == "X")


def test_header_and_provenance(written, report):
    _, doc = written
    assert doc["displayTimeUnit"] == "ns"
    assert doc["otherData"]["input_sha256"] == report.input["sha256"]
    assert doc["otherData"]["nsys_version"] == "2025.3.2.0"


def test_every_row_is_one_slice_on_its_track(written, report):
    _, doc = written
    c = _counts(doc)
    t = report.tables
    for (pid, tid), n in t["nvtx_ranges"].groupby(["pid", "tid"]).size().items():
        assert c[(pid, tid, "nvtx")] == n
    for (pid, tid), n in t["sync_calls"].groupby(["pid", "tid"]).size().items():
        assert c[(pid, tid, "sync")] == n
    for (dev, stream), n in t["kernels"].groupby(["device", "stream"]).size().items():
        assert c[(GPU_PID + dev, stream, "kernel")] == n
    gpu_copies = t["copies"][t["copies"]["device"].notna()]
    for (dev, stream), n in gpu_copies.groupby(["device", "stream"]).size().items():
        assert c[(GPU_PID + int(dev), int(stream), "copy")] == n
    disk = t["copies"][t["copies"]["device"].isna()]
    assert len(disk) == 24 and sum(v for k, v in c.items() if k[0] == DISK_PID) == len(disk)
    b = t["breakdown"]
    assert sum(v for k, v in c.items() if k[0] == BREAKDOWN_PID) == len(t["steps"]) + int((b["ns"] > 0).sum())
    total_rows = len(t["nvtx_ranges"]) + len(t["sync_calls"]) + len(t["kernels"]) + len(t["copies"])
    assert sum(c.values()) == total_rows + len(t["steps"]) + int((b["ns"] > 0).sum())


def test_times_are_trace_us_with_ns_precision(written, report):
    _, doc = written
    k = report.tables["kernels"].sort_values("start_ns")
    ev = sorted((e for e in doc["traceEvents"] if e.get("cat") == "kernel"), key=lambda e: e["ts"])
    assert [round(e["ts"] * 1000) for e in ev] == k["start_ns"].tolist()
    assert [round(e["dur"] * 1000) for e in ev] == (k["end_ns"] - k["start_ns"]).tolist()


def test_breakdown_slices_fill_each_step(written, report):
    _, doc = written
    for s in report.tables["steps"].itertuples():
        parts = [e for e in doc["traceEvents"] if e.get("cat") == "breakdown" and e["args"]["step"] == s.step and "ns" in e["args"]]
        assert sum(e["args"]["ns"] for e in parts) == s.dur_ns


def _nested(spans: list[tuple[int, int]]) -> bool:
    stack: list[int] = []
    for s, e in sorted(spans, key=lambda x: (x[0], -x[1])):
        while stack and stack[-1] <= s:
            stack.pop()
        if stack and e > stack[-1]:
            return False
        stack.append(e)
    return True


def test_every_track_nests_and_threads_are_named(written):
    _, doc = written
    tracks: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for e in doc["traceEvents"]:
        if e["ph"] == "X":
            s = round(e["ts"] * 1000)
            tracks.setdefault((e["pid"], e["tid"]), []).append((s, s + round(e["dur"] * 1000)))
    assert all(_nested(v) for v in tracks.values())
    named = {(e["pid"], e["tid"]) for e in doc["traceEvents"] if e["ph"] == "M" and e["name"] == "thread_name"}
    assert set(tracks) <= named
    names = {e["args"]["name"] for e in doc["traceEvents"] if e["ph"] == "M" and e["name"] == "process_name"}
    assert "GPU 0 NVIDIA H200" in names and "python3 (pid 1082)" in names


def test_nest_lanes_moves_only_partial_overlaps():
    # [0,10) holds [2,5); [8,12) partly overlaps [0,10) -> lane 1; [12,13) after all -> lane 0
    lanes = nest_lanes(np.array([0, 2, 8, 12]), np.array([10, 5, 12, 13]))
    assert lanes.tolist() == [0, 0, 1, 0]


def test_overlapping_start_end_ranges_go_to_an_overflow_lane(report, tmp_path):
    r = report.tables["nvtx_ranges"]
    row = r.iloc[[0]].copy()
    a = row.assign(range_id=10_000, start_ns=100, end_ns=300, dur_ns=200, kind="start_end", depth=0, parent=None)
    b = row.assign(range_id=10_001, start_ns=200, end_ns=400, dur_ns=200, kind="start_end", depth=0, parent=None)
    tables = {"nvtx_ranges": pd.concat([a, b], ignore_index=True)}
    small = type(report)(input=report.input, settings=report.settings, tables=tables, summary=report.summary,
                         notes=[])
    write_perfetto(small, tmp_path / "t.json")
    ev = [e for e in json.loads((tmp_path / "t.json").read_text())["traceEvents"] if e["ph"] == "X"]
    assert sorted(e["tid"] // LANE_TID for e in ev) == [0, 1]
    assert {e["tid"] % LANE_TID for e in ev} == {int(row["tid"].iloc[0])}


def test_trace_processor_counts_slices_per_track(written, report):
    tp_mod = pytest.importorskip("perfetto.trace_processor")
    path, doc = written
    import os

    binary = os.environ.get("PERFETTO_TP_BIN")  # a trace_processor_shell at hand, where the network is not
    try:
        config = tp_mod.TraceProcessorConfig(bin_path=binary) if binary else None
        tp = tp_mod.TraceProcessor(trace=str(path), config=config) if config else tp_mod.TraceProcessor(trace=str(path))
    except Exception as exc:  # the binary is fetched from the network on first use
        pytest.skip(f"Perfetto trace_processor binary unavailable offline (set PERFETTO_TP_BIN): {type(exc).__name__}")
    try:
        q = tp.query(
            "select t.tid as tid, p.pid as pid, count(*) as n from slice s "
            "join thread_track tt on s.track_id = tt.id join thread t using(utid) "
            "left join process p using(upid) group by t.tid, p.pid"
        ).as_pandas_dataframe()
    finally:
        tp.close()
    got = {(int(r.pid), int(r.tid)): int(r.n) for r in q.itertuples()}
    want = Counter((e["pid"], e["tid"]) for e in doc["traceEvents"] if e["ph"] == "X")
    assert got == dict(want)
