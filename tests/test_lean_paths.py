"""The lean ways a long trace's report takes (tests/test_scale.py checks whole
reports): each equals the plain computation it stands in for, on tables built
here with ties, gaps and several processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nsysparse import schema as S
from nsysparse import steps as steps_mod
from nsysparse.held_by import NONE, TOLERANCE_NS, wait_holders
from nsysparse import kernels_summary
from nsysparse.kernels_summary import first_positions, group_quantiles, grouped_sums
from nsysparse.parquet import write_parquet
from nsysparse.steps import assign_to_steps
from nsysparse.tables import Spilled, Tables

QS = (0.5, 0.95, 0.1, 0.0, 1.0)


@pytest.mark.parametrize("seed", range(40))
def test_group_quantiles_are_pandas_groupby_quantiles(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, groups = int(rng.integers(1, 5_000)), int(rng.integers(1, 40))
    codes = rng.integers(0, groups, n)
    values = rng.integers(0, 10 ** int(rng.integers(1, 12)), n)
    if seed % 3 == 0:
        values = np.repeat(values[: n // 4 + 1], 4)[:n]  # many ties
    if seed % 5 == 0:
        values = values * (1 << 40)  # too large to share a sort key with the code: the other sort
    got = group_quantiles(codes, values, groups + 2, QS)  # two groups with no value
    want = pd.Series(values).groupby(codes).quantile(list(QS)).unstack()
    assert np.array_equal(got[want.index.to_numpy()], want.to_numpy())
    empty = np.setdiff1d(np.arange(groups + 2), want.index.to_numpy())
    assert np.isnan(got[empty]).all() and empty.size >= 2


@pytest.mark.parametrize("seed", range(20))
def test_grouped_sums_and_first_positions_are_pandas_groupbys(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sums in stretches of 64 rows (fewer where the values are large: each float
    sum exact), against pandas' int64 sums; a group's first row against ``first``."""
    monkeypatch.setattr(kernels_summary, "SUM_ROWS", 64)
    rng = np.random.default_rng(seed)
    n, groups = int(rng.integers(1, 3_000)), int(rng.integers(1, 30))
    codes = rng.integers(0, groups, n).astype(np.int16)
    values = rng.integers(0, 10 ** int(rng.integers(1, 16)), n)  # up to 1e15 ns: stretches of a few rows
    if seed % 4 == 0:
        values = values - values.max() // 2  # negative ones too
    where = rng.random(n) < 0.7
    got, masked = grouped_sums(codes, values, groups + 1), grouped_sums(codes, values, groups + 1, where=where)
    s = pd.Series(values)
    want = s.groupby(codes).sum()
    want_masked = s.where(where, 0).groupby(codes).sum()
    assert got.dtype == np.int64 and got[groups] == 0 and masked[groups] == 0  # a group with no row
    assert np.array_equal(got[want.index.to_numpy()], want.to_numpy())
    assert np.array_equal(masked[want_masked.index.to_numpy()], want_masked.to_numpy())
    first = first_positions(codes, groups + 1)
    firsts = pd.Series(np.arange(n)).groupby(codes).first()
    assert np.array_equal(first[firsts.index.to_numpy()], firsts.to_numpy()) and first[groups] == -1


def test_a_frame_sorted_a_column_at_a_time_equals_sort_values() -> None:
    rng = np.random.default_rng(7)
    n = 1_000
    df = pd.DataFrame({
        "start_ns": rng.integers(0, 50, n),  # ties: their order kept
        "row": np.arange(n),
        "name": pd.Categorical(rng.choice(["a", "b", None], n)),
        "rv": pd.array(rng.choice([1, 2, None], n), dtype="Int64"),
        "text": rng.choice(["x", "y"], n).astype(object),
    })
    want = df.sort_values("start_ns", kind="stable", ignore_index=True)
    got = S.sorted_by_start(df.copy(), consume=True)
    pd.testing.assert_frame_equal(got, want)
    taken = df.copy()
    S.sorted_by_start(taken, consume=True)
    assert list(taken.columns) == []  # its columns were taken as the sorted ones were made
    ordered = want.copy()
    assert S.sorted_by_start(ordered, consume=True) is not None and list(ordered.columns) == list(df.columns)  # in order: untouched
    # ties of the start in descending order of the end (NVTX ranges: the enclosing one first), then in theirs
    df["end_ns"] = df["start_ns"] + rng.integers(0, 3, n)
    want = df.sort_values(["start_ns", "end_ns"], ascending=[True, False], kind="stable", ignore_index=True)
    pd.testing.assert_frame_equal(S.sorted_by_start(df.copy(), desc="end_ns", consume=True), want)
    pd.testing.assert_frame_equal(S.sorted_by_start(df.copy(), desc="end_ns"), want)


def test_moments_assigned_a_stretch_at_a_time_are_assigned_as_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    steps = pd.DataFrame({"step": [0, 1, 2, 3], "pid": [1, 1, 2, 1], "tid": [1, 1, 5, 1],
                          "start_ns": [0, 100, 50, 150], "end_ns": [100, 200, 120, 160]})
    rng = np.random.default_rng(3)
    t = rng.integers(-10, 260, 500)
    pid = rng.choice([1, 2, 3], 500)  # process 3 has no steps: any step of any process
    whole = assign_to_steps(steps, t, pid)
    # worked out by hand for a few: (t, pid) -> step
    for ti, pi, want in [(5, 1, 0), (155, 1, 3), (120, 1, 1), (170, 1, 1), (60, 2, 2), (130, 2, -1), (60, 3, 2), (250, 1, -1)]:
        assert assign_to_steps(steps, np.array([ti]), np.array([pi]))[0] == want
    monkeypatch.setattr(steps_mod, "_ASSIGN_ROWS", 7)
    assert np.array_equal(assign_to_steps(steps, t, pid), whole)


def _brute_holder(w: tuple[int, int], ops: list[pd.DataFrame], calls: pd.DataFrame, tid: int) -> tuple[str, str]:
    """The GPU op, else the call on another thread, that ended last in (ws, we + tol];
    ties: the later row (the op tables in order)."""
    ws, we = w
    rows = [(e, i, n) for i, (e, n) in enumerate((e, n) for df in ops for e, n in zip(df["end_ns"], df["name"]))
            if ws < e <= we + TOLERANCE_NS]
    if rows:
        return max(rows)[2], "gpu"
    c = [(e, i, n) for i, (e, n, t) in enumerate(zip(calls["end_ns"], calls["name"], calls["tid"]))
         if t != tid and ws < e <= we + TOLERANCE_NS]
    return (max(c)[2], "call") if c else (NONE, "none")


@pytest.mark.parametrize("seed", range(12))
def test_what_held_each_wait_is_the_last_to_end_in_it(seed: int) -> None:
    """Only the GPU ops and calls that end inside a wait are kept as candidates: the
    holders are those a search of every op and every call finds."""
    rng = np.random.default_rng(seed)
    span = 2_000_000
    starts = np.sort(rng.choice(span, 40, replace=False))
    waits_s, waits_e = starts[::2], starts[::2] + rng.integers(1_000, 30_000, 20)
    keep = np.r_[True, waits_s[1:] > waits_e[:-1]]  # disjoint waits
    waits = pd.DataFrame({"range_id": np.arange(keep.sum()), "text": "wait", "pid": 1, "tid": 1,
                          "start_ns": waits_s[keep], "end_ns": waits_e[keep]})
    waits["dur_ns"] = waits["end_ns"] - waits["start_ns"]
    waits["parent"] = pd.array([None] * len(waits), dtype="Int64")
    steps = pd.DataFrame({"step": [0], "pid": [1], "tid": [1], "start_ns": [0], "end_ns": [span + 100_000], "dur_ns": [span + 100_000]})

    def ops(n: int, names: list[str]) -> pd.DataFrame:
        end = rng.integers(0, span, n) // 500 * 500  # coarse: ties between ops
        return pd.DataFrame({"pid": rng.choice([1, 2], n), "end_ns": end, "name": rng.choice(names, n)})

    parts = [ops(300, ["k1", "k2"]), ops(50, ["copy H2D pinned"])]
    if seed % 2:
        parts = [p[p["pid"] == 2] for p in parts]  # no op of the waiting process: the calls hold
    n = 400
    cs = np.sort(rng.integers(0, span, n))
    calls = pd.DataFrame({"pid": 1, "tid": rng.choice([1, 2, 3], n), "start_ns": cs,
                          "end_ns": cs + rng.integers(0, 3_000, n) // 100 * 100,
                          "name": rng.choice(["cudaMemcpyAsync", "cudaEventSynchronize"], n), "dur_ns": 0})
    calls["name"] = calls["name"].astype("category")
    got = wait_holders(steps, waits, waits, parts, calls)
    mine = [p[p["pid"] == 1] for p in parts]
    want = [_brute_holder((s, e), mine, calls, 1) for s, e in zip(waits["start_ns"], waits["end_ns"])]
    assert list(zip(got["holder"], got["holder_kind"])) == want
    one = pd.concat(parts, ignore_index=True)  # the ops as one frame: the same holders
    assert wait_holders(steps, waits, waits, one, calls)["holder"].tolist() == got["holder"].tolist()


def test_a_spilled_tables_window_reads_only_its_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    start = np.sort(rng.integers(0, 10_000, 200))
    df = pd.DataFrame({"start_ns": start, "end_ns": start + rng.integers(0, 400, 200),
                       "short_name": pd.Categorical(rng.choice(["a", "b"], 200)),
                       "graph_node_id": pd.array(rng.choice([1, None], 200), dtype="Int64")})
    path = tmp_path / "k.parquet"
    write_parquet(df, path, {"k": "v"}, chunk_rows=16)  # 13 row groups
    spilled = Tables({"k": Spilled(path, len(df), dict(df.dtypes.items()))})
    held = Tables({"k": df})
    for lo, hi in [(0, 50), (2_000, 2_500), (5_000, 5_001), (9_990, 20_000), (-5, 0), (20_000, 30_000)]:
        want = held.window("k", lo, hi).reset_index(drop=True)
        assert len(want) == ((df["start_ns"] < hi) & (df["end_ns"] > lo)).sum()
        pd.testing.assert_frame_equal(spilled.window("k", lo, hi), want)


@pytest.mark.parametrize("seed", range(10))
def test_a_moment_goes_to_the_latest_started_step_that_holds_it(seed: int) -> None:
    """Steps of one process on several threads overlap (a long one around short ones):
    each moment's step is the latest-started of those holding it, as a search of
    every step finds."""
    rng = np.random.default_rng(seed)
    n = 60
    start = rng.choice(100_000, n, replace=False)
    steps = pd.DataFrame({"step": np.arange(n), "pid": rng.choice([1, 2], n), "tid": rng.choice([1, 2, 3], n),
                          "start_ns": start, "end_ns": start + rng.choice([50, 500, 20_000], n)})
    t = rng.integers(-100, 125_000, 3_000)
    pid = rng.choice([1, 2, 3], 3_000)
    got = assign_to_steps(steps, t, pid)
    for ti, pi, g in zip(t, pid, got):
        mine = steps[steps["pid"] == pi] if pi in (1, 2) else steps
        holds = mine[(mine["start_ns"] <= ti) & (ti < mine["end_ns"])]
        assert g == (int(holds.loc[holds["start_ns"].idxmax(), "step"]) if len(holds) else -1)


def test_parquet_files_encode_integers_as_deltas_and_read_back_the_same(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 300_000
    start = np.cumsum(rng.integers(0, 5_000, n))
    df = pd.DataFrame({
        "start_ns": start, "end_ns": start + rng.integers(0, 10_000, n),
        "pid": np.full(n, 574), "code": pd.array(np.where(rng.random(n) < 0.1, None, rng.integers(-5, 5, n)), dtype="Int64"),
        "name": pd.Categorical.from_codes(rng.integers(0, 3, n), categories=pd.Index(["a", "bb", "ccc"], dtype=object)),
        "text": np.where(rng.random(n) < 0.5, "x", None).astype(object),
        "payload": rng.random(n), "closed": rng.random(n) < 0.5,
    })
    path = tmp_path / "t.parquet"
    write_parquet(df, path, {"k": "v"}, chunk_rows=100_000)
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups == 3
    enc = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i).encodings
           for i in range(meta.num_columns)}
    for c in ("start_ns", "end_ns", "pid", "code"):
        assert "DELTA_BINARY_PACKED" in enc[c] and "RLE_DICTIONARY" not in enc[c], c
    for c in ("name", "text", "payload"):
        assert "RLE_DICTIONARY" in enc[c], c
    back = pq.read_table(path).to_pandas()
    assert back["name"].astype(object).tolist() == df["name"].astype(object).tolist()
    for c in ("start_ns", "end_ns", "pid", "payload", "closed"):
        assert np.array_equal(back[c].to_numpy(), df[c].to_numpy()), c
    assert back["code"].equals(df["code"])
    assert back["text"].isna().equals(df["text"].isna())
    # deltas of times in order take a fraction of the plain 8 bytes a value
    assert meta.row_group(0).column(0).total_compressed_size < 100_000 * 8 / 3
    # min/max in every row group but of the text columns: the times' are each group's own
    col = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i) for i in range(meta.num_columns)}
    assert (col["start_ns"].statistics.min, col["start_ns"].statistics.max) == (start[0], start[99_999])
    for c in ("end_ns", "pid", "code", "payload", "closed"):
        assert col[c].is_stats_set, c
    for c in ("name", "text"):
        assert not col[c].is_stats_set, c


def _batches(n_batches: int, rows: int = 10) -> list:
    import pyarrow as pa

    return [pa.record_batch({"i": np.arange(k * rows, (k + 1) * rows)}) for k in range(n_batches)]


def test_read_ahead_hands_over_every_batch_in_order_then_ends() -> None:
    from nsysparse.reader import ReadAhead

    ahead = ReadAhead(iter(_batches(50)), depth=2)
    got = []
    while True:
        try:
            got.append(ahead.next())
        except StopIteration:
            break
    with pytest.raises(StopIteration):
        ahead.next()  # the end stays the end
    ahead.close()
    assert np.array_equal(np.concatenate([b.column(0).to_numpy() for b in got]), np.arange(500))


def test_read_ahead_raises_what_reading_raised_after_the_batches_before_it() -> None:
    import pyarrow as pa

    from nsysparse.reader import ReadAhead

    def batches():
        yield from _batches(3)
        yield pa.record_batch({"s": pa.array([b"ok", b"\xff\xfe"], pa.binary()).cast(pa.string(), safe=False)})

    ahead = ReadAhead(batches())
    assert [ahead.next().num_rows for _ in range(3)] == [10, 10, 10]
    with pytest.raises(pa.ArrowInvalid):  # broken UTF-8 fails the full validation
        ahead.next()
    ahead.close()


def test_read_ahead_closed_early_stops_reading() -> None:
    from nsysparse.reader import ReadAhead

    pulled = []

    def batches():
        for b in _batches(1000):
            pulled.append(b)
            yield b

    ahead = ReadAhead(batches(), depth=2)
    ahead.next()
    ahead.close()
    assert not ahead._thread.is_alive()
    assert len(pulled) <= 5  # one handed over, two waiting, one being put: not the thousand


@pytest.mark.parametrize("seed", range(30))
def test_grouped_total_of_grouped_ordered_intervals_is_the_union_per_group(seed: int) -> None:
    """The path with no sort (groups contiguous, starts ascending in each) and the sorting one agree with a union per group."""
    from nsysparse import intervals as iv

    rng = np.random.default_rng(seed)
    n, groups = int(rng.integers(1, 400)), int(rng.integers(1, 25))
    g, s = rng.integers(0, groups, n), rng.integers(0, 2_000, n)
    e = s + rng.integers(0, 150, n)
    if seed % 2:
        order = np.lexsort((s, g))
        g, s, e = g[order], s[order], e[order]
    want = np.zeros(groups + 1, np.int64)
    for k in range(groups + 1):
        if (g == k).any():
            us, ue = iv.union(s[g == k], e[g == k])
            want[k] = int((ue - us).sum())
    assert np.array_equal(iv.grouped_total(g, s, e, groups + 1), want)


def test_read_ahead_iterated_hands_over_the_batches_then_raises_failed_of_the_error() -> None:
    import pyarrow as pa

    from nsysparse.reader import CannotStream, ReadAhead

    def batches():
        yield from _batches(4)
        yield pa.record_batch({"s": pa.array([b"\xff"], pa.binary()).cast(pa.string(), safe=False)})

    got = []
    with pytest.raises(CannotStream, match="driver: .*UTF8"):
        with ReadAhead(batches(), failed=lambda exc: CannotStream(f"driver: {exc}")) as ahead:
            for b in ahead:
                got.append(b.num_rows)
    assert got == [10, 10, 10, 10]
    assert not ahead._thread.is_alive()  # leaving the with stopped it


@pytest.mark.parametrize("capacity", [None, -5, 1, 25, 30, 1000, 1 << 62])
def test_columns_written_into_their_arrays_equal_the_batches_whatever_the_capacity(capacity: int | None) -> None:
    """_Columns sizes its arrays by the rows expected, grows them past it, and its
    values and null masks are the batches' rows in order: NULLs only in a later
    batch, an integer column, a float one, text kept as Arrow chunks."""
    import pyarrow as pa

    from nsysparse.reader import _Columns

    schema = pa.schema([("i", pa.int64()), ("f", pa.float64()), ("t", pa.string())])
    batches = [
        pa.record_batch([pa.array([1, 2, 3]), pa.array([0.5, 1.5, 2.5]), pa.array(["a", "b", "c"])], schema=schema),
        pa.record_batch([pa.array([4, None, 6, 7]), pa.array([None, 3.5, 4.5, 5.5]), pa.array(["d", None, "f", "g"])],
                        schema=schema),
        pa.record_batch([pa.array(list(range(8, 31))), pa.array([float(x) for x in range(8, 31)]),
                         pa.array([str(x) for x in range(8, 31)])], schema=schema),
    ]
    cols = _Columns(schema, capacity)
    for b in batches:
        cols.add(b)
    assert cols.rows == 30
    want_i = [1, 2, 3, 4, 0, 6, 7, *range(8, 31)]  # a NULL integer as 0, beside its mask
    assert cols.values(0).tolist() == want_i
    assert np.flatnonzero(cols.null_mask(0)).tolist() == [4]
    f = cols.values(1)
    assert np.isnan(f[3]) and np.flatnonzero(cols.null_mask(1)).tolist() == [3]
    assert f[[0, 1, 2, 4, 5, 6]].tolist() == [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]
    df = cols.frame()
    assert df["i"].isna().tolist() == [i == 4 for i in range(30)]  # with a NULL: float64, NaN there
    assert df["i"].fillna(0).astype("int64").tolist() == want_i
    t = df["t"].tolist()
    assert pd.isna(t[4]) and t[:4] + t[5:7] + t[-1:] == ["a", "b", "c", "d", "f", "g", "30"]


def test_columns_all_null_numeric_column_is_object_none_as_read_sql_gives_it() -> None:
    import pyarrow as pa

    from nsysparse.reader import _Columns

    cols = _Columns(pa.schema([("n", pa.int64())]), 4)
    cols.add(pa.record_batch([pa.array([None, None, None], pa.int64())], names=["n"]))
    s = cols.frame()["n"]
    assert s.dtype == object and s.tolist() == [None, None, None]


def test_launch_key_in_place_is_pid_and_correlation_id_in_one_int64() -> None:
    from nsysparse.cuda import launch_key

    rng = np.random.default_rng(3)
    pid = rng.integers(0, 1 << 24, 1000)
    corr = rng.integers(-5, 1 << 33, 1000)  # negative: none; past 32 bits: the low 32 kept
    want = np.where(corr >= 0, (pid << 32) | (corr & 0xFFFFFFFF), -7)
    got = launch_key(pid, corr, none=-7)
    assert np.array_equal(got, want)
    assert got is not pid and pid.tolist() == pid.tolist()  # the caller's array is not shifted


def test_tables_are_read_mapping_every_array_and_analysed_reusing_the_heap(tmp_path, monkeypatch) -> None:
    """The allocator's two settings, in order: opening a trace maps every array
    over 128 KiB on its own and trims the heap's free top past 128 KiB (freed memory
    goes back: the read's peak), and the analyses reuse the heap for arrays under
    ANALYSIS_MMAP_THRESHOLD, keeping up to ANALYSIS_TRIM_THRESHOLD free at its top."""
    from nsysparse import report as R, trace as T

    calls: list[tuple[int, int]] = []

    class FakeLibc:
        def mallopt(self, param: int, value: int) -> int:
            calls.append((param, value))
            return 1

    monkeypatch.setattr(T, "_libc", lambda: FakeLibc())
    monkeypatch.delenv("NSYSPARSE_KEEP_ALLOCATOR", raising=False)
    trace = T.open_trace(Path(__file__).parent / "data" / "offload_disk.sqlite")
    assert calls == [(-3, 128 * 1024), (-1, 128 * 1024)]  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
    R.build_report(trace, spill_to=tmp_path)
    assert calls[-2:] == [(-3, T.ANALYSIS_MMAP_THRESHOLD), (-1, T.ANALYSIS_TRIM_THRESHOLD)]
    assert (T.ANALYSIS_MMAP_THRESHOLD, T.ANALYSIS_TRIM_THRESHOLD) == (1 << 20, 16 << 20)
    monkeypatch.setenv("NSYSPARSE_KEEP_ALLOCATOR", "1")
    calls.clear()
    T.reuse_freed_memory()
    assert calls == []  # kept as they are


def test_opening_a_trace_stops_numpys_huge_page_requests(monkeypatch) -> None:
    """numpy's switch (it returns the setting it replaces) is off once a trace is
    open, and left as it was under NSYSPARSE_KEEP_ALLOCATOR."""
    from numpy._core import multiarray

    from nsysparse import trace as T

    before = multiarray._set_madvise_hugepage(True)
    try:
        monkeypatch.delenv("NSYSPARSE_KEEP_ALLOCATOR", raising=False)
        T.open_trace(Path(__file__).parent / "data" / "offload_disk.sqlite").close()
        assert multiarray._set_madvise_hugepage(True) is False
        monkeypatch.setenv("NSYSPARSE_KEEP_ALLOCATOR", "1")
        T.open_trace(Path(__file__).parent / "data" / "offload_disk.sqlite").close()
        assert multiarray._set_madvise_hugepage(True) is True
    finally:
        multiarray._set_madvise_hugepage(before)


def test_sha256_of_a_file_is_hashlibs_of_its_bytes(tmp_path) -> None:
    import hashlib

    from nsysparse.trace import _sha256_of

    p = tmp_path / "f.bin"
    data = np.random.default_rng(1).bytes(3 * (1 << 20) + 12345)  # past the 1 MB buffer, not a multiple of it
    p.write_bytes(data)
    assert _sha256_of(p) == hashlib.sha256(data).hexdigest()


def test_os_calls_are_written_to_their_file_before_the_api_calls_stream(tmp_path, monkeypatch) -> None:
    """The OS calls' frame is gone (written) when the API-call stream begins: the
    stream's launch index and batches never meet it (the read's peak at 2 GB).
    This is the order of a machine of few cores (on many the stream starts beside
    the reads: trace.stream_early, tests/test_scale.py)."""
    from nsysparse import report as R, trace as T

    monkeypatch.setenv("NSYSPARSE_STREAM_EARLY", "0")

    spillers: list = []
    init = R._Spiller.__init__

    def remember(self, *a, **k):  # type: ignore[no-untyped-def]
        init(self, *a, **k)
        spillers.append(self)

    seen: list[bool] = []
    stream = T.Trace._stream_calls

    def check(self, to, launches=None):  # type: ignore[no-untyped-def]
        seen.append(spillers[0].jobs["os_calls"].done() and "os_calls" not in self.__dict__)
        return stream(self, to, launches)

    monkeypatch.setattr(R._Spiller, "__init__", remember)
    monkeypatch.setattr(T.Trace, "_stream_calls", check)
    trace = T.open_trace(Path(__file__).parent / "data" / "runs" / "deepseek_disk_stream.sqlite")
    rep = R.build_report(trace, spill_to=tmp_path)
    assert seen == [True]
    assert (tmp_path / "os_calls.parquet").exists() and rep.summary["steps"] > 0


class _Labels:
    """A reader whose ENUM table is ``labels`` (empty: none, the documented codes then)."""

    def __init__(self, labels: pd.Series) -> None:
        self.labels, self.notes = labels, []

    def lookup(self, *_: object) -> pd.Series:
        return self.labels

    def note(self, text: str) -> None:
        self.notes.append(text)


@pytest.mark.parametrize("codes", [
    pd.Series([1, 2, 1, 8, 1, 10], dtype="int64"),  # 10: no such code
    pd.Series([1.0, np.nan, 2.0, 1.5, 8.0]),  # NULLs read as float: NaN, and a non-integral value
    pd.Series([1, None, "2", 8], dtype=object),  # text finds nothing, as in a dict
    pd.Series([], dtype="int64"),
])
@pytest.mark.parametrize("table", ["export's", "documented"])
def test_decoded_labels_are_a_map_per_row(codes: pd.Series, table: str) -> None:
    """cuda.decode looks each distinct code up once and shares its label's string;
    the labels equal a per-row ``Series.map`` of the same table."""
    from nsysparse.cuda import decode

    enum = S.ENUM_MEMCPY
    labels = pd.Series(["Host-to-Device", "Device-to-Host", "Device-to-Device"], index=[1, 2, 8])
    rd = _Labels(labels if table == "export's" else pd.Series(dtype=object))
    mapping = ({int(k): str(v) for k, v in labels.items()} if table == "export's" else enum.extra["codes"])
    want = codes.map(mapping).fillna(S.UNKNOWN_LABEL).to_numpy(dtype=object)
    got = decode(rd, codes, enum, "copy kinds")  # type: ignore[arg-type]
    assert got.dtype == object and got.tolist() == want.tolist()
    firsts = {}
    assert all(firsts.setdefault(v, v) is v for v in got)  # one string object per label
    assert (table == "documented") == bool(rd.notes)
