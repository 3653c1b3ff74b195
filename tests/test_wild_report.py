"""The report side of traces from the wild: what the trace did not record is
unknown, steps without a step range belong to the thread that calls CUDA, and
a chart never costs the report. Tiny traces built here, answers by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nsysparse import open_trace
from nsysparse.cli import main
from nsysparse.render import charts
from nsysparse.report import build_report


def test_no_kernel_table_but_launches_means_gpu_idle_is_unknown(builder, tmp_path: Path, capsys) -> None:
    for i in range(5):
        builder.api("cudaLaunchKernel_v7000", 1_000 + 100 * i, 1_050 + 100 * i)
    builder.memcpy(3_000, 3_400, bytes=4_096, launch=(2_900, 2_950))
    path = builder.write()
    r = build_report(open_trace(path))
    assert r.summary["gpu_idle_ratio"] is None and r.summary["unrecorded"] == ["kernels"]
    assert r.tables["steps"]["gpu_idle_ratio"].isna().all()
    assert any("GPU idle is unknown" in n for n in r.notes)
    assert main(["report", str(path), "--out", str(tmp_path / "o"), "--no-charts"]) == 0
    text = capsys.readouterr().out
    assert "GPU idle, no kernel running" in text and "n/a" in text.split("GPU idle, no kernel running")[1].splitlines()[0]
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["gpu_idle_ratio"] is None


def test_no_kernels_and_no_launches_is_a_measured_idle(builder) -> None:
    builder.memcpy(3_000, 3_400, bytes=4_096, launch=(1_000, 1_100))
    r = build_report(open_trace(builder.write()))
    assert r.summary["unrecorded"] == [] and r.summary["gpu_idle_ratio"] == 1.0


def test_whole_span_step_is_on_the_thread_that_calls_cuda(builder) -> None:
    # the main thread (tid = pid = 100) makes one call; worker 207 does the work and syncs
    builder.api("cudaGetDevice_v3020", 1_000, 1_010)
    c = builder.api("cudaLaunchKernel_v7000", 2_000, 2_100, tid=207)
    builder.kernel(2_200, 2_700, corr=c)
    builder.api("cudaStreamSynchronize_v3020", 2_100, 2_800, tid=207)
    builder.api("cudaLaunchKernel_v7000", 9_000, 9_100, tid=207)
    r = build_report(open_trace(builder.write()))
    st = r.tables["steps"].iloc[0]
    assert (int(st["pid"]), int(st["tid"])) == (100, 207)
    assert (int(st["start_ns"]), int(st["end_ns"])) == (1_000, 9_100)
    assert int(st["sync_ns"]) == 700 and r.summary["sync_share"] == pytest.approx(700 / 8_100)
    assert any("on thread 207 of process 100" in n for n in r.notes)


def test_one_tiny_memset_far_from_the_rest_still_charts(builder, tmp_path: Path, capsys) -> None:
    builder.api("cudaFree_v3020", 1_000, 2_000)
    builder.memset(64_000_000, 64_001_500, bytes=64, launch=(63_990_000, 63_999_000))
    builder.api("cudaDeviceSynchronize_v3020", 64_000_000, 64_002_000)
    path = builder.write()
    assert main(["report", str(path), "--out", str(tmp_path / "o")]) == 0
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert {"timeline.png", "steps.png", "links.png", "gpu_busy.png"} <= set(manifest["files"])


def test_a_chart_that_fails_becomes_a_note(builder, tmp_path: Path, monkeypatch, capsys) -> None:
    builder.memcpy(3_000, 3_400, bytes=4_096, launch=(1_000, 1_100))
    path = builder.write()

    def broken(report):
        raise RuntimeError("raster overflow")

    monkeypatch.setitem(charts.CHARTS, "links.png", broken)
    assert main(["report", str(path), "--out", str(tmp_path / "o")]) == 0
    out = tmp_path / "o"
    note = "chart links.png could not be drawn (RuntimeError: raster overflow); the tables are complete"
    assert note in json.loads((out / "summary.json").read_text())["notes"]
    assert note in json.loads((out / "manifest.json").read_text())["notes"]
    assert not (out / "links.png").exists() and (out / "steps.png").exists() and (out / "links.parquet").exists()
    assert f"note: {note}" in capsys.readouterr().out


def test_a_lone_fill_with_no_kernel_or_copy_is_no_measure_of_gpu_idle(builder) -> None:
    # the class of an external export whose only GPU work is one 1.5 µs memset
    builder.api("cudaMalloc_v3020", 1_000, 2_000)
    builder.memset(64_000_000, 64_001_500, bytes=64, launch=(63_990_000, 63_999_000))
    r = build_report(open_trace(builder.write()))
    assert r.summary["gpu_idle_ratio"] is None and r.summary["unrecorded"] == ["kernels"]
    assert any(n.startswith("the trace records no kernel and no copy: GPU idle is unknown") for n in r.notes)
