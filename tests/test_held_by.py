"""What held each wait (held_by.py): tiny hand-built cases, then the engine's
disk-mode traces, where the fetch thread's disk_to_cpu / cpu_to_gpu must be named."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from nsysparse import open_trace
from nsysparse.held_by import NONE, held_by_table, wait_holders
from nsysparse.report import build_report

DATA = Path(__file__).parent / "data"
STEPS = pd.DataFrame({"step": [0], "pid": [1], "tid": [1], "start_ns": [0], "end_ns": [10_000], "dur_ns": [10_000]})


def ranges(rows: list[tuple[int, str, int, int, int, int | None]]) -> pd.DataFrame:
    """(range_id, text, tid, start, end, parent)."""
    df = pd.DataFrame(rows, columns=["range_id", "text", "tid", "start_ns", "end_ns", "parent"])
    df["pid"] = 1
    df["dur_ns"] = df["end_ns"] - df["start_ns"]
    df["parent"] = df["parent"].astype("Int64")
    return df


NO_OPS = pd.DataFrame({"pid": pd.Series(dtype="int64"), "start_ns": pd.Series(dtype="int64"),
                       "end_ns": pd.Series(dtype="int64"), "name": pd.Series(dtype=object)})
NO_CALLS = pd.DataFrame({"pid": pd.Series(dtype="int64"), "tid": pd.Series(dtype="int64"), "start_ns": pd.Series(dtype="int64"),
                         "end_ns": pd.Series(dtype="int64"), "name": pd.Series(dtype=object), "dur_ns": pd.Series(dtype="int64")})


def holders(r: pd.DataFrame, gpu=NO_OPS, calls=NO_CALLS, syncs=None) -> pd.DataFrame:
    waits = r[r["text"] == "wait"]
    return wait_holders(STEPS, waits, r, gpu, calls, syncs)


def test_the_fetch_range_that_ends_last_holds_the_wait() -> None:
    r = ranges([
        (0, "wait", 1, 1_000, 5_000, None),
        (1, "fetch_loop", 2, 0, 100_000, None),       # a lifetime range: ends long after, not a candidate
        (2, "disk_to_cpu", 2, 500, 3_000, 1),
        (3, "cpu_to_gpu", 2, 3_100, 4_990, 1),       # ends just before the wait: it released it
    ])
    h = holders(r)
    assert h[["holder", "holder_kind", "ns"]].values.tolist() == [["cpu_to_gpu", "range", 4_000]]
    assert int(h["tid"].iloc[0]) == 2


def test_a_range_closed_just_after_the_signal_still_counts() -> None:
    r = ranges([(0, "wait", 1, 1_000, 5_000, None), (1, "cpu_to_gpu", 2, 2_000, 5_015, None),
                (2, "disk_to_cpu", 2, 500, 1_900, None)])
    assert holders(r)["holder"].tolist() == ["cpu_to_gpu"]  # 15 µs after the wait's end: within the tolerance


def test_an_enclosing_range_names_its_child_that_overlapped_most() -> None:
    r = ranges([(0, "wait", 1, 1_000, 9_000, None), (1, "task_execute", 2, 900, 8_990, None),
                (2, "disk_to_cpu", 2, 950, 7_000, 1), (3, "cpu_to_gpu", 2, 7_100, 8_000, 1),
                (4, "cuda_stream_sync", 2, 8_000, 8_900, 1)])
    assert holders(r)["holder"].tolist() == ["disk_to_cpu"]


def test_a_sync_range_only_relays_what_it_waited_on() -> None:
    r = ranges([(0, "wait", 1, 1_000, 9_000, None), (1, "cpu_to_gpu", 2, 2_000, 6_000, None),
                (2, "cuda_stream_sync", 2, 6_000, 8_990, None)])
    syncs = pd.DataFrame({"pid": [1], "tid": [2], "start_ns": [6_010], "end_ns": [8_980], "base_name": ["cudaStreamSynchronize"]})
    assert holders(r, syncs=syncs)["holder"].tolist() == ["cpu_to_gpu"]
    assert holders(r)["holder"].tolist() == ["cuda_stream_sync"]  # without the sync call it is work like any other


def test_without_ranges_a_gpu_op_then_a_call_and_else_none() -> None:
    r = ranges([(0, "wait", 1, 1_000, 5_000, None), (1, "wait", 1, 6_000, 7_000, None)])
    gpu = pd.DataFrame({"pid": [1], "start_ns": [1_500], "end_ns": [4_900], "name": ["copy H2D pinned"]})
    h = holders(r, gpu=gpu)
    assert h["holder"].tolist() == ["copy H2D pinned", NONE] and h["holder_kind"].tolist() == ["gpu", "none"]
    t = held_by_table(h)
    assert t[["holder", "ns"]].values.tolist() == [["copy H2D pinned", 4_000], [NONE, 1_000]]


def test_nested_waits_are_one_wait() -> None:
    r = ranges([(0, "wait", 1, 1_000, 5_000, None), (1, "wait", 1, 2_000, 3_000, 0), (2, "read", 2, 500, 4_000, None)])
    h = holders(r)
    assert h["ns"].tolist() == [4_000] and h["holder"].tolist() == ["read"]


@pytest.mark.parametrize("name", ["runs/deepseek_disk_event", "runs/deepseek_disk_stream", "offload_disk"])
def test_disk_mode_waits_are_held_by_the_fetch_thread(name: str) -> None:
    r = build_report(open_trace(DATA / f"{name}.sqlite"))
    held, st = r.tables["held_by"], r.tables["steps"]
    per_step = held.groupby("step")["ns"].sum()
    assert per_step.reindex(st["step"]).fillna(0).astype("int64").tolist() == st["wait_ns"].tolist()
    live = held[held["step"].isin(st.loc[~st["warmup"], "step"])]
    top = live.groupby("holder")["ns"].sum().sort_values(ascending=False)
    assert top.index[0] in ("disk_to_cpu", "cpu_to_gpu")
    assert top.iloc[0] >= 0.9 * top.sum()
    fetch_tid = int(live.loc[live["holder"] == top.index[0], "tid"].iloc[0])
    names = r.tables["nvtx_ranges"]
    assert {"disk_to_cpu", "cpu_to_gpu"} <= set(names.loc[names["tid"] == fetch_tid, "text"])
    assert fetch_tid not in set(st["tid"])
