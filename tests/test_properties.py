"""Property tests (issue 6, item 4): the interval algebra, and random well-formed
tiny traces run through the whole report.

Intervals are checked against a brute-force coverage array on a small integer
grid: a set of half-open ``[s, e)`` intervals covers time ``t`` when some
``s <= t < e``. Traces are built with :class:`tests.builders.TraceBuilder`
from a few random steps, waits, sync calls, kernels and copies (some launched
from a second thread, some spilling past their step), and every report must
keep its invariants: shares of time in [0, 1], memcpy bytes conserved into the
links, each projected range equal to the envelope of the ops its thread
launched inside it, and step bytes never more than the trace's bytes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nsysparse import intervals as iv
from nsysparse import open_trace
from nsysparse.report import Settings, build_report
from tests.builders import TraceBuilder

GRID = 60  # times 0..GRID-1

# ---- interval algebra ---------------------------------------------------------------------


@st.composite
def interval_lists(draw, max_size: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Unsorted, overlapping, possibly empty or inverted intervals on the grid."""
    pairs = draw(st.lists(st.tuples(st.integers(0, GRID), st.integers(0, GRID)), max_size=max_size))
    s = np.array([a for a, _ in pairs], dtype=np.int64)
    e = np.array([b for _, b in pairs], dtype=np.int64)
    return s, e


def coverage(s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Boolean array over the grid: which unit cells [t, t+1) some interval covers."""
    cov = np.zeros(GRID + 1, dtype=bool)
    for a, b in zip(s.tolist(), e.tolist()):
        if b > a:
            cov[a:b] = True
    return cov


def is_normalised(s: np.ndarray, e: np.ndarray) -> bool:
    return bool(np.all(e > s) and np.all(s[1:] > e[:-1]))


@given(interval_lists())
def test_union_is_normalised_and_covers_the_same_cells(x):
    s, e = x
    us, ue = iv.union(s, e)
    assert is_normalised(us, ue)
    assert np.array_equal(coverage(us, ue), coverage(s, e))


@given(interval_lists())
def test_union_is_never_longer_than_the_sum(x):
    s, e = x
    assert iv.total(s, e) <= int(np.clip(e - s, 0, None).sum())


@given(interval_lists())
def test_union_is_idempotent(x):
    once = iv.union(*x)
    twice = iv.union(*once)
    assert all(np.array_equal(a, b) for a, b in zip(once, twice))


@given(interval_lists(), interval_lists())
def test_intersection_lies_within_both(a, b):
    s, e = iv.intersect(a, b)
    assert is_normalised(s, e) or s.size == 0
    ca, cb, ci = coverage(*a), coverage(*b), coverage(s, e)
    assert np.array_equal(ci, ca & cb)
    assert iv.total(s, e) <= min(iv.total(*a), iv.total(*b))


@given(interval_lists(), st.integers(0, GRID), st.integers(0, GRID))
def test_clip_lies_within_the_window(x, lo, hi):
    s, e = iv.clip(*x, lo, hi)
    assert np.all(s >= lo) and np.all(e <= hi) and np.all(e > s)
    window = np.zeros(GRID + 1, dtype=bool)
    window[lo:hi] = True
    assert np.array_equal(coverage(s, e), coverage(*x) & window)
    assert iv.total(s, e) <= iv.total(*x)


@given(interval_lists(), st.lists(st.integers(0, 3), min_size=64, max_size=64))
def test_grouped_total_equals_a_union_per_group(x, groups):
    s, e = x
    g = np.asarray(groups[: len(s)], dtype=np.int64)
    got = iv.grouped_total(g, s, e, 4)
    want = [iv.total(s[g == k], e[g == k]) for k in range(4)]
    assert got.tolist() == want


@given(interval_lists(), st.lists(st.tuples(st.integers(0, GRID), st.integers(0, GRID)), max_size=8))
def test_clipped_union_per_window_matches_brute_force(x, windows):
    ws = np.array([min(a, b) for a, b in windows], dtype=np.int64)
    we = np.array([max(a, b) for a, b in windows], dtype=np.int64)
    got = iv.clipped_union_per_window(*x, ws, we)
    cov = coverage(*x)
    want = [int(cov[a:b].sum()) for a, b in zip(ws.tolist(), we.tolist())]
    assert got.tolist() == want


@given(interval_lists(), interval_lists(), st.lists(st.integers(0, 1), min_size=12, max_size=12),
       st.lists(st.tuples(st.integers(0, GRID), st.integers(0, GRID), st.integers(0, 1)), max_size=6))
def test_clipped_union_by_thread_with_shared_intervals_matches_brute_force(own, shared, tids, windows):
    """Each window counts its own thread's intervals and the shared ones (the
    kernels, put in place among a thread's few by binary search, not a sort)."""
    s, e = own
    t = np.asarray(tids[: len(s)], dtype=np.int64)
    frame = pd.DataFrame({"start_ns": s, "end_ns": e, "pid": 1, "tid": t})
    w = pd.DataFrame({"start_ns": [min(a, b) for a, b, _ in windows], "end_ns": [max(a, b) for a, b, _ in windows],
                      "pid": 1, "tid": [k for _, _, k in windows]}, dtype=np.int64)
    got = iv.clipped_union_by_thread(frame, w, shared=shared)
    want = []
    for a, b, k in zip(w["start_ns"], w["end_ns"], w["tid"]):
        cov = coverage(s[t == k], e[t == k]) | coverage(*shared)
        want.append(int(cov[a:b].sum()))
    assert got.tolist() == want


# ---- random well-formed traces -------------------------------------------------------------

MAIN, FETCH = 100, 101  # tids: the process's main thread, a copy-issuing fetch thread
SHARES = ["bubble_ratio", "gpu_idle_ratio", "gpu_busy_any_ratio", "sync_share", "overlap_h2d_compute"]
COPY_KINDS = [("Host-to-Device", "Pinned", None), ("Host-to-Device", "Pageable", None), ("Device-to-Host", None, "Pinned")]


@st.composite
def trace_specs(draw) -> dict:
    """A recipe for a small trace: steps on the main thread, and inside each some
    wait ranges (possibly nested), sync calls, kernels and copies with their
    launching calls. GPU work may run past the step that launched it."""
    n_steps = draw(st.integers(1, 4))
    steps, t = [], 1_000
    for _ in range(n_steps):
        t += draw(st.integers(0, 2_000))
        dur = draw(st.integers(1_000, 10_000))
        steps.append((t, t + dur))
        t += dur
    events = []
    for s0, s1 in steps:
        for _ in range(draw(st.integers(0, 6))):
            kind = draw(st.sampled_from(["wait", "sync", "kernel", "copy", "fetch_copy"]))
            a = draw(st.integers(s0, s1 - 2))
            b = draw(st.integers(a + 1, s1))
            gpu_start = draw(st.integers(b, s1 + 3_000))
            gpu_dur = draw(st.integers(1, 3_000))
            events.append({
                "kind": kind, "a": a, "b": b, "gs": gpu_start, "ge": gpu_start + gpu_dur,
                "bytes": draw(st.integers(1, 1 << 24)), "copy": draw(st.sampled_from(COPY_KINDS)),
                "stream": draw(st.sampled_from([7, 8])),
            })
    return {"steps": steps, "events": events}


def build(spec: dict, path: Path) -> Path:
    b = TraceBuilder(path, pid=100)
    b.gpu()
    b.api("cudaGetDevice_v3020", 100, 200)  # CUDA activity in every trace: else it is not an export (exit 5)
    for s0, s1 in spec["steps"]:
        b.range("step", s0, s1)
    for ev in spec["events"]:
        a, bb = ev["a"], ev["b"]
        if ev["kind"] == "wait":
            b.range("expert_wait_barrier", a, bb)
        elif ev["kind"] == "sync":
            b.api("cudaStreamSynchronize_v3020", a, bb)
        elif ev["kind"] == "kernel":
            b.kernel(ev["gs"], ev["ge"], launch=(a, bb), stream=ev["stream"])
        else:
            copy_kind, src, dst = ev["copy"]
            tid = FETCH if ev["kind"] == "fetch_copy" else MAIN
            b.memcpy(ev["gs"], ev["ge"], bytes=ev["bytes"], copy_kind=copy_kind, src_kind=src, dst_kind=dst,
                     launch=(a, bb), tid=tid, stream=ev["stream"])
    return b.write()


def report_for(spec: dict):
    with tempfile.TemporaryDirectory() as tmp:
        trace = open_trace(build(spec, Path(tmp) / "t.sqlite"))
        try:
            return build_report(trace, Settings())
        finally:
            trace.close()


TRACE_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@TRACE_SETTINGS
@given(trace_specs())
def test_random_trace_invariants(spec):
    rep = report_for(spec)
    s, t = rep.summary, rep.tables

    # every share of time lies in [0, 1], overall and per step
    for key in SHARES:
        v = s[key]
        assert v is None or 0.0 <= v <= 1.0, (key, v)
    steps = t["steps"]
    assert len(steps) == len(spec["steps"])
    for col in ("bubble_ratio", "gpu_idle_ratio", "sync_share"):
        v = steps[col]
        if col == "gpu_idle_ratio" and "kernels" in s["unrecorded"]:  # no GPU op recorded: unknown, not 1
            assert v.isna().all() and s["gpu_idle_ratio"] is None
            continue
        assert v.between(0.0, 1.0).all(), (col, v.tolist())
    assert (steps["gpu_busy_kernel_ns"] <= steps["gpu_busy_any_ns"]).all()
    assert (steps["gpu_busy_any_ns"] <= steps["dur_ns"]).all()

    # bytes are conserved from memcpy rows into the links, count for count
    m, links = t["memcpy"], t["links"]
    copy_links = links[links["copy_kind"] != "Disk-to-Host"]
    assert int(copy_links["bytes"].sum()) == int(m["bytes"].sum())
    assert int(copy_links["count"].sum()) == len(m)
    assert (links["busy_ns"] <= links["sum_dur_ns"]).all()  # union never longer than the sum

    # per step bytes: attributed by time, never more than the trace's
    h2d = int(m.loc[m["copy_kind"] == "Host-to-Device", "bytes"].sum())
    d2h = int(m.loc[m["copy_kind"] == "Device-to-Host", "bytes"].sum())
    assert 0 <= int(steps["bytes_h2d"].sum()) <= h2d
    assert 0 <= int(steps["bytes_d2h"].sum()) <= d2h
    sl = t["step_links"]
    if len(sl):
        assert int(sl["bytes"].sum()) <= int(m["bytes"].sum())


@TRACE_SETTINGS
@given(trace_specs())
def test_projection_is_the_envelope_of_the_ops_each_range_launched(spec):
    rep = report_for(spec)
    t = rep.tables
    ops = pd.concat([t["kernels"].assign(op="kernel", bytes=0), t["memcpy"].assign(op="memcpy")], ignore_index=True)
    ranges = t["nvtx_ranges"]
    proj = t["projection"].set_index("range_id")
    for r in ranges.itertuples():
        mine = ops[(ops["pid"] == r.pid) & (ops["launch_tid"] == r.tid)
                   & (ops["api_start_ns"] >= r.start_ns) & (ops["api_end_ns"] <= r.end_ns)]
        if mine.empty:
            assert r.range_id not in proj.index  # ranges with no ops are absent
            continue
        p = proj.loc[r.range_id]
        assert p["proj_start_ns"] == mine["start_ns"].min()
        assert p["proj_start_ns"] + p["proj_dur_ns"] == mine["end_ns"].max()
        assert 0 < p["proj_busy_ns"] <= p["proj_dur_ns"]
        assert p["num_gpu_ops"] == mine["correlation_id"].nunique()
        assert p["bytes"] == int(mine["bytes"].sum())
    assert set(proj.index) <= set(ranges["range_id"])


def test_io_floor_share_is_at_most_one():
    spec = {"steps": [(1000, 2000)], "events": [
        {"kind": "copy", "a": 1000, "b": 1001, "gs": 1001, "ge": 2002, "bytes": 1,
         "copy": ("Host-to-Device", "Pinned", None), "stream": 7}]}
    assert report_for(spec).summary["io_floor_share"] <= 1.0
