"""The loader: ``open_trace`` and the normalised tables of :class:`Trace`.

Three kinds of test (STYLE.md, Tests):
- the ``edge`` fixture's corners, with values read from ``edge.truth.json``
  and by hand from the SQLite file (the queries are quoted where a value is);
- tiny exports built here with :mod:`tests.builders`, answers worked out by hand;
- errors and the read-only promise.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nsysparse import InputMissing, NotADatabase, NotAnExport, open_trace
from nsysparse.projection import nvtx_projection
from tests.builders import TraceBuilder, global_pid, global_tid
from tests.conftest import DATA

RANGE_COLUMNS = ["range_id", "name", "domain", "text", "start_ns", "end_ns", "dur_ns", "pid", "tid",
                 "end_tid", "kind", "depth", "parent", "payload", "closed"]
MARK_COLUMNS = ["name", "ts_ns", "pid", "tid", "payload"]
OP_COLUMNS = ["start_ns", "end_ns", "dur_ns", "device", "stream", "pid", "correlation_id", "api", "launch_tid"]
API_COLUMNS = ["name", "base_name", "start_ns", "end_ns", "pid", "tid", "correlation_id", "return_value"]

# edge: the parent (pid 451, main thread 451) and the child process (pid 486)
PARENT, CHILD = 451, 486
EDGE_CAPTURE_END = 10071449933  # SELECT duration FROM ANALYSIS_DETAILS


def _one(df: pd.DataFrame) -> pd.Series:
    assert len(df) == 1, df
    return df.iloc[0]


def _sha_mtime(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), os.stat(path).st_mtime_ns


# ---- edge: the corners of a real trace --------------------------------------------------


def test_edge_identity(edge) -> None:
    assert edge.nsys_version == "2025.3.2.0"
    assert edge.schema_version == "3.20.3"
    assert edge.capture_end_ns == EDGE_CAPTURE_END
    ident = edge.identity()
    assert ident["sha256"] == hashlib.sha256(Path(ident["path"]).read_bytes()).hexdigest()
    assert ident["size"] == Path(ident["path"]).stat().st_size


def test_edge_tables_have_contract_columns(edge) -> None:
    assert set(RANGE_COLUMNS) <= set(edge.nvtx_ranges.columns)
    assert set(MARK_COLUMNS) <= set(edge.marks.columns)
    assert set(API_COLUMNS) <= set(edge.api_calls.columns)
    for table, extra in [(edge.kernels, ["name", "short_name"]),
                         (edge.memcpy, ["bytes", "copy_kind", "src_kind", "dst_kind", "src_device", "dst_device"]),
                         (edge.memset, ["bytes"])]:
        assert set(OP_COLUMNS + extra) <= set(table.columns)
    r = edge.nvtx_ranges
    assert r["range_id"].tolist() == list(range(len(r)))
    assert (r["dur_ns"] == r["end_ns"] - r["start_ns"]).all()


def test_edge_nested_same_named_step(edge, truth) -> None:
    r = edge.nvtx_ranges
    steps = r[(r["text"] == "step") & (r["pid"] == PARENT)].sort_values("start_ns")
    assert len(steps) == truth("edge")["steps"] + 1  # 3 steps + the one nested in the first
    outer = _one(steps[steps["start_ns"] == 5189955077])
    inner = _one(steps[steps["start_ns"] == 5189961627])
    assert (outer["end_ns"], inner["end_ns"]) == (5207172496, 5199058181)
    assert outer["depth"] == 0 and pd.isna(outer["parent"])
    assert inner["depth"] == 1 and inner["parent"] == outer["range_id"]
    assert inner["name"] == outer["name"] == "moe:step"
    others = steps[~steps["start_ns"].isin([5189961627])]
    assert (others["depth"] == 0).all()
    # expert_wait_barrier nested in a same-named range, inside each step (depth 1 and 2)
    b = r[r["text"] == "expert_wait_barrier"].sort_values("start_ns")
    assert b["depth"].tolist() == [1, 2] * 3
    assert (b["parent"].iloc[1::2].to_numpy() == b["range_id"].iloc[0::2].to_numpy()).all()


def test_edge_never_closed(edge) -> None:
    r = edge.nvtx_ranges
    nc = _one(r[r["text"] == "never_closed"])
    # nsys 2025.3 wrote end = ANALYSIS_DETAILS.duration for the range left open
    assert nc["closed"] == False  # noqa: E712  (numpy bool)
    assert nc["end_ns"] == edge.capture_end_ns == EDGE_CAPTURE_END
    assert (nc["start_ns"], nc["dur_ns"]) == (9421843614, 649606319)
    assert r.loc[r["text"] != "never_closed", "closed"].all()


def test_edge_handoff_ends_on_another_thread(edge) -> None:
    r = edge.nvtx_ranges
    h = _one(r[r["text"] == "handoff"])
    assert h["kind"] == "start_end"
    # globalTid 281482543235523 -> tid 451; endGlobalTid 281482543235562 -> tid 490
    assert (h["pid"], h["tid"]) == (PARENT, 451)
    assert not pd.isna(h["end_tid"]) and h["end_tid"] == 490 and h["end_tid"] != h["tid"]
    assert (h["start_ns"], h["end_ns"]) == (5216003755, 5226691196)
    assert h["closed"]
    # every other range ended on its own thread
    assert r.loc[r["text"] != "handoff", "end_tid"].isna().all()
    assert (r.loc[r["text"] != "handoff", "kind"] == "push_pop").all()


def test_edge_marks(edge, truth) -> None:
    m = edge.marks
    assert len(m) == truth("edge")["marks"] == 3
    assert (m["name"] == "moe:after_barrier").all()
    assert m["ts_ns"].tolist() == [5207171155, 5211584017, 5215987774]
    assert (m["pid"] == PARENT).all() and (m["tid"] == 451).all()
    assert m["payload"].isna().all()
    assert "after_barrier" not in set(edge.nvtx_ranges["text"])  # marks are not ranges


def test_edge_cccl_domain(edge) -> None:
    r = edge.nvtx_ranges
    cccl = r[r["domain"] == "CCCL"].sort_values("start_ns")
    assert cccl["name"].tolist() == ["CCCL:cub::DeviceRadixSort", "CCCL:cub::DeviceScan::InclusiveScan"]
    assert cccl["text"].tolist() == ["cub::DeviceRadixSort", "cub::DeviceScan::InclusiveScan"]
    # domain-creation rows (eventType 75) are not ranges
    assert not r["text"].isin(["moe", "CCCL"]).any()
    assert set(r["domain"]) == {"moe", "CCCL"}


def test_edge_payloads(edge) -> None:
    r = edge.nvtx_ranges
    assert (r.loc[r["text"] == "sync_copies", "payload"] == 16777216.0).all()
    assert (r.loc[r["text"] == "two_stream_h2d", "payload"] == 67108864.0).all()
    assert r.loc[r["text"] == "step", "payload"].isna().all()
    assert r["payload"].dtype == np.float64


def test_edge_child_process(edge, truth) -> None:
    r = edge.nvtx_ranges
    child = r[r["pid"] == CHILD]
    assert len(child) == truth("edge_child")["child_steps"] == 4
    assert (child["name"] == "moe:child_step").all() and (child["tid"] == CHILD).all()
    # correlation ids collide between the two processes ...
    api = edge.api_calls
    par = set(api.loc[api["pid"] == PARENT, "correlation_id"])
    chi = set(api.loc[api["pid"] == CHILD, "correlation_id"])
    assert {147, 184, 1553} <= par & chi
    # ... yet each GPU op names the call of its own process (rows read by hand):
    k, c, s = edge.kernels, edge.memcpy, edge.memset
    # corr 184: the parent's is cuGetProcAddress_v2, the child's launched this kernel
    row = _one(k[(k["pid"] == CHILD) & (k["correlation_id"] == 184)])
    assert (row["start_ns"], row["api"], row["launch_tid"]) == (8619336740, "cudaLaunchKernel_v7000", CHILD)
    # corr 1553: a memset in the parent (cudaMemsetAsync), a D2H copy in the child (cudaMemcpyAsync)
    row = _one(s[(s["pid"] == PARENT) & (s["correlation_id"] == 1553)])
    assert (row["start_ns"], row["api"], row["launch_tid"]) == (5268546709, "cudaMemsetAsync_v3020", PARENT)
    assert (row["api_start_ns"], row["api_end_ns"]) == (5268520913, 5268524397)
    row = _one(c[(c["pid"] == CHILD) & (c["correlation_id"] == 1553)])
    assert (row["start_ns"], row["api"], row["launch_tid"]) == (8766026547, "cudaMemcpyAsync_v3020", CHILD)
    assert (row["api_start_ns"], row["api_end_ns"]) == (8766006527, 8766025808)
    # and every op of both processes, checked against an independent join in SQL
    con = sqlite3.connect(f"file:{edge.path}?mode=ro", uri=True)
    for table, df in [("CUPTI_ACTIVITY_KIND_KERNEL", k), ("CUPTI_ACTIVITY_KIND_MEMCPY", c),
                      ("CUPTI_ACTIVITY_KIND_MEMSET", s)]:
        want = con.execute(
            f"SELECT o.start, o.correlationId, s.value, r.globalTid & 16777215 FROM {table} o "
            "JOIN CUPTI_ACTIVITY_KIND_RUNTIME r ON r.correlationId = o.correlationId "
            "AND (r.globalTid >> 24) = (o.globalPid >> 24) JOIN StringIds s ON s.id = r.nameId "
            "ORDER BY o.start").fetchall()
        got = df.sort_values("start_ns")[["start_ns", "correlation_id", "api", "launch_tid"]]
        assert [tuple(x) for x in got.itertuples(index=False)] == [tuple(x) for x in want]
    con.close()


def test_edge_blocking_memcpy_and_memset(edge, truth) -> None:
    t = truth("edge")
    c = edge.memcpy
    sync = c[c["api"] == "cudaMemcpy_v3020"]
    assert len(sync) == t["sync_memcpy"] == 3
    assert (sync["bytes"] == t["sync_bytes_each"]).all()
    assert (sync["copy_kind"] == "Host-to-Device").all()
    assert (sync["src_kind"] == "Pageable").all() and (sync["dst_kind"] == "Device").all()
    assert sync["start_ns"].tolist() == [5199668008, 5207353716, 5211738733]
    s = edge.memset
    assert len(s) == 9
    blocking = s[s["api"] == "cudaMemset_v3020"]
    assert len(blocking) == t["sync_memset"] == 3
    assert (blocking["bytes"] == t["sync_bytes_each"]).all()
    assert blocking["start_ns"].tolist() == [5201539986, 5209221919, 5213636344]
    assert (blocking["dur_ns"] == blocking["end_ns"] - blocking["start_ns"]).all()


def test_edge_pinned_vs_pageable(edge, truth) -> None:
    t = truth("edge")["two_stream_h2d"]
    c = edge.memcpy
    pinned = c[(c["copy_kind"] == "Host-to-Device") & (c["src_kind"] == "Pinned")]
    # srcKind 1 = Pinned in this export's ENUM_CUDA_MEM_KIND (0 = Pageable)
    assert len(pinned) == 3 * t["copies_per_step"]
    assert (pinned["bytes"] == t["bytes_each"]).all()
    assert sorted(set(pinned["stream"])) == [13, 17]  # two streams
    pageable = c[(c["copy_kind"] == "Host-to-Device") & (c["src_kind"] == "Pageable")]
    assert len(pageable) == 3 and (pageable["bytes"] == 16777216).all()


def test_edge_devices_of_copies(edge) -> None:
    c = edge.memcpy
    h2d = c[c["copy_kind"] == "Host-to-Device"]
    assert h2d["src_device"].isna().all() and (h2d["dst_device"] == h2d["device"]).all()
    d2h = c[c["copy_kind"] == "Device-to-Host"]
    assert len(d2h) == 4 and (d2h["pid"] == CHILD).all()
    assert (d2h["src_device"] == d2h["device"]).all() and d2h["dst_device"].isna().all()
    d2d = _one(c[c["copy_kind"] == "Device-to-Device"])
    assert (d2d["src_device"], d2d["dst_device"], d2d["bytes"]) == (0, 0, 4194304)


def test_p2p_devices_from_src_dst_ids(fixture_path) -> None:
    with open_trace(fixture_path("p2p")) as t:
        c = t.memcpy
        p2p = c[c["copy_kind"] == "Peer-to-Peer"]
        assert len(p2p) == 10
        # first two rows by hand: deviceId 0, srcDeviceId 0, dstDeviceId 1; then 1 -> 0
        first = _one(p2p[p2p["start_ns"] == 6725256896])
        assert (first["device"], first["src_device"], first["dst_device"]) == (0, 0, 1)
        second = _one(p2p[p2p["start_ns"] == 6726894223])
        assert (second["device"], second["src_device"], second["dst_device"]) == (1, 1, 0)
        pairs = p2p.groupby(["src_device", "dst_device"]).size().to_dict()
        assert pairs == {(0, 1): 5, (1, 0): 5}
        assert (p2p["src_kind"] == "Device").all() and (p2p["dst_kind"] == "Device").all()
        assert sorted(t.gpus["device"]) == [0, 1]


def test_edge_api_base_name(edge) -> None:
    api = edge.api_calls
    pairs = dict(zip(api["name"].astype(str), api["base_name"].astype(str)))
    assert pairs["cudaDeviceSynchronize_v3020"] == "cudaDeviceSynchronize"
    assert pairs["cudaEventRecordWithFlags_v11010"] == "cudaEventRecordWithFlags"
    assert pairs["cuGetProcAddress_v2"] == "cuGetProcAddress"
    assert pairs["cuInit"] == "cuInit"
    assert pairs["cudaLaunchKernelExC_v11060"] == "cudaLaunchKernelExC"
    assert (api["dur_ns"] == api["end_ns"] - api["start_ns"]).all()
    assert set(api["pid"]) == {PARENT, CHILD}


def test_edge_pid_tid_split(edge) -> None:
    # globalTid 281482543235523 = 1<<48 | 451<<24 | 451
    assert global_tid(451, 451) == 281482543235523
    assert set(zip(edge.nvtx_ranges["pid"], edge.nvtx_ranges["tid"])) == {(451, 451), (486, 486)}
    assert set(edge.kernels["pid"]) == {PARENT, CHILD}
    th = edge.threads
    assert _one(th[(th["pid"] == PARENT) & (th["tid"] == 451)])["name"] == "python3"
    g = _one(edge.gpus)
    assert (g["device"], g["name"], g["compute_major"]) == (0, "NVIDIA H200", 9)


# ---- tiny built traces -----------------------------------------------------------------


def _launch(b: TraceBuilder, at: int, **kw) -> int:
    """A kernel launched at ``at`` (call 10 ns long), run 100 ns later for 50 ns."""
    return b.kernel(at + 100, at + 150, launch=(at, at + 10), **kw)


def test_no_nvtx_table(builder: TraceBuilder) -> None:
    _launch(builder, 1_000)
    with open_trace(builder.write()) as t:
        assert not t.has("NVTX_EVENTS")
        r = t.nvtx_ranges
        assert r.empty and set(RANGE_COLUMNS) <= set(r.columns)
        assert r["start_ns"].dtype == np.int64 and r["payload"].dtype == np.float64
        assert t.marks.empty and set(MARK_COLUMNS) <= set(t.marks.columns)
        assert len(t.kernels) == 1
        p = nvtx_projection(t)
        assert p.empty


def test_no_kernel_table(builder: TraceBuilder) -> None:
    builder.range("step", 0, 1_000)
    builder.memcpy(300, 400, bytes=64, launch=(100, 110))
    with open_trace(builder.write()) as t:
        assert not t.has("CUPTI_ACTIVITY_KIND_KERNEL")
        k = t.kernels
        assert k.empty and set(OP_COLUMNS + ["name", "short_name"]) <= set(k.columns)
        assert t.graph_runs.empty and t.memset.empty
        p = _one(nvtx_projection(t))
        assert (p["num_gpu_ops"], p["kernels"], p["memcpys"], p["bytes"]) == (1, 0, 1, 64)


def test_only_a_kernel_table(builder: TraceBuilder) -> None:
    """No runtime table: the kernel has no launching call (api and launch_tid null)."""
    builder.kernel(100, 200, corr=5, name="k")
    with open_trace(builder.write()) as t:
        assert t.api_calls.empty and set(API_COLUMNS) <= set(t.api_calls.columns)
        row = _one(t.kernels)
        assert pd.isna(row["api"]) and pd.isna(row["launch_tid"])
        assert (row["name"], row["correlation_id"], row["dur_ns"]) == ("k", 5, 100)


def test_range_with_null_end(builder: TraceBuilder) -> None:
    builder.duration = 50_000
    builder.range("open", 1_000, None)
    builder.range("shut", 2_000, 3_000)
    _launch(builder, 5_000)
    with open_trace(builder.write()) as t:
        assert t.capture_end_ns == 50_000  # ANALYSIS_DETAILS.duration
        r = t.nvtx_ranges.set_index("text")
        assert r.loc["open", "closed"] == False  # noqa: E712
        assert (r.loc["open", "end_ns"], r.loc["open", "dur_ns"]) == (50_000, 49_000)
        assert r.loc["shut", "closed"] == True  # noqa: E712
        # the open range encloses the later one on the same thread
        assert (r.loc["shut", "depth"], r.loc["shut", "parent"]) == (1, r.loc["open", "range_id"])
        # it still projects: the kernel launched at 5000 is inside [1000, 50000)
        p = _one(nvtx_projection(t))
        assert (p["name"], p["proj_start_ns"], p["proj_dur_ns"]) == (":open", 5_100, 50)


def test_capture_end_without_analysis_details(make_builder) -> None:
    """No ANALYSIS_DETAILS: the capture ends at the last timestamp seen."""
    b = make_builder(analysis=False)
    b.range("open", 1_000, None)
    _launch(b, 2_000)  # kernel ends at 2150
    b.range("late", 3_000, 4_000)
    with open_trace(b.write()) as t:
        assert t.capture_end_ns == 4_000
        r = t.nvtx_ranges.set_index("text")
        assert r.loc["open", "end_ns"] == 4_000 and not r.loc["open", "closed"]


def test_pinned_pageable_follow_enum_table_not_number(make_builder) -> None:
    """The ENUM table maps 0 -> Pinned, 1 -> Pageable here (the reverse of the
    fixtures'): the label must follow the table."""
    permuted = {0: "Pinned", 1: "Pageable", 2: "Device", 3: "Array", 4: "Managed",
                5: "Device Static", 6: "Managed Static", 7: "Unknown"}
    copy_oper = {0: "Unknown", 1: "Device-to-Host", 2: "Host-to-Device", 8: "Device-to-Device",
                 10: "Peer-to-Peer"}
    b = make_builder(mem_kind=permuted, memcpy_oper=copy_oper)
    b.memcpy(100, 200, bytes=10, copy_kind=2, src_kind=0, dst_kind=2, launch=(10, 20))  # raw ids
    b.memcpy(300, 400, bytes=20, copy_kind=2, src_kind=1, dst_kind=2, launch=(30, 40))
    b.memcpy(500, 600, bytes=30, copy_kind=1, src_kind=2, dst_kind=0, launch=(50, 60))
    with open_trace(b.write()) as t:
        c = t.memcpy.set_index("bytes")
        assert (c.loc[10, "copy_kind"], c.loc[10, "src_kind"], c.loc[10, "dst_kind"]) == (
            "Host-to-Device", "Pinned", "Device")
        assert c.loc[20, "src_kind"] == "Pageable"
        assert (c.loc[30, "copy_kind"], c.loc[30, "src_kind"], c.loc[30, "dst_kind"]) == (
            "Device-to-Host", "Device", "Pinned")
        # devices follow the decoded copy kind: D2H has the GPU on the source side
        assert pd.isna(c.loc[10, "src_device"]) and c.loc[10, "dst_device"] == 0
        assert c.loc[30, "src_device"] == 0 and pd.isna(c.loc[30, "dst_device"])


def test_default_enum_table_decodes_fixture_ids(builder: TraceBuilder) -> None:
    builder.memcpy(100, 200, bytes=10, src_kind=0, dst_kind=2, launch=(10, 20))
    builder.memcpy(300, 400, bytes=20, src_kind=1, dst_kind=2, launch=(30, 40))
    with open_trace(builder.write()) as t:
        assert t.memcpy.set_index("bytes")["src_kind"].to_dict() == {10: "Pageable", 20: "Pinned"}


def test_text_via_textid_and_inline(builder: TraceBuilder) -> None:
    builder.range("registered", 0, 100)                 # textId -> StringIds
    builder.range("inline", 200, 300, inline=True)      # text column
    builder.range("regdom", 400, 500, domain="d")
    builder.range("inldom", 600, 700, domain="d", inline=True)
    builder.mark("m_reg", 150)
    builder.mark("m_inl", 160, inline=True)
    _launch(builder, 1_000)
    path = builder.write()
    con = sqlite3.connect(path)
    assert con.execute("SELECT COUNT(*) FROM NVTX_EVENTS WHERE text IS NULL AND textId IS NOT NULL").fetchone()[0] == 3
    con.close()
    with open_trace(path) as t:
        assert t.nvtx_ranges["name"].tolist() == [":registered", ":inline", "d:regdom", "d:inldom"]
        assert t.nvtx_ranges["domain"].tolist() == ["", "", "d", "d"]
        assert t.marks["name"].tolist() == [":m_reg", ":m_inl"]


def test_domains_are_keyed_by_domain_id_and_pid(builder: TraceBuilder) -> None:
    # both processes call their first domain 1, with different names
    builder.range("work", 0, 100, pid=100, domain="alpha")
    builder.range("work", 50, 150, pid=200, domain="beta")
    builder.range("free", 160, 170, pid=200)  # default domain
    builder.mark("tick", 60, pid=200, domain="beta")
    _launch(builder, 1_000)
    path = builder.write()
    con = sqlite3.connect(path)
    assert sorted(con.execute("SELECT domainId, globalTid >> 24 & 16777215, text FROM NVTX_EVENTS "
                              "WHERE eventType = 75").fetchall()) == [(1, 100, "alpha"), (1, 200, "beta")]
    con.close()
    with open_trace(path) as t:
        r = t.nvtx_ranges
        assert list(zip(r["pid"], r["name"], r["domain"])) == [
            (100, "alpha:work", "alpha"), (200, "beta:work", "beta"), (200, ":free", "")]
        assert _one(t.marks)["name"] == "beta:tick"


def test_start_end_range_ending_on_another_thread(builder: TraceBuilder) -> None:
    builder.range("handoff", 100, 900, kind="start_end", tid=101, end_tid=102, domain="moe")
    builder.range("same", 200, 300, kind="start_end", tid=101)             # endGlobalTid NULL
    builder.range("same2", 400, 500, kind="start_end", tid=101, end_tid=101)  # endGlobalTid = own
    _launch(builder, 1_000)
    with open_trace(builder.write()) as t:
        r = t.nvtx_ranges.set_index("text")
        h = r.loc["handoff"]
        assert (h["kind"], h["pid"], h["tid"], h["end_tid"]) == ("start_end", 100, 101, 102)
        assert (h["start_ns"], h["end_ns"], h["dur_ns"], h["closed"]) == (100, 900, 800, True)
        assert pd.isna(r.loc["same", "end_tid"]) and pd.isna(r.loc["same2", "end_tid"])
        assert (r["kind"] == "start_end").all()


@pytest.mark.parametrize("payloads, mark", [
    ((3145728, 0.25, None), 123456789),
    ((0.5, 0.5, None), 1.25),  # doubles only: no integer value to parse
])
def test_payloads(builder: TraceBuilder, payloads: tuple, mark: int | float) -> None:
    for i, value in enumerate(payloads):
        builder.range(f"r{i}", 200 * i, 200 * i + 100, payload=value)
    builder.mark("clock", 50, payload=mark)
    _launch(builder, 1_000)
    with open_trace(builder.write()) as t:
        want = [np.nan if v is None else float(v) for v in payloads]
        np.testing.assert_array_equal(t.nvtx_ranges["payload"].to_numpy(), want)
        m = _one(t.marks)
        assert m["payload"] == float(mark)
        assert (m["payload_int"] == mark) if isinstance(mark, int) else pd.isna(m["payload_int"])


def test_payloads_and_texts_of_many_rows(builder: TraceBuilder) -> None:
    """Each distinct payload and text is parsed once and shared by its rows: the
    values each row gets, worked out by hand (repeats, an int past 2**53 exact, a
    value past int64, an integer column with a non-integer, an int beside a double,
    a textId StringIds lacks, a domain id no row names)."""
    gt = global_tid(100, 100)
    raw = [  # (start, textId or inline text, domainId, int64Value, uint64Value, doubleValue)
        (0, "step", 0, 5, None, None),
        (10, "step", 0, 5, None, None),
        (20, "step", 0, 2**62 + 1, None, None),
        (30, "step", 0, None, str(2**64 - 1), None),  # past int64: SQLite keeps a REAL, read as its text
        (40, "step", 0, "1.5", None, None),  # an integer column holding a float's text
        (50, "step", 0, "abc", None, None),
        (60, "step", 0, 7, None, 0.25),  # the integer column comes first
        (70, "step", 0, None, None, 0.25),
        (80, 999, 0, None, None, None),  # a textId StringIds lacks: ""
        (90, "inl", 3, None, None, None),  # domain 3 was never named: ""
        (95, "step", 0, 5, None, None),
    ]
    for start, text, dom, i64, u64, dbl in raw:
        row = {"start": start, "end": start + 5, "eventType": 59, "globalTid": gt, "domainId": dom,
               "int64Value": i64, "uint64Value": u64, "doubleValue": dbl}
        if isinstance(text, int):
            row["textId"] = text
        elif text == "inl":
            row["text"] = text
        else:
            row["textId"] = builder.string(text)
        builder.rows("NVTX_EVENTS", [row])
    for ts, i64, u64 in [(1, 2**62 + 1, None), (2, 2**62 + 1, None), (3, "abc", None), (4, None, str(2**64 - 1)),
                         (5, -3, None), (6, 2**62 + 1, None)]:
        builder.rows("NVTX_EVENTS", [{"start": ts, "eventType": 34, "globalTid": gt, "domainId": 0,
                                      "textId": builder.string("tick"), "int64Value": i64, "uint64Value": u64}])
    _launch(builder, 1_000)
    with open_trace(builder.write()) as t:
        r = t.nvtx_ranges
        assert r["text"].tolist() == ["step"] * 8 + ["", "inl", "step"]
        assert r["name"].tolist() == [":step"] * 8 + [":", ":inl", ":step"]
        assert r["domain"].tolist() == [""] * 11
        assert r["name"].iloc[0] is r["name"].iloc[10]  # one object per distinct name
        # past int64 the value is a REAL, read as its text: 15 or 17 digits by SQLite's version
        past = r["payload"].iloc[3]
        assert past == pytest.approx(2.0**64, rel=1e-14)
        want = [5.0, 5.0, float(2**62 + 1), past, 1.5, np.nan, 7.0, 0.25, np.nan, np.nan, 5.0]
        np.testing.assert_array_equal(r["payload"].to_numpy(), np.array(want))
        assert r["payload"].dtype == np.float64
        m = t.marks
        assert m["payload_int"].tolist() == [2**62 + 1, 2**62 + 1, pd.NA, pd.NA, -3, 2**62 + 1]
        assert str(m["payload_int"].dtype) == "Int64"
        np.testing.assert_array_equal(m["payload"].to_numpy(), [2.0**62, 2.0**62, np.nan, past, -3.0, 2.0**62])


def test_nesting_per_thread(builder: TraceBuilder) -> None:
    """depth/parent are per thread: a range on another thread at the same time is
    not nested; siblings share a parent."""
    builder.range("outer", 0, 1_000, tid=100)
    builder.range("a", 100, 200, tid=100)
    builder.range("b", 300, 400, tid=100)
    builder.range("a_in", 120, 180, tid=100)
    builder.range("other", 50, 900, tid=101)
    _launch(builder, 2_000)
    with open_trace(builder.write()) as t:
        r = t.nvtx_ranges.set_index("text")
        rid = r["range_id"]
        assert r["depth"].to_dict() == {"outer": 0, "other": 0, "a": 1, "a_in": 2, "b": 1}
        assert pd.isna(r.loc["outer", "parent"]) and pd.isna(r.loc["other", "parent"])
        assert r.loc["a", "parent"] == rid["outer"] and r.loc["b", "parent"] == rid["outer"]
        assert r.loc["a_in", "parent"] == rid["a"]
        # range_id follows start order
        assert t.nvtx_ranges["text"].tolist() == ["outer", "other", "a", "a_in", "b"]


def test_nesting_with_a_zero_length_range(builder: TraceBuilder) -> None:
    """A [0, 1000) encloses B [500, 600), which encloses the zero-length Z [500, 500]."""
    builder.range("A", 0, 1_000)
    builder.range("Z", 500, 500)
    builder.range("B", 500, 600)
    _launch(builder, 2_000)
    with open_trace(builder.write()) as t:
        r = t.nvtx_ranges.set_index("text")
        assert r.loc["B", "depth"] == 1 and r.loc["B", "parent"] == r.loc["A", "range_id"]
        assert r.loc["Z", "depth"] == 2 and r.loc["Z", "parent"] == r.loc["B", "range_id"]


def test_nesting_of_overlapping_start_end_ranges(builder: TraceBuilder) -> None:
    """Start/end ranges of one thread may overlap without nesting (async work):
    S1 [2000, 2100) and S2 [2050, 2200) overlap, neither encloses the other;
    S3 [2150, 2160) lies inside S2 only (S1 had closed at 2100). The parent is
    the enclosing range (CONTRACT.md), never one that had already closed."""
    builder.range("S1", 2_000, 2_100, kind="start_end")
    builder.range("S2", 2_050, 2_200, kind="start_end")
    builder.range("S3", 2_150, 2_160, kind="start_end")
    _launch(builder, 3_000)
    with open_trace(builder.write()) as t:
        r = t.nvtx_ranges.set_index("text")
        starts, ends = r["start_ns"], r["end_ns"]
        for name, row in r.iterrows():
            if not pd.isna(row["parent"]):
                p = r[r["range_id"] == row["parent"]].iloc[0]
                assert p["start_ns"] <= starts[name] and ends[name] <= p["end_ns"], (name, "not enclosed")
        assert r.loc["S3", "parent"] == r.loc["S2", "range_id"]
        assert pd.isna(r.loc["S2", "parent"]) and r.loc["S2", "depth"] == 0


def test_graph_node_kernels_and_sync_rows(builder: TraceBuilder) -> None:
    builder.kernel(100, 200, launch=(10, 20), name="node_k", graph_node_id=7, api_name="cudaGraphLaunch_v10000")
    builder.graph_run(300, 400, launch=(30, 40), graph_id=3, graph_exec_id=4)
    builder.sync(500, 600, sync_type="Event sync")
    builder.thread_name("worker", tid=101)
    builder.gpu(0, compute=(8, 0))
    with open_trace(builder.write()) as t:
        k = _one(t.kernels)
        assert (k["graph_node_id"], k["api"]) == (7, "cudaGraphLaunch_v10000")
        g = _one(t.graph_runs)
        assert (g["graph_id"], g["graph_exec_id"], g["start_ns"], g["launch_tid"]) == (3, 4, 300, 100)
        s = _one(t.sync_events)
        assert (s["sync_type"], s["dur_ns"]) == ("Event sync", 100)
        assert _one(t.threads)[["pid", "tid", "name"]].tolist() == [100, 101, "worker"]
        assert _one(t.gpus)["compute_major"] == 8


def test_nullable_id_columns_are_integers(edge, fixture_path) -> None:
    """Ids that may be null (end_tid, parent, src/dst device, graph node) stay
    integers, null as <NA>, with rows or without: a Parquet reader must not see
    ``102.0`` for a thread or ``0.0`` for a device."""
    with open_trace(fixture_path("p2p")) as p2p:
        cols = [
            (edge.nvtx_ranges, "end_tid"), (edge.nvtx_ranges, "parent"),
            (nvtx_projection(edge), "parent"), (edge.memcpy, "src_device"),
            (edge.memcpy, "dst_device"), (p2p.memcpy, "src_device"), (edge.kernels, "graph_node_id"),
        ]
        bad = [(c, str(df[c].dtype)) for df, c in cols if str(df[c].dtype) != "Int64"]
    assert not bad, bad


def test_builder_ids() -> None:
    assert global_tid(451, 451) == 281482543235523
    assert global_pid(451) == 281482543235072  # globalPid of edge's parent process


# ---- errors --------------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputMissing) as e:
        open_trace(tmp_path / "nope.sqlite")
    assert e.value.exit_code == 3
    assert str(e.value).startswith(str(tmp_path / "nope.sqlite"))


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InputMissing) as e:
        open_trace(tmp_path)
    assert e.value.exit_code == 3


@pytest.mark.parametrize("content", [
    pytest.param(b"", id="empty"),
    pytest.param(np.random.default_rng(0).bytes(4096), id="random"),
    pytest.param(b"SQLite format 3\x00" + np.random.default_rng(1).bytes(8192), id="magic-then-random"),
])
def test_not_a_database(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "bad.sqlite"
    p.write_bytes(content)
    with pytest.raises(NotADatabase) as e:
        open_trace(p)
    assert e.value.exit_code == 4
    assert str(e.value).startswith(str(p))


def test_truncated_fixture(tmp_path: Path, fixture_path) -> None:
    src = fixture_path("edge").read_bytes()
    p = tmp_path / "cut.sqlite"
    p.write_bytes(src[: len(src) // 2])
    with pytest.raises(NotADatabase) as e:
        t = open_trace(p)
        _ = (t.nvtx_ranges, t.kernels, t.memcpy, t.api_calls)
    assert e.value.exit_code == 4


def test_sqlite_without_nsys_tables(tmp_path: Path) -> None:
    p = tmp_path / "other.sqlite"
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE people (name TEXT)")
    con.commit()
    con.close()
    with pytest.raises(NotAnExport) as e:
        open_trace(p)
    assert e.value.exit_code == 5


def test_export_without_cuda_tables(builder: TraceBuilder) -> None:
    builder.range("step", 0, 100)
    with pytest.raises(NotAnExport) as e:
        open_trace(builder.write())
    assert e.value.exit_code == 5
    assert "-t cuda" in str(e.value)
    assert str(e.value).startswith(str(builder.path))


def test_unsupported_schema(make_builder) -> None:
    b = make_builder(meta={"EXPORT_SCHEMA_VERSION": "4.0.0", "EXPORT_PRODUCT_VERSION": "2030.1"})
    _launch(b, 0)
    with pytest.raises(NotAnExport) as e:
        open_trace(b.write())
    assert "4.0.0" in str(e.value)


# ---- read-only -------------------------------------------------------------------------


def _read_everything(t) -> None:
    for name in ("nvtx_ranges", "marks", "api_calls", "kernels", "memcpy", "memset", "graph_runs",
                 "sync_events", "gpus", "threads"):
        getattr(t, name)
    t.identity()
    nvtx_projection(t)


@pytest.mark.parametrize("name", ["edge", "graphs"])
def test_opening_never_modifies_the_file(tmp_path: Path, fixture_path, name: str) -> None:
    p = tmp_path / f"{name}.sqlite"
    shutil.copy2(fixture_path(name), p)
    before = _sha_mtime(p)
    listing = sorted(os.listdir(tmp_path))
    with open_trace(p) as t:
        _read_everything(t)
    assert _sha_mtime(p) == before
    assert sorted(os.listdir(tmp_path)) == listing  # no -journal / -wal / -shm left behind


@pytest.mark.parametrize("filename", ["run #1.sqlite", "what?.sqlite", "100%25.sqlite"])
def test_path_with_uri_characters(tmp_path: Path, fixture_path, filename: str) -> None:
    """A file name holding URI syntax (#, ?, %) opens that file, read-only, and
    creates nothing beside it."""
    p = tmp_path / filename
    shutil.copy2(fixture_path("tiny_matmul_copy"), p)
    before = _sha_mtime(p)
    with open_trace(p) as t:
        assert len(t.kernels) == 4
    assert _sha_mtime(p) == before
    assert os.listdir(tmp_path) == [filename]


def test_a_second_prefetch_reads_no_table_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """prefetch() then build_report() (which prefetches) must not read the GPU-op
    tables twice: the second read was thrown away (9 s on a 2 GB trace)."""
    with open_trace(DATA / "offload_disk.sqlite") as t:
        t.prefetch()
        kernels = t.kernels
        reads: list[str] = []
        real = t._rd.read
        monkeypatch.setattr(t._rd, "read", lambda decl, *a, **k: reads.append(decl.key) or real(decl, *a, **k))
        t.prefetch()
        assert reads == []
        assert t.kernels is kernels and len(kernels) > 0


def test_prefetch_builds_the_api_calls_once_however_slow(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU-op tables join the API calls: prefetch builds the API calls once,
    before that join, even when they are the slowest read (functools.cached_property
    has no lock since Python 3.12: a second thread asking first built them again, 8 s
    and 1 GB more at 2 GB on a 16-core host; on 3.11 its lock hid that)."""
    import time

    from nsysparse import cuda

    real, built = cuda.api_calls, []

    def slow(*a, **k):
        time.sleep(0.3)  # the GPU-op reads finish first
        built.append(1)
        return real(*a, **k)

    monkeypatch.setattr(cuda, "api_calls", slow)
    with open_trace(DATA / "offload_disk.sqlite") as t:
        t.prefetch()
        assert built == [1]
        assert (t.kernels["api"].notna().mean(), len(t.api_calls)) == (1.0, len(real(t._rd, t.strings)))


@pytest.mark.parametrize("order", ["rising", "shuffled"])
def test_the_launching_call_is_the_first_call_of_its_process_and_id(order: str) -> None:
    """Ops.launching_call, worked by hand: rising keys are searched as they are (no
    sort), shuffled ones through a stable sort; either way a duplicated (process,
    id) is the first such call, a missing one -1."""
    from nsysparse.cuda import Ops

    pid = np.array([7, 7, 7, 7, 9], dtype=np.int64)
    corr = np.array([1, 2, 2, 5, 1], dtype=np.int64)  # rows 1 and 2 share (7, 2): row 1 wins
    if order == "shuffled":
        perm = np.array([3, 4, 1, 0, 2])  # row 1 of the rising table is row 2 here, before its twin (row 4)
        pid, corr = pid[perm], corr[perm]
    ops = Ops(None, None, pd.DataFrame({"pid": pid, "correlation_id": corr}))  # type: ignore[arg-type]
    assert (ops.order is None) == (order == "rising")
    got = ops.launching_call(np.array([7, 7, 9, 9, 7]), np.array([2, 5, 1, 2, -1]))
    want = [1, 3, 4, -1, -1] if order == "rising" else [2, 0, 1, -1, -1]
    assert got.tolist() == want


def test_nesting_in_any_row_order() -> None:
    """nvtx._nesting takes its fast path on rows in (start, longer first) order and
    sorts otherwise: the same depth and parent per range either way (random ranges
    on four threads, many tied starts)."""
    from nsysparse.nvtx import _nesting

    rng = np.random.default_rng(7)
    n = 2_000
    start = rng.integers(0, 500, n)
    r = pd.DataFrame({"start_ns": start, "end_ns": start + rng.integers(0, 200, n),
                      "pid": rng.choice([5, 6], n), "tid": rng.choice([1, 2], n)})
    # one range per (thread, start, end): which of two equal ranges encloses the other is row order's choice
    r = r.drop_duplicates().sort_values(["start_ns", "end_ns"], ascending=[True, False], kind="stable",
                                        ignore_index=True)
    n = len(r)
    depth, parent = _nesting(r)
    # by hand, per row: the parent is the nearest earlier row of its thread that encloses it
    for i in rng.choice(n, 200, replace=False):
        same = (r["pid"] == r["pid"][i]) & (r["tid"] == r["tid"][i]) & (r.index < i)
        encl = same & (r["end_ns"] >= r["end_ns"][i])
        want = int(np.flatnonzero(encl.to_numpy())[-1]) if encl.any() else -1
        assert parent[i] == want
    assert (depth[parent < 0] == 0).all() and (depth[parent >= 0] == depth[parent[parent >= 0]] + 1).all()
    shuffled = rng.permutation(n)
    d2, p2 = _nesting(r.iloc[shuffled].reset_index(drop=True))
    np.testing.assert_array_equal(d2, depth[shuffled])
    back = np.where(p2 >= 0, shuffled[np.maximum(p2, 0)], -1)  # positions in the shuffled frame -> rows of r
    np.testing.assert_array_equal(back, parent[shuffled])


def test_streamed_prefetch_without_analysis_details(make_builder, tmp_path) -> None:
    """Without ANALYSIS_DETAILS the capture's end is the last timestamp of the loaded
    tables: a streaming prefetch builds the NVTX ranges once those are known, not
    beside their reads (there they built the GPU ops and the API calls whole, and
    raced the stream for the raw rows)."""
    from nsysparse.report import Settings, _Spiller

    b = make_builder(analysis=False)
    b.range("open", 1_000, None)
    _launch(b, 2_000)  # kernel ends at 2150
    b.api("cudaDeviceSynchronize", 4_000, 4_500)  # the last timestamp: an API call's end
    spill = tmp_path / "spill"
    spill.mkdir()
    with open_trace(b.write()) as t:
        spiller = _Spiller(spill, t, Settings())
        try:
            t.prefetch(spiller.take, spiller.calls_file())
        finally:
            spiller.close()
        assert "api_calls" not in t.__dict__  # streamed to its file, never built
        assert t.activity_span == (2_000, 4_500)
        r = _one(t.nvtx_ranges)
        assert (r["end_ns"], r["closed"]) == (4_500, False)
