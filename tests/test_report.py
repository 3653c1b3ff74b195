"""The report's metrics (issue 3): on the real fixtures against their truth files,
and on tiny hand-built traces whose answers are worked out here by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nsysparse import open_trace
from nsysparse.cli import main
from nsysparse.report import Settings, build_report
from tests.builders import TraceBuilder
from tests.conftest import DATA, FIXTURES

PINNED_H2D = "Host-to-Device Pinned->Device host->0"
DISK = "Disk-to-Host Disk->Host host->host"
SHARES = ["bubble_ratio", "gpu_idle_ratio", "gpu_busy_any_ratio", "sync_share", "overlap_h2d_compute", "io_floor_share"]


def report_of(path: Path, **settings) -> "object":
    return build_report(open_trace(path), Settings(**settings))


@pytest.fixture(scope="module")
def offload_disk():
    return report_of(DATA / "offload_disk.sqlite")


# ---- real fixtures ------------------------------------------------------------------


def test_offload_disk_links_match_truth(offload_disk, truth):
    t = truth("offload_disk")
    links = offload_disk.tables["links"].set_index("link")
    assert links.loc[PINNED_H2D, "count"] == t["h2d_copies"]
    assert links.loc[PINNED_H2D, "bytes"] == t["h2d_bytes"]
    assert links.loc[DISK, "count"] == t["disk_reads"]
    assert links.loc[DISK, "bytes"] == t["disk_bytes"]
    assert links.loc[DISK, "copy_kind"] == "Disk-to-Host"
    # the H200 is compute capability 9.0: default H2D peak 64 GB/s, utilisation = effective / 64
    assert links.loc[PINNED_H2D, "peak_gbps"] == 64.0
    assert links.loc[PINNED_H2D, "utilisation"] == pytest.approx(links.loc[PINNED_H2D, "gbps_effective"] / 64)
    assert np.isnan(links.loc[DISK, "peak_gbps"])


def test_offload_disk_steps_and_bytes_by_time(offload_disk, truth):
    t = truth("offload_disk")
    st = offload_disk.tables["steps"]
    assert len(st) == t["steps"] == 5
    assert st["warmup"].tolist() == [True, False, False, False, False]
    assert offload_disk.summary["steps"] == 5 and offload_disk.summary["warmup"] == 1
    # the fetch thread launched every pinned copy, yet the bytes land in the steps by time
    m = offload_disk.tables["memcpy"]
    pinned = m[(m["copy_kind"] == "Host-to-Device") & (m["src_kind"] == "Pinned")]
    assert set(pinned["launch_tid"].astype(int)).isdisjoint(set(st["tid"]))
    in_steps = pinned[[((st["start_ns"] <= s) & (s < st["end_ns"])).any() for s in pinned["start_ns"]]]
    pageable = m[(m["copy_kind"] == "Host-to-Device") & (m["src_kind"] == "Pageable")]
    pageable_in = pageable[[((st["start_ns"] <= s) & (s < st["end_ns"])).any() for s in pageable["start_ns"]]]
    assert st["bytes_h2d"].sum() == in_steps["bytes"].sum() + pageable_in["bytes"].sum()
    assert st["bytes_h2d"].sum() > 0.9 * t["h2d_bytes"]
    assert st["bytes_disk"].sum() <= t["disk_bytes"] and st["bytes_disk"].sum() > 0


def test_offload_disk_summary_is_ratio_of_sums(offload_disk):
    st = offload_disk.tables["steps"]
    live = st[~st["warmup"]]
    s = offload_disk.summary
    assert s["bubble_ratio"] == pytest.approx(live["wait_ns"].sum() / live["dur_ns"].sum())
    assert s["sync_share"] == pytest.approx(live["sync_ns"].sum() / live["dur_ns"].sum())
    assert s["gpu_idle_ratio"] == pytest.approx(1 - live["gpu_busy_kernel_ns"].sum() / live["dur_ns"].sum())
    assert s["step_ms_p50"] == pytest.approx(np.percentile(live["dur_ns"] / 1e6, 50))
    assert [t["what"] for t in s["overlapping_targets"]][0] == "host_wait"  # the offloading loop waits on experts
    assert len(s["overlapping_targets"]) == 3
    assert s["targets"][0]["what"] == "disk_read"  # ... and what it waits on is the disk


def test_offload_host_has_no_disk_link(truth):
    r = report_of(DATA / "offload_host.sqlite")
    links = r.tables["links"].set_index("link")
    assert DISK not in links.index
    assert links.loc[PINNED_H2D, "bytes"] == truth("offload_host")["h2d_bytes"]
    assert r.tables["steps"]["bytes_disk"].sum() == 0


def test_edge_nested_barrier_once_nested_step_not_a_step_blocking_copies_sync(edge):
    r = build_report(edge)
    st = r.tables["steps"]
    ranges = edge.nvtx_ranges
    steps = ranges[(ranges["text"] == "step") & (ranges["depth"] == 0)]
    assert len(st) == 3  # 4 `step` instances, one nested in the first
    assert st["start_ns"].tolist() == sorted(steps["start_ns"].tolist())
    # each step holds an expert_wait_barrier nested in a same-named one: counted once
    outer = ranges[(ranges["text"] == "expert_wait_barrier") & (ranges["depth"] == 1)].sort_values("start_ns")
    assert st["wait_ns"].tolist() == outer["dur_ns"].tolist()
    sync = r.tables["sync"].set_index(["base_name", "pid", "tid"])
    assert sync.loc[("cudaMemcpy", 451, 451), "calls"] == 3
    assert sync.loc[("cudaMemset", 451, 451), "calls"] == 3
    # the blocking copy sits inside each step's sync time
    api = edge.api_calls
    blocking = api[(api["base_name"] == "cudaMemcpy") & (api["pid"] == 451)].sort_values("start_ns")
    assert (st["sync_ns"].to_numpy() >= blocking["dur_ns"].to_numpy()).all()


def test_graphs_gpu_busy_during_graph_runs(truth):
    r = report_of(DATA / "graphs.sqlite")
    st = r.tables["steps"]
    g = r.tables["graph_runs"]
    assert len(st) == truth("graphs")["steps"] and len(g) == truth("graphs")["graph_launches"]
    for _, step in st.iterrows():
        runs = g[(g["start_ns"] >= step["start_ns"]) & (g["end_ns"] <= step["end_ns"])]
        assert len(runs) == 1
        # no kernel rows inside the steps: the busy time is the graph run's
        assert step["gpu_busy_kernel_ns"] == runs["dur_ns"].sum()
        assert step["gpu_idle_ratio"] < 1


def test_p2p_two_peer_links(truth):
    t = truth("p2p")
    links = report_of(DATA / "p2p.sqlite").tables["links"]
    peer = links[links["copy_kind"] == "Peer-to-Peer"].set_index("link")
    assert sorted(peer.index) == ["Peer-to-Peer Device->Device 0->1", "Peer-to-Peer Device->Device 1->0"]
    assert (peer["count"] == t["peer_copies_each_way"]).all()
    assert (peer["bytes"] == t["bytes_each"] * t["peer_copies_each_way"]).all()
    assert peer.loc["Peer-to-Peer Device->Device 0->1", "src_device"] == 0
    assert peer.loc["Peer-to-Peer Device->Device 0->1", "dst_device"] == 1


@pytest.mark.parametrize("name", FIXTURES)
def test_every_share_in_unit_interval(name):
    r = report_of(DATA / f"{name}.sqlite")
    for key in SHARES:
        v = r.summary[key]
        assert v is None or 0.0 <= v <= 1.0, (key, v)
    st = r.tables["steps"]
    for col in ("bubble_ratio", "gpu_idle_ratio", "sync_share"):
        assert st[col].between(0, 1).all(), col
    sync = r.tables["sync"]
    assert sync["share"].between(0, 1).all()
    # links conserve the memcpy bytes
    m = r.tables["memcpy"]
    links = r.tables["links"]
    assert links[links["copy_kind"] != "Disk-to-Host"]["bytes"].sum() == m["bytes"].sum()
    json.dumps(r.summary, allow_nan=False)


# ---- tiny traces, answers by hand ----------------------------------------------------


def _step_trace(b: TraceBuilder, steps: list[tuple[int, int]]) -> None:
    b.gpu(0)
    for s, e in steps:
        b.range("step", s, e, domain="moe")


def test_bubble_is_union_of_waits_on_step_thread(builder):
    _step_trace(builder, [(0, 1000)])
    builder.range("expert_wait_barrier", 100, 300, domain="moe")
    builder.range("expert_wait_barrier", 150, 250, domain="moe")  # nested: counted once
    builder.range("barrier", 500, 600)
    builder.range("expert_wait_barrier", 0, 1000, tid=101)  # another thread: not the step's
    builder.range("expert_wait_barrier", 900, 1200, domain="moe")  # clipped at the step end
    builder.kernel(10, 20, launch=(1, 5))
    r = build_report(open_trace(builder.write()))
    st = r.tables["steps"]
    assert st["wait_ns"].tolist() == [200 + 100 + 100]
    assert st["bubble_ratio"].tolist() == [0.4]
    assert r.summary["bubble_ratio"] == 0.4  # one step: no warm-up


def test_gpu_idle_all_devices_and_per_device(builder):
    _step_trace(builder, [(0, 1000)])
    builder.kernel(100, 200, launch=(1, 2))
    builder.kernel(150, 300, launch=(3, 4))
    builder.kernel(400, 500, launch=(5, 6), device=1)
    builder.graph_run(700, 750, launch=(7, 8))
    builder.memcpy(600, 700, bytes=100, launch=(9, 10))
    builder.memset(800, 900, bytes=10, launch=(11, 12))
    r = build_report(open_trace(builder.write()))
    st = r.tables["steps"].iloc[0]
    assert st["gpu_busy_kernel_ns"] == 200 + 100 + 50
    assert st["gpu_idle_ratio"] == pytest.approx(1 - 350 / 1000)
    assert st["gpu_busy_any_ns"] == 350 + 100 + 100  # plus the copy [600,700) and the memset [800,900)
    dev = r.tables["step_devices"].set_index("device")
    assert dev.loc[1, "gpu_busy_kernel_ns"] == 100
    assert dev.loc[0, "gpu_idle_ratio"] == pytest.approx(0.75)
    assert dev.loc[0, "gpu_busy_kernel_ns"] == 200 + 50  # kernels [100,300) and the graph run
    assert dev.loc[0, "gpu_busy_any_ns"] == 250 + 100 + 100


def test_sync_share_union_per_thread_and_blocking_calls(builder):
    _step_trace(builder, [(0, 1000)])
    builder.api("cudaStreamSynchronize_v3020", 100, 400)
    builder.api("cudaDeviceSynchronize_v3020", 300, 500)  # overlaps the first: union
    builder.api("cudaMemcpy_v3020", 600, 700)  # blocking copy: sync
    builder.api("cudaMemcpyAsync_v3020", 700, 800)  # async: not sync
    builder.api("cudaStreamSynchronize_v3020", 0, 1000, tid=101)  # fetch thread: its own share
    builder.kernel(10, 20, launch=(1, 5))
    r = build_report(open_trace(builder.write()))
    assert r.tables["steps"]["sync_ns"].tolist() == [500]
    assert r.summary["sync_share"] == 0.5
    sync = r.tables["sync"].set_index(["base_name", "tid"])
    assert sync.loc[("cudaStreamSynchronize", 100), "union_ns"] == 300
    assert sync.loc[("cudaStreamSynchronize", 100), "share"] == pytest.approx(0.3)
    assert sync.loc[("cudaMemcpy", 100), "calls"] == 1
    assert ("cudaMemcpyAsync", 100) not in sync.index
    # a thread with no step: share of the whole profiled span (first to last call/op: 0..1000)
    assert sync.loc[("cudaStreamSynchronize", 101), "share"] == pytest.approx(1.0)


def test_overlapping_copies_of_one_link_share_busy_time(builder):
    _step_trace(builder, [(0, 1000)])
    builder.memcpy(0, 100, bytes=1000, src_kind="Pinned", launch=(0, 1), stream=13)
    builder.memcpy(50, 150, bytes=1000, src_kind="Pinned", launch=(2, 3), stream=17)
    builder.memcpy(200, 300, bytes=500, launch=(4, 5))  # pageable: another link
    r = build_report(open_trace(builder.write()))
    links = r.tables["links"].set_index("link")
    pinned = links.loc[PINNED_H2D]
    assert pinned["count"] == 2 and pinned["bytes"] == 2000
    assert pinned["sum_dur_ns"] == 200 and pinned["busy_ns"] == 150  # union, not sum
    assert pinned["gbps_effective"] == pytest.approx(2000 / 150)
    assert pinned["gbps_p50"] == pytest.approx(10.0) and pinned["gbps_max"] == pytest.approx(10.0)
    assert pinned["peak_gbps"] == 64.0
    page = links.loc["Host-to-Device Pageable->Device host->0"]
    assert page["bytes"] == 500 and page["gbps_effective"] == pytest.approx(5.0)
    assert r.tables["steps"]["bytes_h2d"].tolist() == [2500]


def test_link_peak_override_and_pre_hopper_default(make_builder):
    b = make_builder("ampere")
    b.gpu(0, name="NVIDIA A100", compute=(8, 0))
    b.memcpy(0, 100, bytes=1600, src_kind="Pinned", launch=(0, 1))
    path = b.write()
    links = build_report(open_trace(path)).tables["links"]
    assert links["peak_gbps"].tolist() == [32.0]
    assert links["utilisation"].tolist() == [pytest.approx(16 / 32)]
    links = build_report(open_trace(path), Settings(link_peaks={"H2D": 20.0})).tables["links"]
    assert links["utilisation"].tolist() == [pytest.approx(16 / 20)]


def test_overlap_io_floor_and_disk_link(builder):
    _step_trace(builder, [(0, 1000), (1000, 2000)])
    # step 0: an H2D copy half hidden under a kernel; disk reads with byte payloads (overlapping)
    builder.memcpy(0, 100, bytes=800, src_kind="Pinned", launch=(0, 1))
    builder.kernel(50, 150, launch=(2, 3))
    builder.range("disk_to_cpu", 200, 400, tid=101, payload=300)
    builder.range("disk_to_cpu", 300, 500, tid=101, payload=300)
    # step 1: another copy of the same link, no kernel
    builder.memcpy(1100, 1200, bytes=800, src_kind="Pinned", launch=(1001, 1002))
    r = build_report(open_trace(builder.write()), Settings(warmup=0))
    links = r.tables["links"].set_index("link")
    assert links.loc[DISK, "bytes"] == 600 and links.loc[DISK, "busy_ns"] == 300
    assert links.loc[DISK, "gbps_effective"] == pytest.approx(2.0)
    assert links.loc[PINNED_H2D, "gbps_effective"] == pytest.approx(8.0)
    st = r.tables["steps"].set_index("step")
    assert st.loc[0, "bytes_disk"] == 600 and st.loc[1, "bytes_disk"] == 0
    # floor: each link's bytes / its effective GB/s; the larger term wins
    assert st.loc[0, "io_floor_ns"] == pytest.approx(max(800 / 8.0, 600 / 2.0))
    assert st.loc[1, "io_floor_ns"] == pytest.approx(100)
    assert r.summary["io_floor_share"] == pytest.approx(400 / 2000)
    # overlap: copies busy 200 ns, 50 of them under the kernel
    assert r.summary["overlap_h2d_compute"] == pytest.approx(50 / 200)
    assert st["h2d_busy_ns"].tolist() == [100, 100] and st["h2d_overlap_ns"].tolist() == [50, 0]
    sl = r.tables["step_links"].set_index(["step", "link"])
    assert sl.loc[(0, DISK), "busy_ns"] == 300 and sl.loc[(0, DISK), "floor_ns"] == pytest.approx(300)


def test_warmup_default_and_explicit(builder):
    _step_trace(builder, [(0, 100), (100, 300), (300, 400)])
    builder.kernel(10, 20, launch=(1, 5))
    path = builder.write()
    r = build_report(open_trace(path))
    assert r.tables["steps"]["warmup"].tolist() == [True, False, False]
    assert r.summary["step_ms_p50"] == pytest.approx(np.percentile([200 / 1e6, 100 / 1e6], 50))
    r = build_report(open_trace(path), Settings(warmup=2))
    assert r.tables["steps"]["warmup"].tolist() == [True, True, False]


def test_layers_numbered_within_step(builder):
    _step_trace(builder, [(0, 1000), (1000, 2000)])
    for base in (0, 1000):
        builder.range("moe_layer", base + 100, base + 400, domain="moe")
        builder.range("moe_layer", base + 500, base + 900, domain="moe")
        builder.range("expert_wait_barrier", base + 600, base + 700, domain="moe")
        builder.memcpy(base + 550, base + 650, bytes=64, src_kind="Pinned", launch=(base + 510, base + 520), tid=101)
    builder.kernel(150, 250, launch=(110, 120))
    r = build_report(open_trace(builder.write()), Settings(warmup=0))
    lay = r.tables["layers"].set_index("layer")
    assert lay["count"].tolist() == [2, 2]
    assert lay.loc[0, "wait_ns"] == 0 and lay.loc[1, "wait_ns"] == 200
    assert lay.loc[1, "bytes_h2d"] == 128 and lay.loc[0, "bytes_h2d"] == 0
    assert lay.loc[0, "gpu_busy_kernel_ns"] == 100


def test_targets_rank_by_ms_per_step(builder):
    _step_trace(builder, [(0, 1_000_000)])
    builder.range("expert_wait_barrier", 0, 600_000)
    builder.api("cudaStreamSynchronize_v3020", 600_000, 700_000)
    builder.kernel(700_000, 800_000, launch=(600_000, 600_001))
    r = build_report(open_trace(builder.write()))
    t = {x["what"]: x for x in r.summary["overlapping_targets"]}
    assert t["host_wait"]["ms_per_step"] == pytest.approx(0.6) and t["host_wait"]["share"] == pytest.approx(0.6)
    assert t["gpu_idle_other"]["ms_per_step"] == pytest.approx(0.2)  # 1 ms - wait - sync - kernel
    assert t["sync"]["ms_per_step"] == pytest.approx(0.1)
    assert [x["what"] for x in r.summary["overlapping_targets"]] == ["host_wait", "gpu_idle_other", "sync"]
    # from the exclusive breakdown: the same causes, never overlapping, with their levers and savings
    new = [(x["what"], round(x["ms_per_step"], 6), x["saving_ms"]) for x in r.summary["targets"]]
    assert new == [("host_wait_other", 0.6, None), ("host_cpu", 0.2, None), ("sync_idle", 0.1, 0.1)]
    assert r.summary["breakdown"]["gpu_compute"] == pytest.approx(0.1)
    assert r.tables["steps"]["sync_outside_wait_ns"].tolist() == [100_000]


def test_no_step_range_whole_span_is_one_step(builder):
    builder.kernel(100, 200, launch=(50, 60))
    builder.memcpy(300, 400, bytes=10, launch=(250, 260))
    r = build_report(open_trace(builder.write()))
    st = r.tables["steps"]
    assert st[["start_ns", "end_ns", "tid", "pid"]].values.tolist() == [[50, 400, 100, 100]]
    assert any("whole profiled span" in n for n in r.summary["notes"])
    assert r.summary["bubble_ratio"] == 0.0


def test_no_kernels_gpu_idle_is_one(builder):
    _step_trace(builder, [(0, 1000)])
    builder.memcpy(300, 400, bytes=10, launch=(250, 260))
    r = build_report(open_trace(builder.write()))
    assert r.summary["gpu_idle_ratio"] == 1.0


# ---- CLI ----------------------------------------------------------------------------


def test_cli_step_matching_nothing_exits_6(tmp_path, capsys):
    path = DATA / "offload_disk.sqlite"
    rc = main(["report", str(path), "--step", "no_such_step", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 6
    assert err.startswith(str(path)) and err.count("\n") == 1
    assert "no_such_step" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("flag", ["--wait", "--layer", "--io-range"])
def test_cli_other_names_matching_nothing_exit_6(tmp_path, capsys, flag):
    rc = main(["report", str(DATA / "offload_disk.sqlite"), flag, "zzz_nothing", "--out", str(tmp_path / "o"), "--no-charts"])
    assert rc == 6
    assert "zzz_nothing" in capsys.readouterr().err


def test_cli_report_writes_every_contract_file(tmp_path, capsys):
    out = tmp_path / "o"
    rc = main(["report", str(DATA / "offload_disk.sqlite"), "--out", str(out), "--format", "json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    for key in ("steps", "warmup", "step_ms_p50", "step_ms_p95", "bubble_ratio", "gpu_idle_ratio",
                "gpu_busy_any_ratio", "sync_share", "overlap_h2d_compute", "io_floor_share", "links",
                "targets", "input", "settings"):
        assert key in summary
    assert summary["input"]["nsys_version"] == "2025.3.2.0" and summary["input"]["schema_version"] == "3.20.3"
    for name in ("nvtx_ranges", "marks", "kernels", "memcpy", "memset", "graph_runs", "api_calls", "projection",
                 "steps", "step_links", "step_devices", "layers", "links", "sync", "ranges"):
        assert (out / f"{name}.parquet").exists(), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["input"]["sha256"] == summary["input"]["sha256"]
    assert set(manifest["files"]) == {p.name for p in out.iterdir()}
    steps = pd.read_parquet(out / "steps.parquet")
    assert list(steps.columns[:4]) == ["step", "warmup", "pid", "tid"]
    for col in ("link", "copy_kind", "src_kind", "dst_kind", "src_device", "dst_device", "count", "bytes",
                "sum_dur_ns", "busy_ns", "gbps_effective", "gbps_p50", "gbps_p95", "gbps_max", "peak_gbps", "utilisation"):
        assert col in pd.read_parquet(out / "links.parquet").columns


def test_cli_example_text_report(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--example", "--no-charts"]) == 0
    out = capsys.readouterr().out
    assert "Top targets" in out and "disk_read" in out and "Where the step goes" in out
    assert (tmp_path / "nsysparse-out" / "example" / "summary.json").exists()


def test_ranges_table_percentiles(builder):
    _step_trace(builder, [(0, 100), (100, 300), (300, 700)])
    builder.kernel(10, 20, launch=(1, 5))
    r = build_report(open_trace(builder.write()))
    row = r.tables["ranges"].set_index("name").loc["moe:step"]
    assert row["count"] == 3 and row["total_ns"] == 700
    assert row["p50_ns"] == 200 and row["p95_ns"] == pytest.approx(np.percentile([100, 200, 400], 95))
    assert row["proj_total_ns"] == 10
    assert row["proj_count"] == 1 and row["proj_p50_ns"] == 10 and row["proj_busy_mean_ns"] == 10


def test_cli_stdout_closed_early_is_not_a_traceback(tmp_path):
    """`nsysparse report T | head`: the reader goes away; no traceback, exit 0."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(DATA.parent.parent)}
    p = subprocess.Popen([sys.executable, "-m", "nsysparse", "report", str(DATA / "edge.sqlite"), "--no-charts",
                          "--out", str(tmp_path / "o")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    p.stdout.close()  # before the report is printed
    err = p.stderr.read().decode()
    assert p.wait() == 0, err
    assert "Traceback" not in err
    assert (tmp_path / "o" / "summary.json").exists()


def test_clipped_union_by_thread_with_shared_intervals_by_hand() -> None:
    """Each thread's union takes its own intervals and the shared ones (the GPU's
    kernels in GPU idle outside host stalls), clipped to each of its windows; a
    thread with no interval of its own still counts the shared ones."""
    from nsysparse import intervals as iv

    own = pd.DataFrame({"start_ns": [0, 70], "end_ns": [10, 80], "pid": [1, 1], "tid": [1, 1]})
    windows = pd.DataFrame({"start_ns": [0, 55, 0], "end_ns": [55, 100, 100], "pid": [1, 1, 1], "tid": [1, 1, 2]})
    shared = (np.array([50, 5]), np.array([60, 15]))
    got = iv.clipped_union_by_thread(own, windows, shared=shared)
    # thread 1: {[0,15), [50,60), [70,80)}; [0,55) holds 15 + 5, [55,100) holds 5 + 10
    # thread 2: only the shared {[5,15), [50,60)}: 20
    assert got.tolist() == [20, 15, 20]
    assert iv.clipped_union_by_thread(own, windows).tolist() == [10, 10, 0]


def test_gpu_interval_sets_come_in_start_order_and_without_copies() -> None:
    """compute_intervals (worked by hand): kernels and graph runs merge into start
    order, ties keeping the tables' order; one table already in order is its own
    columns, not a copy (millions of kernels). GpuBusy: one GPU's set is the
    all-device set itself, each device's is its own ops' union, and the copies
    and fills added (:meth:`GpuBusy.plus`) give the union of every op."""
    from nsysparse.gpu import GpuBusy, compute_intervals

    def ops(starts, device=0, pid=1):
        return pd.DataFrame({"start_ns": starts, "end_ns": [s + 5 for s in starts], "device": device, "pid": pid,
                             "stream": 7})

    kernels = ops([10, 30, 50])
    compute = compute_intervals(kernels, ops([])[:0])
    assert compute["start_ns"].tolist() == [10, 30, 50] and list(compute.columns) == ["start_ns", "end_ns", "device", "pid"]
    assert np.shares_memory(compute["start_ns"].to_numpy(), kernels["start_ns"].to_numpy())
    merged = compute_intervals(kernels, ops([30, 5], pid=2).iloc[::-1])
    assert merged["start_ns"].tolist() == [5, 10, 30, 30, 50]
    assert merged["pid"].tolist() == [2, 1, 1, 2, 1]  # the kernel's 30 before the graph run's 30
    assert merged.index.tolist() == list(range(5))
    kernel_set = GpuBusy.of(compute)  # nothing merges: the set is the kernels' own columns
    assert np.shares_memory(kernel_set.all.starts, kernels["start_ns"].to_numpy())
    one = kernel_set.plus(ops([30, 20], pid=2), ops([5]))  # the copies out of order
    assert one.on(0) is one.all and one.devices == [0]
    # 5-10 and 10-15 touch and merge; the two 30-35 are one
    assert one.all.starts.tolist() == [5, 20, 30, 50] and one.all.ends.tolist() == [15, 25, 35, 55]
    assert (one.first_start, one.last_end) == (5, 55)
    # covered in [0, 12): 5-12 = 7; in [12, 100): 12-15, 20-25, 30-35, 50-55 = 3 + 5 + 5 + 5 = 18
    assert one.all.in_windows([0, 12], [12, 100]).tolist() == [7, 18]
    assert kernel_set.plus(ops([])[:0]) is kernel_set
    mixed = pd.concat([ops([1, 2], device=0), ops([3], device=1), ops([40], device=1)], ignore_index=True)
    mixed["device"] = mixed["device"].astype("Int64")
    mixed.loc[3, "device"] = pd.NA
    two = GpuBusy.of(mixed)
    assert two.devices == [0, 1] and two.on(1).starts.tolist() == [3] and two.on(2).starts.size == 0
    assert two.on(0).starts.tolist() == [1] and two.on(0).ends.tolist() == [7]
    assert two.all.ends.tolist() == [8, 45]  # the op with no device counts in the all-device set
    assert two.on(2).in_windows([0], [10]).tolist() == [0] and two.on(0).fraction([0, 4, 8]).tolist() == [0.75, 0.75]
    more = two.plus(ops([20], device=1), ops([60], device=2))
    assert more.devices == [0, 1, 2] and more.on(0) is two.on(0)  # nothing added on device 0: its set is kept
    assert more.on(1).starts.tolist() == [3, 20] and more.on(2).starts.tolist() == [60]
    assert more.all.starts.tolist() == [1, 20, 40, 60] and (more.first_start, more.last_end) == (1, 65)
    only_copies = GpuBusy.of(ops([])[:0]).plus(ops([7], device=3))
    assert only_copies.on(3) is only_copies.all and only_copies.all.starts.tolist() == [7]
    nothing = GpuBusy.of(ops([])[:0])
    assert nothing.devices == [] and nothing.first_start is None and nothing.all.in_windows([0], [9]).tolist() == [0]


def test_copies_table_columns_by_hand() -> None:
    """copies_table on a hand-built memcpy table and one disk read: memcpy rows
    first, then the read; each text column a categorical of the row's text (the
    disk read's own values), a copy's nullable ids kept and the read's null; the
    same rows with no read, and with no copy; the memcpy rows are the first
    rows (what report takes as a view for the breakdown)."""
    from nsysparse.links import DISK_LINK, copies_table

    m = pd.DataFrame({"start_ns": [0, 5], "end_ns": [10, 15], "dur_ns": [10, 10], "bytes": [100, 0], "pid": [1, 1],
                      "launch_tid": pd.array([2, pd.NA], dtype="Int64"), "device": [0, 1], "stream": [7, 8],
                      "copy_kind": np.array(["Host-to-Device", "Peer-to-Peer"], dtype=object),
                      "src_kind": np.array(["Pinned", "Device"], dtype=object),
                      "dst_kind": np.array(["Device", "Device"], dtype=object),
                      "src_device": pd.array([pd.NA, 1], dtype="Int64"), "dst_device": pd.array([0, 0], dtype="Int64")})
    io = pd.DataFrame({"start_ns": [1], "end_ns": [3], "dur_ns": [2], "pid": [1], "tid": [3], "bytes": [64]})
    c = copies_table(m, io)
    assert c["start_ns"].tolist() == [0, 5, 1] and c["bytes"].tolist() == [100, 0, 64]
    assert c["tid"].tolist() == [2, pd.NA, 3] and c["device"].tolist() == [0, 1, pd.NA]
    assert c["stream"].tolist() == [7, 8, pd.NA] and c["src_device"].tolist() == [pd.NA, 1, pd.NA]
    assert c["dst_device"].tolist() == [0, 0, pd.NA] and str(c["tid"].dtype) == "Int64"
    assert c["copy_kind"].tolist() == ["Host-to-Device", "Peer-to-Peer", "Disk-to-Host"]
    assert c["src_kind"].tolist() == ["Pinned", "Device", "Disk"] and c["dst_kind"].tolist() == ["Device", "Device", "Host"]
    assert c["link"].tolist() == ["Host-to-Device Pinned->Device host->0", "Peer-to-Peer Device->Device 1->0", DISK_LINK]
    assert c["category"].tolist() == ["H2D pinned", "P2P", "disk"]
    for col in ("copy_kind", "src_kind", "dst_kind", "link", "category"):
        assert isinstance(c[col].dtype, pd.CategoricalDtype)
        assert list(c[col].cat.categories) == sorted(set(c[col].tolist()))  # text order
    assert c["gbps"].iloc[0] == 10.0 and c["gbps"].iloc[1] == 0.0 and c["gbps"].iloc[2] == 32.0
    assert c["device"].isna().tolist() == [False, False, True]  # the memcpy rows are the first len(m) rows
    alone = copies_table(m, io.iloc[0:0])
    assert list(alone.columns) == list(c.columns)
    assert all(alone[col].tolist() == c[col].iloc[:2].tolist() for col in c.columns)  # no read: the copies' rows
    disk_only = copies_table(m.iloc[0:0], io)
    assert disk_only["link"].tolist() == [DISK_LINK] and disk_only["device"].tolist() == [pd.NA]
    assert disk_only["copy_kind"].tolist() == ["Disk-to-Host"] and disk_only["tid"].tolist() == [3]
    # their files hold plain text, not dictionaries of codes
    import pyarrow as pa

    from nsysparse.parquet import arrow_table
    for table in (c, alone, disk_only):
        schema = arrow_table(table).schema
        assert all(pa.types.is_string(t) or pa.types.is_large_string(t)
                   for t in (schema.field(col).type for col in ("copy_kind", "src_kind", "dst_kind", "link", "category")))


def test_link_tables_group_by_code_in_label_and_step_order_by_hand() -> None:
    """link_bandwidth / step_links on a hand-built copies table: links in label
    order (the first copy's link sorts last), the disk row after them, each
    link's figures from its own copies in table order; per step, (step, link)
    order, a copy outside every step in none."""
    from nsysparse.links import copies_table, link_bandwidth, step_links

    def memcpy(rows):
        return pd.DataFrame([{"start_ns": s, "end_ns": e, "dur_ns": e - s, "bytes": b, "pid": 1, "launch_tid": 2,
                              "device": 0, "stream": 7, "copy_kind": k, "src_kind": src, "dst_kind": dst,
                              "src_device": pd.NA, "dst_device": pd.NA} for s, e, b, k, src, dst in rows])

    m = memcpy([(0, 10, 100, "Host-to-Device", "Pinned", "Device"),     # H2D (pinned): step 0
                (5, 15, 50, "Device-to-Host", "Device", "Pageable"),    # D2H: step 0
                (20, 30, 200, "Host-to-Device", "Pinned", "Device"),    # H2D: step 1
                (22, 26, 40, "Host-to-Device", "Pinned", "Device"),     # H2D, under the one before: step 1
                (90, 100, 10, "Device-to-Host", "Device", "Pageable")])  # D2H: in no step
    io = pd.DataFrame({"start_ns": [1], "end_ns": [3], "dur_ns": [2], "pid": [1], "tid": [3], "bytes": [64]})
    copies = copies_table(m, io)
    links = link_bandwidth(copies, {})
    h2d, d2h = copies["link"].iloc[0], copies["link"].iloc[1]
    assert d2h < h2d  # so D2H comes first though an H2D copy is the table's first row
    assert links["link"].tolist()[:2] == [d2h, h2d] and links["copy_kind"].tolist()[-1] == "Disk-to-Host"
    by = links.set_index("link")
    assert by.loc[h2d, "count"] == 3 and by.loc[h2d, "bytes"] == 340 and by.loc[h2d, "sum_dur_ns"] == 24
    assert by.loc[h2d, "busy_ns"] == 20  # 0-10 and 20-30 (22-26 inside)
    assert by.loc[h2d, "gbps_effective"] == 340 / 20 and by.loc[h2d, "gbps_max"] == 20.0  # 200 B in 10 ns
    assert by.loc[d2h, "count"] == 2 and by.loc[d2h, "busy_ns"] == 20 and by.loc[d2h, "gbps_p50"] == 3.0  # 5 and 1
    step_of = np.array([0, 0, 1, 1, -1, 0])  # the disk read (last row) in step 0
    sl = step_links(copies, step_of, links)
    disk = links["link"].iloc[-1]
    assert list(zip(sl["step"], sl["link"])) == sorted([(0, d2h), (0, h2d), (0, disk), (1, h2d)])
    got = sl.set_index(["step", "link"])
    assert got.loc[(1, h2d), "bytes"] == 240 and got.loc[(1, h2d), "busy_ns"] == 10
    assert got.loc[(0, d2h), "bytes"] == 50 and got.loc[(0, disk), "busy_ns"] == 2
    assert got.loc[(1, h2d), "floor_ns"] == 240 / (340 / 20)
    assert str(sl["step"].dtype) == "int64" and str(sl["bytes"].dtype) == "int64"
    assert step_links(copies, np.full(len(copies), -1), links).empty
