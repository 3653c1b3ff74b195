"""The GPU study's traces (tests/data/runs/, recorded by runners/gpu_study.sh on an H200) agree with
the engine's own counters in their manifests: every expert fetch is one range and one copy in the trace.

No torch needed: plain sqlite3 on the committed exports.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

RUNS = Path(__file__).parent / "data" / "runs"
NAMES = ["deepseek_disk_stream", "deepseek_disk_event", "deepseek_host_stream", "deepseek_host_event"]
PUSH_POP = 59  # NVTX eventType of a push/pop range (METRICS.md)
RANGES = """SELECT COALESCE(n.text, s.value) AS name, n.int64Value, n.uint64Value, n.int32Value, n.uint32Value
            FROM NVTX_EVENTS n LEFT JOIN StringIds s ON n.textId = s.id WHERE n.eventType = ?"""


def load(name: str) -> tuple[dict, list[tuple], list[tuple]]:
    manifest = json.loads((RUNS / f"{name}.manifest.json").read_text())
    con = sqlite3.connect(f"file:{RUNS / name}.sqlite?mode=ro", uri=True)
    try:
        ranges = con.execute(RANGES, (PUSH_POP,)).fetchall()
        big_h2d = con.execute(
            "SELECT m.bytes, k.label FROM CUPTI_ACTIVITY_KIND_MEMCPY m JOIN ENUM_CUDA_MEM_KIND k ON m.srcKind = k.id "
            "JOIN ENUM_CUDA_MEMCPY_OPER o ON m.copyKind = o.id "
            "WHERE o.label = 'Host-to-Device' AND m.bytes >= 1000000").fetchall()
    finally:
        con.close()
    return manifest, ranges, big_h2d


@pytest.mark.parametrize("name", NAMES)
def test_trace_matches_the_engine_counters(name: str) -> None:
    m, ranges, big_h2d = load(name)
    stats, expert = m["engine"]["stats"], m["engine"]["expert_bytes"]
    assert expert == 17_301_504 and m["preset"] == "deepseek"
    assert stats["hits"] + stats["misses"] == stats["requested"]

    def payloads(range_name: str) -> list[int]:
        return [next(v for v in row[1:] if v is not None) for row in ranges if row[0] == range_name]

    h2d = payloads("cpu_to_gpu")
    assert len(h2d) == stats["h2d_copies"] == stats["gpu_cache"]["inserts"] and set(h2d) == {expert}
    assert len(big_h2d) == stats["h2d_copies"] and {b for b, _ in big_h2d} == {expert}
    assert {kind for _, kind in big_h2d} == {"Pinned"}  # cudaHostRegister-ed slabs copy as pinned memory
    disk = payloads("disk_to_cpu")
    assert len(disk) == stats["disk_reads"] and set(disk) <= {expert}
    assert (len(disk) > 0) == (m["options"]["mode"] == "disk")
    names = {row[0] for row in ranges}
    assert {"step", "prefill", "moe_layer", "routing", "expert_dispatch", "expert_wait_barrier", "gpu_to_cpu",
            "expert_compute", "fetch_loop"} <= names
    assert ("cuda_stream_sync" in names) == (m["options"]["sync"] == "stream")
    assert sum(row[0] == "step" for row in ranges) == m["options"]["decode_steps"]
    assert sum(row[0] == "moe_layer" for row in ranges) == 4 * (1 + m["options"]["decode_steps"])


def test_disk_runs_read_with_o_direct() -> None:
    for name in NAMES[:2]:
        assert json.loads((RUNS / f"{name}.manifest.json").read_text())["disk_read"]["method"] == "o_direct"
