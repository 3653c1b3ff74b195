"""The exclusive breakdown (breakdown.py): a tiny input in, the expected table
out (worked by hand, one case per category and per priority conflict); a
property test on random traces and on every fixture; the what-if against the
engine's measured disk and host runs; and accel_qwen against plain SQL."""

from __future__ import annotations

import json
import lzma
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nsysparse import intervals as iv
from nsysparse import open_trace
from nsysparse.breakdown import CATEGORIES, segments, step_breakdown
from nsysparse.report import build_report

DATA = Path(__file__).parent / "data"
PID, TID = 1, 1


def frame(rows: list[tuple], cols: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=cols)
    for c in cols:
        if c in ("pid", "tid", "start_ns", "end_ns", "step", "dur_ns"):
            df[c] = df[c].astype("int64")
    return df


def ivs(rows: list[tuple[int, int]], pid: int = PID, tid: int | None = TID, **extra) -> pd.DataFrame:
    cols = ["start_ns", "end_ns", "pid"] + (["tid"] if tid is not None else [])
    data = [(s, e, pid) + ((tid,) if tid is not None else ()) for s, e in rows]
    df = frame(data, cols)
    for k, v in extra.items():
        df[k] = v
    return df


def calls(rows: list[tuple[str, int, int]], tid: int = TID) -> pd.DataFrame:
    return pd.DataFrame({"pid": PID, "tid": tid, "start_ns": [r[1] for r in rows], "end_ns": [r[2] for r in rows],
                         "base_name": [r[0] for r in rows]}).astype({"start_ns": "int64", "end_ns": "int64"})


def copies(rows: list[tuple[int, int, str, str]]) -> pd.DataFrame:
    return pd.DataFrame({"pid": PID, "start_ns": [r[0] for r in rows], "end_ns": [r[1] for r in rows],
                         "copy_kind": [r[2] for r in rows], "src_kind": [r[3] for r in rows]}).astype(
        {"start_ns": "int64", "end_ns": "int64"})


STEP = frame([(0, PID, TID, 0, 1000, 1000)], ["step", "pid", "tid", "start_ns", "end_ns", "dur_ns"])
E = ivs([])


def breakdown(steps=STEP, compute=None, api=None, waits=None, cps=None, memsets=None, disk=None, os_calls=None):
    compute = compute if compute is not None else ivs([], tid=None)
    api = api if api is not None else calls([])
    waits = waits if waits is not None else E
    cps = cps if cps is not None else copies([])
    memsets = memsets if memsets is not None else ivs([], tid=None)
    disk = disk if disk is not None else E
    os_calls = os_calls if os_calls is not None else ivs([]).assign(name=pd.Series(dtype=object))
    segs = segments(steps, compute, api, waits, cps, memsets, disk, os_calls)
    bd = step_breakdown(steps, segs)
    out = {}
    for step, g in bd.groupby("step"):
        out[int(step)] = {c: int(n) for c, n in zip(g["category"], g["ns"]) if n}
    return out if len(out) > 1 else out[0]


def test_nothing_traced_is_host_cpu() -> None:
    assert breakdown() == {"host_cpu": 1000}


def test_a_kernel_is_gpu_compute() -> None:
    assert breakdown(compute=ivs([(100, 300)], tid=None)) == {"gpu_compute": 200, "host_cpu": 800}


def test_kernel_beats_a_blocked_copy() -> None:
    got = breakdown(compute=ivs([(300, 600)], tid=None), api=calls([("cudaStreamSynchronize", 0, 500)]),
                    cps=copies([(0, 400, "Host-to-Device", "Pinned")]))
    assert got == {"copy_h2d_pinned": 300, "gpu_compute": 300, "host_cpu": 400}


def test_pinned_before_pageable_in_a_wait() -> None:
    got = breakdown(waits=ivs([(0, 1000)]),
                    cps=copies([(100, 400, "Host-to-Device", "Pinned"), (200, 600, "Host-to-Device", "Pageable")]))
    assert got == {"copy_h2d_pinned": 300, "copy_h2d_pageable": 200, "host_wait_other": 500}


def test_a_copy_beats_a_disk_read() -> None:
    got = breakdown(waits=ivs([(0, 1000)]), disk=ivs([(0, 800)], tid=9),
                    cps=copies([(500, 700, "Device-to-Host", "Device")]))
    assert got == {"copy_d2h": 200, "disk_read": 600, "host_wait_other": 200}


def test_disk_read_beats_a_copy_call() -> None:
    got = breakdown(api=calls([("cudaMemcpyAsync", 0, 500)]), disk=ivs([(200, 400)], tid=9))
    assert got == {"disk_read": 200, "copy_call": 300, "host_cpu": 500}


def test_a_busy_host_hides_copies_in_flight() -> None:
    got = breakdown(api=calls([("cudaLaunchKernel", 100, 200)]), cps=copies([(0, 1000, "Host-to-Device", "Pinned")]),
                    disk=ivs([(0, 1000)], tid=9))
    assert got == {"launch": 100, "host_cpu": 900}


def test_launch_beats_an_os_call() -> None:
    got = breakdown(api=calls([("cudaLaunchKernel", 100, 200)]),
                    os_calls=ivs([(0, 500)]).assign(name="pthread_cond_wait"))
    assert got == {"launch": 100, "os_call": 400, "host_cpu": 500}


def test_nested_waits_count_once_and_a_sync_inside_one_is_sync_idle() -> None:
    got = breakdown(waits=ivs([(100, 600), (200, 300)]), api=calls([("cudaStreamSynchronize", 400, 500)]))
    assert got == {"host_wait_other": 400, "sync_idle": 100, "host_cpu": 500}


def test_a_memset_in_flight_while_synchronising() -> None:
    got = breakdown(api=calls([("cudaDeviceSynchronize", 0, 1000)]), memsets=ivs([(0, 100)], tid=None))
    assert got == {"memset": 100, "sync_idle": 900}


def test_a_blocking_memcpy_is_a_copy_call_then_its_copy() -> None:
    got = breakdown(api=calls([("cudaMemcpy", 0, 600)]), cps=copies([(300, 500, "Host-to-Device", "Pageable")]))
    assert got == {"copy_call": 400, "copy_h2d_pageable": 200, "host_cpu": 400}


def test_d2d_p2p_in_a_sync() -> None:
    got = breakdown(api=calls([("cudaStreamSynchronize", 0, 1000)]),
                    cps=copies([(0, 300, "Device-to-Device", "Device"), (200, 500, "Peer-to-Peer", "Device")]))
    assert got == {"copy_d2d": 300, "copy_p2p": 200, "sync_idle": 500}


def test_another_process_and_another_thread_do_not_count() -> None:
    other = ivs([(0, 1000)], pid=2, tid=None)
    got = breakdown(compute=other, api=calls([("cudaStreamSynchronize", 0, 1000)], tid=7))
    assert got == {"host_cpu": 1000}


def test_steps_on_two_threads_each_get_their_own() -> None:
    steps = frame([(0, PID, TID, 0, 1000, 1000), (1, PID, 2, 500, 1500, 1000)],
                  ["step", "pid", "tid", "start_ns", "end_ns", "dur_ns"])
    got = breakdown(steps=steps, waits=ivs([(500, 1500)], tid=2), compute=ivs([(900, 1100)], tid=None))
    assert got == {0: {"gpu_compute": 100, "host_cpu": 900}, 1: {"gpu_compute": 200, "host_wait_other": 800}}


def test_every_category_is_listed_for_every_step_in_order() -> None:
    segs = segments(STEP, ivs([], tid=None), calls([]), E, copies([]), ivs([], tid=None), E,
                    ivs([]).assign(name=pd.Series(dtype=object)))
    bd = step_breakdown(STEP, segs)
    assert bd["category"].tolist() == list(CATEGORIES) and bd["ns"].sum() == 1000
    assert bd.loc[bd["category"] == "host_cpu", "share"].item() == 1.0


# ---- properties ---------------------------------------------------------------

def _random_intervals(draw, n, lo=0, hi=10_000):
    starts = draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n))
    lens = draw(st.lists(st.integers(0, 3_000), min_size=n, max_size=n))
    return [(s, s + d) for s, d in zip(starts, lens)]


@st.composite
def random_trace(draw):
    bounds = sorted(draw(st.lists(st.integers(0, 12_000), min_size=2, max_size=8, unique=True)))
    steps = frame([(i, PID, TID, a, b, b - a) for i, (a, b) in enumerate(zip(bounds[::2], bounds[1::2]))],
                  ["step", "pid", "tid", "start_ns", "end_ns", "dur_ns"])
    kinds = ["cudaLaunchKernel", "cudaStreamSynchronize", "cudaMemcpyAsync", "cudaMemcpy", "cudaEventRecord"]
    api = calls([(draw(st.sampled_from(kinds)), s, e) for s, e in _random_intervals(draw, draw(st.integers(0, 6)))])
    cps = copies([(s, e, draw(st.sampled_from(["Host-to-Device", "Device-to-Host", "Device-to-Device", "Peer-to-Peer"])),
                   draw(st.sampled_from(["Pinned", "Pageable", "Device"])))
                  for s, e in _random_intervals(draw, draw(st.integers(0, 5)))])
    compute = ivs(_random_intervals(draw, draw(st.integers(0, 5))), tid=None)
    waits = ivs(_random_intervals(draw, draw(st.integers(0, 4))))
    disk = ivs(_random_intervals(draw, draw(st.integers(0, 3))), tid=5)
    memsets = ivs(_random_intervals(draw, draw(st.integers(0, 2))), tid=None)
    os_calls = ivs(_random_intervals(draw, draw(st.integers(0, 3)))).assign(name="read")
    return steps, compute, api, waits, cps, memsets, disk, os_calls


@settings(max_examples=150, deadline=None)
@given(random_trace())
def test_categories_partition_each_step(t) -> None:
    steps, compute = t[0], t[1]
    bd = step_breakdown(steps, segments(*t))
    assert (bd["ns"] >= 0).all()
    per = bd.groupby("step")["ns"].sum()
    assert per.reindex(steps["step"]).tolist() == steps["dur_ns"].tolist()
    gpu = bd[bd["category"] == "gpu_compute"].set_index("step")["ns"]
    want = iv.clipped_union_per_window(compute["start_ns"], compute["end_ns"], steps["start_ns"], steps["end_ns"])
    assert gpu.reindex(steps["step"]).tolist() == want.tolist()


TRACES = sorted(DATA.glob("*.sqlite")) + sorted((DATA / "runs").glob("*.sqlite"))


@pytest.fixture(scope="module")
def reports() -> dict[str, object]:
    return {}


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.stem)
def test_fixtures_partition_and_gpu_compute_is_the_kernel_union(path: Path, reports) -> None:
    r = build_report(open_trace(path))
    reports[path.stem] = r
    bd, st_ = r.tables["breakdown"], r.tables["steps"]
    per = bd.groupby("step")["ns"].sum()
    assert per.reindex(st_["step"]).tolist() == st_["dur_ns"].tolist()
    assert len(bd) == len(st_) * len(CATEGORIES)
    if r.tables["kernels"]["pid"].nunique() + r.tables["graph_runs"]["pid"].nunique() <= 1 or \
            set(r.tables["kernels"]["pid"]) | set(r.tables["graph_runs"]["pid"]) <= set(st_["pid"]):
        gpu = bd[bd["category"] == "gpu_compute"].set_index("step")["ns"]
        assert gpu.reindex(st_["step"]).tolist() == st_["gpu_busy_kernel_ns"].astype("int64").tolist()
    s = r.summary
    if s["steps"] > s["warmup"]:
        assert sum(s["breakdown"].values()) == pytest.approx(s["step_ms_mean"], rel=1e-12)
        assert sum(t["share"] for t in s["targets"]) <= 1 + 1e-12
        for t in s["targets"]:
            assert t["what"] in CATEGORIES and t["what"] != "gpu_compute"
            assert t["saving_ms"] is None or 0 <= t["saving_ms"] <= t["ms_per_step"] + 1e-12


# ---- what-if against measurement ------------------------------------------------

STREAM_CONTENTION = (
    "with stream sync, the main thread's own work (host_cpu) is 15.7 ms a step in disk mode against 8.5 ms in host "
    "mode: the fetch thread, busy reading, competes for the interpreter. No trace row shows that contention, so "
    "disk_read alone under-predicts the saving (25.9 ms predicted, 15.1 ms measured)")


@pytest.mark.parametrize("sync", ["event", pytest.param("stream", marks=pytest.mark.xfail(reason=STREAM_CONTENTION,
                                                                                           strict=True))])
def test_disk_read_predicts_the_host_mode_step(sync: str) -> None:
    disk = build_report(open_trace(DATA / "runs" / f"deepseek_disk_{sync}.sqlite")).summary
    host = build_report(open_trace(DATA / "runs" / f"deepseek_host_{sync}.sqlite")).summary
    predicted = disk["step_ms_mean"] - disk["breakdown"]["disk_read"]
    measured = host["step_ms_mean"]
    saving = next(t["saving_ms"] for t in disk["targets"] if t["what"] == "disk_read")
    assert saving == pytest.approx(disk["breakdown"]["disk_read"])
    msg = f"{sync} sync: disk step {disk['step_ms_mean']:.2f} ms - disk_read {disk['breakdown']['disk_read']:.2f} ms " \
          f"predicts {predicted:.2f} ms; host mode measured {measured:.2f} ms"
    assert abs(predicted - measured) <= 0.5 * measured, msg


# ---- accel_qwen: a third-party offloading engine, against plain SQL ---------------

@pytest.fixture(scope="module")
def accel_qwen(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("accel") / "accel_qwen.sqlite"
    path.write_bytes(lzma.decompress((DATA / "accel_qwen.sqlite.xz").read_bytes()))
    return path


def _sql_truth(path: Path, lo: int, hi: int) -> tuple[int, int]:
    """Plain SQL + a hand union: |pageable H2D copies in flight| and |those ∪ the
    main thread's memcpy calls| inside [lo, hi)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    kind = dict(con.execute("SELECT id, label FROM ENUM_CUDA_MEM_KIND"))
    oper = dict(con.execute("SELECT id, label FROM ENUM_CUDA_MEMCPY_OPER"))
    cps = [(s, e) for s, e, ck, sk in con.execute("SELECT start, end, copyKind, srcKind FROM CUPTI_ACTIVITY_KIND_MEMCPY")
           if oper[ck] == "Host-to-Device" and kind[sk] == "Pageable"]
    calls = [(s, e) for s, e in con.execute(
        "SELECT r.start, r.end FROM CUPTI_ACTIVITY_KIND_RUNTIME r JOIN StringIds s ON s.id = r.nameId "
        "WHERE s.value LIKE 'cudaMemcpy%'")]
    con.close()

    def union_len(xs):
        xs = sorted((max(s, lo), min(e, hi)) for s, e in xs if e > lo and s < hi)
        total, cur_s, cur_e = 0, None, None
        for s, e in xs:
            if cur_e is None or s > cur_e:
                total += (cur_e - cur_s) if cur_e is not None else 0
                cur_s, cur_e = s, e
            else:
                cur_e = max(cur_e, e)
        return total + ((cur_e - cur_s) if cur_e is not None else 0)

    return union_len(cps), union_len(cps + calls)


def test_accel_qwen_is_half_pageable_copies_half_host(accel_qwen: Path) -> None:
    r = build_report(open_trace(accel_qwen))
    truth = json.loads((DATA / "accel_qwen.truth.json").read_text())
    st_ = r.tables["steps"]
    wide = r.tables["breakdown"].pivot(index="step", columns="category", values="ns")
    live = st_[~st_["warmup"]]
    assert len(live) == truth["steps"] - 1
    for row in live.itertuples():
        b = wide.loc[row.step]
        in_flight, with_calls = _sql_truth(accel_qwen, row.start_ns, row.end_ns)
        blocked = b["copy_h2d_pageable"] + b["copy_call"]
        assert 0.4 * row.dur_ns < blocked < 0.6 * row.dur_ns  # about half of each step
        assert b["copy_h2d_pageable"] <= in_flight  # exclusive time never exceeds the copies' union
        assert abs(blocked - with_calls) <= 0.05 * with_calls  # the host inside copy calls or waiting on them
        rest = row.dur_ns - blocked
        assert b["host_cpu"] > 0.8 * rest  # host work is most of the rest
    s = r.summary
    pageable = next(t for t in s["targets"] if t["what"] == "copy_h2d_pageable")
    per_step_bytes = truth["param_bytes"]
    expected = pageable["ms_per_step"] - per_step_bytes / 64.0 / 1e6  # the pinned peak of an H200 (PCIe Gen5)
    assert pageable["saving_ms"] == pytest.approx(expected, rel=0.02)
    assert pageable["lever"].startswith("pin the host memory")


def test_a_tiny_offloading_trace_end_to_end(builder) -> None:
    """A tiny SQLite export through the loader and build_report, worked by hand.

    Main thread 100, step [0, 10_000): launches a kernel [1_000, 1_100) that runs
    [1_200, 2_200); waits [3_000, 9_000) for an expert the fetch thread 101 reads
    from disk [2_500, 6_000) (a 4 MB `disk_to_cpu` range) and copies, pinned, on
    the GPU [6_500, 8_500); the fetch thread's `cpu_to_gpu` range ends at 8_990.
    Then a stream sync [9_000, 9_500) with nothing in flight.
    """
    b = builder
    b.gpu(0)
    b.range("step", 0, 10_000, domain="moe")
    c = b.api("cudaLaunchKernel_v7000", 1_000, 1_100)
    b.kernel(1_200, 2_200, corr=c)
    b.range("expert_wait_barrier", 3_000, 9_000, domain="moe")
    b.api("cudaStreamSynchronize_v3020", 9_000, 9_500)
    b.range("disk_to_cpu", 2_500, 6_000, tid=101, domain="moe", payload=4_000_000)
    b.range("cpu_to_gpu", 6_100, 8_990, tid=101, domain="moe", payload=4_000_000)
    b.memcpy(6_500, 8_500, bytes=4_000_000, src_kind="Pinned", launch=(6_200, 6_300), tid=101)
    r = build_report(open_trace(b.write()))
    bd = r.tables["breakdown"].set_index("category")["ns"]
    want = {
        "gpu_compute": 1_000,        # [1_200, 2_200)
        "launch": 100,               # [1_000, 1_100)
        "host_cpu": 1_000 + 100 + 800 + 500,  # [0,1_000) [1_100,1_200) [2_200,3_000) [9_500,10_000)
        "disk_read": 3_000,          # blocked [3_000, 6_000) while the disk read runs
        "host_wait_other": 500 + 500,  # [6_000, 6_500) and [8_500, 9_000): nothing in flight
        "copy_h2d_pinned": 2_000,    # [6_500, 8_500)
        "sync_idle": 500,            # [9_000, 9_500)
    }
    assert {k: int(v) for k, v in bd.items() if v} == want
    assert sum(want.values()) == 10_000
    step = r.tables["steps"].iloc[0]
    assert (int(step["kernels"]), float(step["kernel_mean_ns"])) == (1, 1_000.0)  # one kernel, [1_200, 2_200)
    held = r.tables["held_by"]
    assert held[["holder", "ns"]].values.tolist() == [["cpu_to_gpu", 6_000]]
    assert int(held["tid"].iloc[0]) == 101
    s = r.summary
    disk = next(t for t in s["targets"] if t["what"] == "disk_read")
    assert disk["ms_per_step"] == pytest.approx(0.003) and disk["saving_ms"] == pytest.approx(0.003)
    pinned = next(t for t in s["targets"] if t["what"] == "copy_h2d_pinned")
    # 4 MB at the H200's 64 GB/s H2D peak need 62.5 µs: more than the 2 µs blocked, so nothing to save
    assert pinned["saving_ms"] == 0.0
    assert [t["what"] for t in s["targets"]][:3] == ["disk_read", "host_cpu", "copy_h2d_pinned"]


@pytest.mark.parametrize("name", ["offload_disk", "hf_olmoe", "edge"])
def test_sweep_in_small_slices_and_blocks_equals_one_slice(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep reads each slice of time from a contiguous run of rows (blocks of
    BLOCK rows by their running maximum end; the calls through RowWindows, with
    their long rows aside). Slices of 64 boundaries and blocks of 3 rows (calls
    and copies across slice edges, many slices per step, many calls long) give
    the same breakdown, timeline bands and OS-call names as one slice per thread."""
    import nsysparse.breakdown as B
    import nsysparse.row_windows as RW
    from nsysparse.report import build_report
    from tests.scale_digest import DATA

    with open_trace(DATA / f"{name}.sqlite") as t:
        whole = build_report(t)
    monkeypatch.setattr(B, "SLICE_BOUNDS", 64)
    monkeypatch.setattr(B, "BLOCK", 3)
    for k, v in (("BLOCK", 3), ("REACH", 1), ("INDEX_ROWS", 12)):
        monkeypatch.setattr(RW, k, v)
    with open_trace(DATA / f"{name}.sqlite") as t:
        sliced = build_report(t)
    assert len(whole.tables["breakdown"]) > 0
    for table in ("breakdown", "breakdown_segments"):
        pd.testing.assert_frame_equal(sliced.tables[table], whole.tables[table])
    assert sliced.summary["targets"] == whole.summary["targets"]
