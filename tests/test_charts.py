"""Charts: the four PNGs on real and hand-built traces, and the pure helpers behind them."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nsysparse import open_trace
from nsysparse.render.charts import style, timeline
from nsysparse.render.charts import (
    MAX_BARS, Lane, representative_step, step_breakdown, timeline_lanes, write_charts,
)
from nsysparse.gpu import Busy, bin_edges
from nsysparse.report import Report, build_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHART_FILES = ["timeline.png", "steps.png", "links.png", "gpu_busy.png"]
REAL = ["offload_disk", "graphs", "p2p", "hf_olmoe", "links", "edge"]

_reports: dict[str, Report] = {}


def report_of(name: str) -> Report:
    if name not in _reports:
        _reports[name] = build_report(open_trace(Path(__file__).parent / "data" / f"{name}.sqlite"))
    return _reports[name]


def assert_pngs(folder: Path, written: list[str], min_bytes: int = 10_000) -> None:
    assert written == CHART_FILES
    for name in written:
        data = (folder / name).read_bytes()
        assert data[:8] == PNG_MAGIC, name
        assert len(data) > min_bytes, f"{name} is only {len(data)} bytes"


# ---------------------------------------------------------------- real traces


@pytest.mark.parametrize("name", REAL)
def test_write_charts_on_real_traces(name: str, tmp_path: Path) -> None:
    written = write_charts(report_of(name), tmp_path)
    assert_pngs(tmp_path, written)


def test_charts_never_touch_pyplot(tmp_path: Path) -> None:
    # Figure + Agg canvas only: no global figure state, no GUI backend, nothing shown
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path; from nsysparse import open_trace; "
        "from nsysparse.report import build_report; from nsysparse.render.charts import write_charts; "
        f"write_charts(build_report(open_trace({str(Path(__file__).parent / 'data' / 'graphs.sqlite')!r})), Path({str(tmp_path)!r})); "
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'"
    )
    root = str(Path(__file__).resolve().parents[1])
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                          env={"PYTHONPATH": root, "MPLBACKEND": "TkAgg", "PATH": ""})
    assert done.returncode == 0, done.stderr


def test_representative_step_is_the_median_of_offload_disk() -> None:
    st = report_of("offload_disk").tables["steps"]
    # non-warm-up steps 1-4 last 11.72, 15.23, 10.59, 6.77 ms: the two middle ones
    # (10.59 and 11.72) are equally close to the median 11.15; the shorter is taken
    assert st["warmup"].tolist() == [True, False, False, False, False]
    assert st.set_index("step")["dur_ns"].to_dict() == {
        0: 235590094, 1: 11719689, 2: 15229401, 3: 10585992, 4: 6765951}
    assert int(representative_step(st)["step"]) == 3


def test_representative_step_is_the_median_of_hf_olmoe() -> None:
    st = report_of("hf_olmoe").tables["steps"]
    # five non-warm-up steps: 74.74, 73.95, 73.56, 71.51, 44.53 ms -> the median is step 3
    assert int(representative_step(st)["step"]) == 3
    assert int(representative_step(st)["dur_ns"]) == 73557602


def test_representative_step_hand_cases() -> None:
    def steps(durs: list[int], warm: int) -> pd.DataFrame:
        n = len(durs)
        return pd.DataFrame({"step": range(n), "warmup": [i < warm for i in range(n)], "pid": 1, "tid": 1,
                             "start_ns": np.concatenate(([0], np.cumsum(durs)))[:n], "dur_ns": durs})

    assert int(representative_step(steps([900, 50, 10, 30], warm=1))["step"]) == 3   # median of 50, 10, 30
    assert int(representative_step(steps([900, 40, 10, 30, 20], warm=1))["step"]) == 4  # lower median: 20 of 10,20,30,40
    assert int(representative_step(steps([5, 7], warm=2))["step"]) == 0  # all warm-up: all steps count
    assert representative_step(steps([], warm=0)) is None


@pytest.mark.parametrize("name", REAL)
def test_every_timeline_lane_has_an_item_in_the_step(name: str) -> None:
    r = report_of(name)
    step = representative_step(r.tables["steps"])
    lanes = timeline_lanes(r, step)
    assert lanes
    lo, hi = int(step["start_ns"]), int(step["end_ns"])
    for lane in lanes:
        assert len(lane) >= 1, lane.label
        assert ((lane.end > lane.start) & (lane.start >= lo) & (lane.end <= hi)).any(), lane.label
    labels = [ln.label for ln in lanes]
    assert len(labels) == len(set(labels))


def test_offload_disk_timeline_shows_the_fetch_thread_and_both_streams() -> None:
    r = report_of("offload_disk")
    lanes = timeline_lanes(r, representative_step(r.tables["steps"]))
    labels = [ln.label for ln in lanes]
    assert "GPU 0 · stream 7" in labels and "GPU 0 · stream 13" in labels
    assert any(ln.label.endswith("sync calls") for ln in lanes)
    fetch = [ln for ln in lanes if ln.kind == "thread"]
    texts = {t for ln in fetch for t in ln.text}
    assert {"disk_to_cpu", "cpu_to_gpu"} <= texts
    assert "gpu_fetch" not in texts  # the fetch loop's lifetime range spans the step: left out
    assert "step" not in {t for ln in lanes if ln.kind == "nvtx" for t in ln.text}
    stream13 = next(ln for ln in lanes if ln.label == "GPU 0 · stream 13")
    assert set(stream13.colour) == {style.LINK_COLOURS["H2D pinned"]}


def test_p2p_timeline_has_a_lane_per_device_stream() -> None:
    r = report_of("p2p")
    labels = [ln.label for ln in timeline_lanes(r, representative_step(r.tables["steps"]))]
    assert {"GPU 0 · stream 7", "GPU 1 · stream 15", "GPU 1 · stream 22"} <= set(labels)


def test_graph_runs_drawn_as_compute() -> None:
    r = report_of("graphs")
    lanes = timeline_lanes(r, representative_step(r.tables["steps"]))
    gpu = [ln for ln in lanes if ln.kind == "gpu"]
    assert any(t.startswith("graph ") for ln in gpu for t in ln.text)


def test_step_breakdown_parts_sum_to_the_step() -> None:
    from nsysparse.breakdown import CATEGORIES

    for name in ("offload_disk", "edge"):
        b = step_breakdown(report_of(name))
        assert (b[list(CATEGORIES)] >= 0).all().all()
        assert (b[list(CATEGORIES)].sum(axis=1) == b["dur_ns"]).all()
    st = report_of("offload_disk").tables["steps"]
    b = step_breakdown(report_of("offload_disk"))
    assert (b["gpu_compute"].to_numpy() == st["gpu_busy_kernel_ns"].to_numpy()).all()
    assert (b["disk_read"] > 0).all()


# ---------------------------------------------------------------- GPU busy binning


def test_busy_fraction_hand_built() -> None:
    edges = np.array([0, 100, 200, 300])
    # one kernel covering exactly half of the second bin
    assert Busy([100], [150]).fraction(edges).tolist() == [0.0, 0.5, 0.0]
    # overlapping kernels count once; one straddling two bins splits between them
    assert Busy([100, 120, 250], [150, 140, 350]).fraction(edges).tolist() == [0.0, 0.5, 0.5]
    assert Busy([0], [300]).fraction(edges).tolist() == [1.0, 1.0, 1.0]
    assert Busy([], []).fraction(edges).tolist() == [0.0, 0.0, 0.0]


def test_busy_fraction_matches_a_per_nanosecond_count() -> None:
    rng = np.random.default_rng(0)
    s = rng.integers(0, 10_000, 300)
    e = s + rng.integers(0, 200, 300)
    edges = bin_edges(0, 10_000, 37)
    covered = np.zeros(10_400, dtype=bool)
    for a, b in zip(s, e):
        covered[a:b] = True
    expect = [covered[lo:hi].mean() for lo, hi in zip(edges[:-1], edges[1:])]
    assert np.allclose(Busy(s, e).fraction(edges), expect)


def test_bin_edges() -> None:
    e = bin_edges(1000, 3000, 200)
    assert e[0] == 1000 and e[-1] == 3000 and e.size == 201 and (np.diff(e) > 0).all()
    assert bin_edges(0, 5, 200).tolist() == [0, 1, 2, 3, 4, 5]  # fewer ns than bins
    assert bin_edges(7, 7, 200).tolist() == [7, 8]


# ---------------------------------------------------------------- hand-built traces


def _charts(path: Path, out: Path) -> None:
    out.mkdir()
    assert_pngs(out, write_charts(build_report(open_trace(path)), out), min_bytes=3_000)


def test_no_step_ranges_no_nvtx(builder, tmp_path: Path) -> None:
    builder.gpu(0)
    for i in range(5):
        builder.kernel(10_000 + i * 2_000, 11_000 + i * 2_000, launch=(9_000 + i * 2_000, 9_100 + i * 2_000))
    builder.memcpy(20_000, 21_000, bytes=1 << 20, launch=(19_000, 19_100))
    builder.api("cudaDeviceSynchronize_v3020", 19_200, 21_100)
    path = builder.write()
    r = build_report(open_trace(path))
    assert r.tables["nvtx_ranges"].empty
    lanes = timeline_lanes(r, representative_step(r.tables["steps"]))
    assert [ln.label for ln in lanes] == ["where the step goes", "tid 100 · sync calls", "GPU 0 · stream 7"]
    _charts(path, tmp_path / "out")


def test_no_kernels_no_memcpy(builder, tmp_path: Path) -> None:
    builder.range("step", 1_000, 5_000)
    builder.range("step", 5_000, 9_000)
    builder.api("cudaStreamSynchronize_v3020", 2_000, 3_000)
    builder.api("cudaStreamSynchronize_v3020", 6_000, 7_000)
    _charts(builder.write(), tmp_path / "out")


def test_graph_runs_memset_and_two_gpus(builder, tmp_path: Path) -> None:
    builder.gpu(0)
    builder.gpu(1)
    for i in range(4):
        t = 10_000 * i
        builder.range("step", t + 100, t + 9_000)
        builder.graph_run(t + 1_000, t + 4_000, launch=(t + 200, t + 300))
        builder.memset(t + 4_500, t + 5_000, bytes=4096, launch=(t + 400, t + 450))
        builder.memcpy(t + 5_000, t + 6_000, bytes=1 << 22, copy_kind="Peer-to-Peer", device=1, stream=9,
                       src_device=1, dst_device=0, launch=(t + 500, t + 600))
        builder.kernel(t + 6_000, t + 8_000, device=1, stream=9, launch=(t + 700, t + 800))
    path = builder.write()
    r = build_report(open_trace(path))
    lanes = timeline_lanes(r, representative_step(r.tables["steps"]))
    assert {"GPU 0 · stream 7", "GPU 1 · stream 9"} <= {ln.label for ln in lanes}
    _charts(path, tmp_path / "out")


def test_big_trace_is_capped_and_fast(builder, tmp_path: Path) -> None:
    n = 20_000
    builder.range("step", 0, 100 * n + 10_000)
    starts = np.arange(n) * 100 + 1_000
    for s in starts:
        builder.kernel(int(s), int(s) + 60)
    # a polling range firing 200,000 times on another thread
    poll = np.arange(200_000) * 10 + 500
    builder.ranges("task_queue_pop", poll, poll + 5, tid=101)
    path = builder.write()
    t0 = time.perf_counter()
    _charts(path, tmp_path / "out")
    assert time.perf_counter() - t0 < 60


def test_dense_lane_draws_merged_rectangles() -> None:
    from matplotlib.figure import Figure

    n = 100_000
    s = np.arange(n, dtype=np.int64) * 10
    lane = Lane("dense", s, s + 5, np.full(n, style.KERNEL, dtype=object), np.full(n, "k", dtype=object), "gpu")
    fig = Figure()
    ax = fig.add_subplot()
    timeline._draw_lane(ax, 0, lane, 0, int(s[-1]) + 5, px_ns=(n * 10) / 1000)
    drawn = sum(len(c.get_paths()) for c in ax.collections)
    assert 0 < drawn <= MAX_BARS
    assert not ax.texts  # no labels on a merged lane
