"""NVTX GPU projection (METRICS.md) on hand-built traces, answers worked out by hand.

Agreement with nsys's ``nvtx_gpu_proj_trace`` on the real traces is in
test_nsys_agreement.py; here are the cases no fixture has: start/end ranges
ended on another thread (nsys drops them, we project them), overlapping ops
(busy = union, duration = envelope), graph runs, calls that straddle a range
end, other threads' and processes' ops, bytes and counts by type, and a
million polling ranges.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nsysparse import open_trace
from nsysparse.projection import PROJECTION_COLUMNS, nvtx_projection
from tests.builders import TraceBuilder


def project(b: TraceBuilder) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(projection indexed by range text, nvtx_ranges indexed by text)."""
    t = open_trace(b.write())
    p = nvtx_projection(t)
    assert list(p.columns) == PROJECTION_COLUMNS
    r = t.nvtx_ranges
    p = p.assign(text=r.set_index("range_id").loc[p["range_id"], "text"].to_numpy()).set_index("text")
    return p, r.set_index("text")


def test_cross_thread_start_end_range_is_projected(builder: TraceBuilder) -> None:
    """A start/end range begun on thread 101 and ended on 102 projects the ops
    launched on 101 inside it. nsys drops such ranges; we keep them."""
    builder.range("handoff", 1_000, 5_000, kind="start_end", tid=101, end_tid=102)
    builder.kernel(2_000, 2_300, launch=(1_100, 1_110), tid=101)
    builder.memcpy(2_500, 2_600, bytes=4_096, launch=(1_200, 1_210), tid=101)
    builder.kernel(3_000, 3_100, launch=(1_300, 1_310), tid=102)  # the ending thread: not ours
    p, r = project(builder)
    assert list(p.index) == ["handoff"]
    h = p.loc["handoff"]
    assert (h["tid"], r.loc["handoff", "end_tid"]) == (101, 102)
    # ops: [2000, 2300) and [2500, 2600)
    assert h["proj_start_ns"] == 2_000
    assert h["proj_dur_ns"] == 2_600 - 2_000
    assert h["proj_busy_ns"] == 300 + 100
    assert (h["num_gpu_ops"], h["kernels"], h["memcpys"], h["bytes"]) == (2, 1, 1, 4_096)
    assert (h["start_ns"], h["dur_ns"]) == (1_000, 4_000)


def test_nested_ranges_each_count_the_op(builder: TraceBuilder) -> None:
    builder.range("outer", 0, 10_000)
    builder.range("inner", 100, 5_000)
    builder.range("innermost", 150, 400)
    builder.range("late", 6_000, 6_500)
    builder.kernel(1_000, 1_200, launch=(200, 210))   # call in outer, inner, innermost
    builder.kernel(7_000, 7_500, launch=(6_100, 6_110))  # call in outer and late; runs after both
    p, r = project(builder)
    assert sorted(p.index) == ["inner", "innermost", "late", "outer"]
    assert p.loc["outer", "num_gpu_ops"] == 2
    assert (p.loc["outer", "proj_start_ns"], p.loc["outer", "proj_dur_ns"]) == (1_000, 6_500)
    assert p.loc["outer", "proj_busy_ns"] == 200 + 500
    for name in ("inner", "innermost"):
        assert (p.loc[name, "num_gpu_ops"], p.loc[name, "proj_start_ns"], p.loc[name, "proj_dur_ns"]) == (
            1, 1_000, 200)
    # projected time is GPU time: it may lie past the CPU range
    assert (p.loc["late", "num_gpu_ops"], p.loc["late", "proj_start_ns"], p.loc["late", "proj_dur_ns"]) == (
        1, 7_000, 500)
    assert p["depth"].to_dict() == {"outer": 0, "inner": 1, "innermost": 2, "late": 1}
    assert p.loc["inner", "parent"] == r.loc["outer", "range_id"]
    assert p.loc["innermost", "parent"] == r.loc["inner", "range_id"]


def test_range_without_ops_is_absent(builder: TraceBuilder) -> None:
    builder.range("idle", 0, 100)
    builder.range("busy", 200, 300)
    builder.kernel(400, 500, launch=(210, 220))
    p, _ = project(builder)
    assert list(p.index) == ["busy"]


def test_overlapping_ops_busy_is_union_duration_is_envelope(builder: TraceBuilder) -> None:
    builder.range("step", 0, 10_000)
    builder.kernel(1_000, 1_500, launch=(10, 20), stream=7)
    builder.kernel(1_200, 2_000, launch=(30, 40), stream=8)   # overlaps the first on another stream
    builder.memcpy(1_900, 2_100, bytes=8, launch=(50, 60), stream=9)  # overlaps the second
    builder.kernel(3_000, 3_100, launch=(70, 80))
    p, _ = project(builder)
    s = p.loc["step"]
    # union: [1000, 2100) + [3000, 3100) = 1100 + 100; envelope: 3100 - 1000
    assert s["proj_busy_ns"] == 1_200
    assert s["proj_dur_ns"] == 2_100
    assert s["proj_start_ns"] == 1_000
    assert s["num_gpu_ops"] == 4
    assert s["proj_busy_ns"] < (500 + 800 + 200 + 100)  # union < sum when ops overlap


def test_ops_launched_on_another_thread_or_process_are_not_attributed(builder: TraceBuilder) -> None:
    builder.range("step", 0, 10_000, pid=100, tid=100)
    builder.kernel(1_000, 1_100, launch=(100, 110), pid=100, tid=101)  # same process, other thread
    builder.kernel(2_000, 2_100, launch=(200, 210), pid=200, tid=100)  # same tid number, other process
    builder.kernel(3_000, 3_100, launch=(300, 310), pid=100, tid=100)  # ours
    p, _ = project(builder)
    s = p.loc["step"]
    assert (s["num_gpu_ops"], s["proj_start_ns"], s["proj_dur_ns"]) == (1, 3_000, 100)


def test_correlation_ids_collide_across_processes(builder: TraceBuilder) -> None:
    """Both processes number calls from 1: each op joins its own process's call."""
    builder.range("parent_step", 0, 1_000, pid=100)
    builder.range("child_step", 5_000, 6_000, pid=200)
    c1 = builder.kernel(8_000, 8_100, launch=(100, 110), pid=100)
    c2 = builder.kernel(9_000, 9_300, launch=(5_100, 5_110), pid=200)
    assert c1 == c2 == 1
    p, _ = project(builder)
    assert (p.loc["parent_step", "proj_start_ns"], p.loc["parent_step", "proj_dur_ns"]) == (8_000, 100)
    assert (p.loc["child_step", "proj_start_ns"], p.loc["child_step", "proj_dur_ns"]) == (9_000, 300)
    assert (p.loc["child_step", "pid"], p.loc["parent_step", "pid"]) == (200, 100)


def test_graph_run_counts_as_one_op(builder: TraceBuilder) -> None:
    builder.range("step", 0, 10_000)
    builder.graph_run(1_000, 4_000, launch=(100, 150))
    builder.memcpy(4_100, 4_200, bytes=49_152, copy_kind="Device-to-Host", launch=(200, 210))
    p, _ = project(builder)
    s = p.loc["step"]
    assert (s["num_gpu_ops"], s["graph_runs"], s["kernels"], s["memcpys"]) == (2, 1, 0, 1)
    assert (s["proj_start_ns"], s["proj_dur_ns"], s["proj_busy_ns"]) == (1_000, 3_200, 3_000 + 100)


def test_call_straddling_a_start_end_range_is_not_attributed(builder: TraceBuilder) -> None:
    """A call must start and end inside the range: start/end ranges can end while
    a call of their thread is still running."""
    builder.range("window", 1_000, 2_000, kind="start_end")
    builder.kernel(5_000, 5_100, launch=(1_900, 2_100))  # starts inside, ends after
    builder.kernel(6_000, 6_100, launch=(900, 1_100))    # starts before, ends inside
    builder.kernel(7_000, 7_050, launch=(1_500, 1_600))  # inside: the only one
    p, _ = project(builder)
    w = p.loc["window"]
    assert (w["num_gpu_ops"], w["proj_start_ns"], w["proj_dur_ns"]) == (1, 7_000, 50)


def test_call_on_the_range_bounds_is_inside(builder: TraceBuilder) -> None:
    """Bounds are inclusive: a call starting at the range start and one ending at
    its end were made inside it."""
    builder.range("r", 1_000, 2_000, kind="start_end")
    builder.kernel(3_000, 3_100, launch=(1_000, 1_010))
    builder.kernel(4_000, 4_100, launch=(1_990, 2_000))
    p, _ = project(builder)
    assert p.loc["r", "num_gpu_ops"] == 2


def test_bytes_and_counts_by_type(builder: TraceBuilder) -> None:
    builder.range("step", 0, 100_000)
    builder.kernel(1_000, 1_100, launch=(10, 20))
    builder.kernel(1_100, 1_200, launch=(30, 40))
    builder.memcpy(2_000, 2_100, bytes=10, launch=(50, 60))
    builder.memcpy(2_100, 2_200, bytes=20, copy_kind="Device-to-Host", launch=(70, 80))
    builder.memcpy(2_200, 2_300, bytes=30, copy_kind="Device-to-Device", launch=(90, 100))
    builder.memset(3_000, 3_050, bytes=1_000, launch=(110, 120))  # memset bytes are not moved bytes
    builder.graph_run(4_000, 5_000, launch=(130, 140))
    p, _ = project(builder)
    s = p.loc["step"]
    assert (s["kernels"], s["memcpys"], s["memsets"], s["graph_runs"]) == (2, 3, 1, 1)
    assert s["num_gpu_ops"] == 7
    assert s["bytes"] == 60
    assert (s["proj_start_ns"], s["proj_dur_ns"]) == (1_000, 4_000)
    assert s["proj_busy_ns"] == 200 + 300 + 50 + 1_000


def test_ops_of_one_call_count_once(builder: TraceBuilder) -> None:
    """NumGPUOps counts distinct correlation ids."""
    builder.range("step", 0, 10_000)
    c = builder.api("cudaMemcpy2DAsync_v3020", 100, 110)
    builder.memcpy(1_000, 1_100, bytes=5, corr=c)
    builder.memcpy(1_200, 1_300, bytes=7, corr=c)
    p, _ = project(builder)
    s = p.loc["step"]
    assert (s["num_gpu_ops"], s["memcpys"], s["bytes"], s["proj_busy_ns"]) == (1, 2, 12, 200)


def test_calls_launched_at_one_moment_count_by_correlation_id(builder: TraceBuilder) -> None:
    """Two calls on one thread that start at the same nanosecond: the ops of call
    ``a`` (a kernel and a copy, in two tables) and of call ``b`` (a kernel) come
    in table order k(a), k(b), copy(a); the launch-time ties are put in correlation
    id order, so ``a``'s ops are adjacent and count once: 2 ops, not 3."""
    builder.range("step", 0, 10_000)
    a = builder.api("cudaGraphLaunch_v10000", 100, 110)
    b = builder.api("cudaLaunchKernel_v7000", 100, 120)
    builder.kernel(1_000, 1_100, corr=a)
    builder.kernel(1_200, 1_300, corr=b)
    builder.memcpy(1_400, 1_500, bytes=9, corr=a)
    p, _ = project(builder)
    s = p.loc["step"]
    assert (s["num_gpu_ops"], s["kernels"], s["memcpys"], s["bytes"]) == (2, 2, 1, 9)
    assert (s["proj_start_ns"], s["proj_dur_ns"], s["proj_busy_ns"]) == (1_000, 500, 300)


def test_empty_projection_has_columns(builder: TraceBuilder) -> None:
    builder.range("idle", 0, 100)
    builder.kernel(400, 500, launch=(200, 210))
    p = nvtx_projection(open_trace(builder.write()))
    assert p.empty and list(p.columns) == PROJECTION_COLUMNS


# ---- random well-formed traces -------------------------------------------------------

op = st.tuples(st.integers(0, 5_000), st.integers(1, 2_000), st.integers(0, 9_900))  # start, dur, call at


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op, min_size=1, max_size=12))
def test_random_ops_under_one_range(tmp_path_factory, ops) -> None:
    b = TraceBuilder(tmp_path_factory.mktemp("h") / "t.sqlite")
    b.range("step", 0, 10_000)
    for start, dur, call in ops:
        b.kernel(start, start + dur, launch=(call, call + 50))
    p, _ = project(b)
    s = p.loc["step"]
    starts = np.array([o[0] for o in ops])
    ends = starts + np.array([o[1] for o in ops])
    covered = np.zeros(ends.max() + 1, dtype=bool)
    for a, e in zip(starts, ends):
        covered[a:e] = True
    assert s["num_gpu_ops"] == len(ops)
    assert s["proj_start_ns"] == starts.min()
    assert s["proj_dur_ns"] == ends.max() - starts.min()
    assert s["proj_busy_ns"] == covered.sum()
    assert s["proj_busy_ns"] <= min(s["proj_dur_ns"], (ends - starts).sum())


# ---- a million polling ranges ----------------------------------------------------------

N_POLL = 1_000_000


def test_million_polling_ranges_load_and_project(builder: TraceBuilder) -> None:
    """A fetch thread's idle task queue fires a polling range a million times: the
    loader and the projection must stay vectorised (not a timed test)."""
    starts = np.arange(N_POLL, dtype=np.int64) * 200 + 1_000
    builder.ranges("task_queue_pop", starts, starts + 100, tid=101, domain="moe")
    end = int(starts[-1]) + 1_000
    builder.range("step", 0, end, tid=100, domain="moe")
    builder.kernel(end - 500, end - 400, launch=(10, 20), tid=100)
    hits = np.arange(0, N_POLL, 100_000)  # 10 polls launch a copy each, from the fetch thread
    for i in hits:
        s = int(starts[i])
        builder.memcpy(s + 50, s + 90, bytes=1 << 20, launch=(s + 10, s + 20), tid=101)
    t = open_trace(builder.write())
    r = t.nvtx_ranges
    assert len(r) == N_POLL + 1
    polls = r[r["text"] == "task_queue_pop"]
    assert len(polls) == N_POLL and (polls["depth"] == 0).all() and (polls["dur_ns"] == 100).all()
    assert (polls["name"] == "moe:task_queue_pop").all()
    p = nvtx_projection(t)
    assert len(p) == len(hits) + 1
    proj_polls = p[p["tid"] == 101]
    assert proj_polls["start_ns"].tolist() == starts[hits].tolist()
    assert (proj_polls["proj_start_ns"] == proj_polls["start_ns"] + 50).all()
    assert (proj_polls["proj_dur_ns"] == 40).all() and (proj_polls["bytes"] == 1 << 20).all()
    step = p[p["tid"] == 100].iloc[0]
    assert (step["num_gpu_ops"], step["proj_start_ns"]) == (1, end - 500)


def test_projection_in_small_blocks_equals_one_block(monkeypatch) -> None:
    """The (range, op) pairs are expanded a block of ranges at a time; blocks of
    seven pairs (ranges split across the cuts, nested ranges, a block holding one
    range bigger than a block) give the same table as one block."""
    import nsysparse.projection as P
    from tests.scale_digest import DATA

    for name in ("offload_disk", "graphs", "edge"):
        t = open_trace(DATA / f"{name}.sqlite")
        whole = nvtx_projection(t)
        monkeypatch.setattr(P, "PAIRS_PER_BLOCK", 7)
        pieces = nvtx_projection(t)
        monkeypatch.undo()
        assert len(whole) > 0
        pd.testing.assert_frame_equal(pieces, whole)


def test_changes_and_ties_a_stretch_at_a_time_equal_the_whole(monkeypatch) -> None:
    """_changes_and_ties reads the sorted rows a stretch at a time: on random keys and
    starts, whatever the stretch (1 row, a few, all), the run changes and the ties
    are those of the whole sorted arrays, worked out here by hand."""
    import numpy as np

    from nsysparse import projection as P

    rng = np.random.default_rng(1)
    for n in (0, 1, 2, 5, 17, 1000):
        key = rng.integers(0, 3, n).astype(np.int64)
        start = rng.integers(0, n // 3 + 2, n).astype(np.int64)
        order = np.lexsort((start, key))
        ks, ss = key[order], start[order]
        want_changes = [i for i in range(1, n) if ks[i] != ks[i - 1]]
        want_ties = [i for i in range(n - 1) if ks[i] == ks[i + 1] and ss[i] == ss[i + 1]]
        for stretch in (1, 2, 7, 1 << 20):
            monkeypatch.setattr(P, "STRETCH", stretch)
            changes, ties = P._changes_and_ties(key, start, order)
            assert changes.tolist() == want_changes and ties.tolist() == want_ties, (n, stretch)
