"""The API calls streamed to their file batch by batch (nsysparse/call_stream.py)
against the whole-table path they replace: the same categories, the same
launching call for every op, the same RowWindows index, the same rows and notes,
and the whole-table path taken where the calls are not in start order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nsysparse
from nsysparse import cuda, reader, row_windows
from nsysparse import schema as S
from nsysparse.call_stream import CallFile, Launches, stream_api_calls
from nsysparse.reader import GrowingCategorical, categorical
from nsysparse.report import build_report
from tests.scale_digest import report_digest, table_digest
from tests.test_reader_checks import DAMAGE, NUMPY_DECIDES, damaged, grown_export


def _batches(n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    cuts = np.unique(np.r_[0, rng.integers(0, n, size=max(1, n // 40)), n])
    return list(zip(cuts[:-1], cuts[1:]))


@pytest.mark.parametrize("seed", range(5))
def test_categories_grown_batch_by_batch_are_the_whole_columns(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lookup = pd.Series(["a", "b", "a", "c_v2", None, "d"], index=[10, 11, 12, 13, 14, 15])  # 12 shares "a"
    ids = pd.Series(rng.choice([10, 11, 12, 13, 14, 15, 16], 500))  # 14: a null value; 16: no string
    want = categorical(lookup, ids)
    growing = GrowingCategorical(lookup)
    codes = np.concatenate([growing.codes(ids.iloc[a:b]) for a, b in _batches(len(ids), rng)])
    assert list(growing.categories) == list(want.categories)
    np.testing.assert_array_equal(codes, np.asarray(want.codes))


def _calls(rng: np.random.Generator, n: int = 3000) -> pd.DataFrame:
    """API calls in start order: several processes, correlation ids repeated across
    them and within one, some with no id, some with no name."""
    start = np.sort(rng.integers(0, 10**6, n))
    return pd.DataFrame({
        "start_ns": start, "end_ns": start + rng.integers(0, 50, n),
        "pid": rng.choice([7, 8, 9], n), "tid": rng.integers(1, 5, n),
        "correlation_id": np.where(rng.random(n) < 0.05, -1, rng.integers(0, 800, n)),  # many repeats
        "name": pd.Categorical.from_codes(rng.integers(-1, 6, n), categories=list("abcdef")),
    })


def _ops(rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
    """(pid, correlation id) of ``m`` ops: a process with no calls, some ops with no id."""
    return rng.choice([7, 8, 9, 10], m), np.where(rng.random(m) < 0.05, -1, rng.integers(0, 900, m))


def _streamed_past(launches: Launches, api: pd.DataFrame, rng: np.random.Generator) -> cuda.Ops:
    """``api`` added to ``launches`` batch by batch; the whole-frame Ops to check it against."""
    key = np.where(api["correlation_id"] >= 0,
                   (api["pid"].to_numpy() << 32) | (api["correlation_id"].to_numpy() & 0xFFFFFFFF), -1)
    cols = [api[c].to_numpy() for c in ("tid", "start_ns", "end_ns")] + [np.asarray(api["name"].cat.codes, np.int32)]
    for a, b in _batches(len(api), rng):
        launches.add(key[a:b], *(c[a:b] for c in cols))
    whole = cuda.Ops.__new__(cuda.Ops)
    cuda.Ops.__init__(whole, None, None, api)  # type: ignore[arg-type]
    return whole


def _assert_the_calls(got: dict[str, np.ndarray], row: np.ndarray, api: pd.DataFrame) -> None:
    """``got`` (Launches' answer) holds call ``row`` of ``api`` for each op (-1: none)."""
    hit = row >= 0
    np.testing.assert_array_equal(got["found"], hit)
    for col, src in (("tid", "tid"), ("start", "start_ns"), ("end", "end_ns")):
        np.testing.assert_array_equal(got[col][hit], api[src].to_numpy()[row[hit]])
    np.testing.assert_array_equal(got["name"][hit], np.asarray(api["name"].cat.codes)[row[hit]])
    assert (got["name"][~hit] == -1).all()


@pytest.mark.parametrize("seed", range(5))
def test_each_op_gets_the_call_the_whole_table_gives_it(seed: int) -> None:
    """Launches (ops read first, calls streamed past) against Ops.launching_call on
    the whole frame: several processes, correlation ids repeated across them and
    within one (the first call in start order wins), ops with no call or no id."""
    rng = np.random.default_rng(seed)
    api = _calls(rng)
    ops = {table: _ops(rng, m) for table, m in (("kernels", 2000), ("memcpy", 300), ("memset", 1))}
    launches = Launches(ops)
    whole = _streamed_past(launches, api, rng)
    for table, (pid, corr) in ops.items():
        row = whole.launching_call(pid, corr)
        assert (row >= 0).sum() > 0 or table == "memset"
        _assert_the_calls(launches.take(table), row, api)


@pytest.mark.parametrize("seed", range(5))
def test_each_op_gets_the_call_the_whole_table_gives_it_by_distinct_key(seed: int) -> None:
    """Launches.of_keys (the ops' keys read ahead, repeated, with keys of rows
    the checks drop later and ops with no id) against Ops.launching_call on the
    whole frame, as in the test above."""
    rng = np.random.default_rng(seed)
    api = _calls(rng)
    pid, corr = _ops(rng, 2500)
    dropped = (rng.choice([7, 8], 50), rng.integers(0, 900, 50))  # rows the checks leave out: keys no op asks for
    shuffled = rng.permutation(pid.size)  # read ahead in any order
    launches = Launches.of_keys({"kernels": (pid[shuffled], corr[shuffled]), "memcpy": dropped})
    assert launches.by_key
    whole = _streamed_past(launches, api, rng)
    row = whole.launching_call(pid, corr)
    assert 0 < (row >= 0).sum() < pid.size
    got = launches.lookup(pid, corr)
    _assert_the_calls(got, row, api)
    assert (got["start"][row < 0] == 0).all()
    empty = Launches.of_keys({}).lookup(pid, corr)
    assert not empty["found"].any() and (empty["name"] == -1).all()


@pytest.mark.parametrize("seed", range(4))
def test_the_index_built_as_rows_pass_is_the_frames(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(row_windows, "BLOCK", 8)
    monkeypatch.setattr(row_windows, "INDEX_ROWS", 64)
    rng = np.random.default_rng(seed)
    n = 1000
    s = np.sort(rng.integers(0, 10**5, n))
    e = s + np.where(rng.random(n) < 0.03, rng.integers(10**3, 10**5, n), rng.integers(0, 30, n))  # a few long
    df = pd.DataFrame({"start_ns": s, "end_ns": e, "pid": np.ones(n, np.int64), "tid": rng.integers(1, 3, n),
                       "name": pd.Categorical.from_codes(rng.integers(0, 3, n), categories=list("xyz"))})
    want = row_windows.RowWindows(df, ("name",))
    index = row_windows.Indexer(("name",))
    for a, b in _batches(n, rng):
        index.add({"s": s[a:b], "e": e[a:b], "pid": df["pid"].to_numpy()[a:b], "tid": df["tid"].to_numpy()[a:b],
                   "name": np.asarray(df["name"].cat.codes)[a:b]})
    n_got, first, reach, long = index.finish()
    assert n_got == want.n
    np.testing.assert_array_equal(first, want.first)
    np.testing.assert_array_equal(reach, want.reach)
    assert sorted(long) == sorted(want.long) and long["row"].size > 0
    for k in long:
        np.testing.assert_array_equal(long[k], want.long[k])


def test_a_streamed_table_is_the_table(builder, tmp_path: Path) -> None:
    """Batches of 3 rows, one left out (it ends before it starts): the file holds
    api_calls exactly, with the span, the synchronising calls and the note of
    the whole read."""
    builder.gpu()
    for i in range(40):
        builder.kernel(1000 + 100 * i, 1050 + 100 * i, launch=(900 + 100 * i, 920 + 100 * i), name=f"k{i % 3}")
    for i in range(40, 60):
        builder.api("cudaStreamSynchronize" if i % 2 else "cudaMemsetAsync_v3020", 900 + 100 * i, 990 + 100 * i)
    builder.api("cudaFree", 7001, 6000)
    path = builder.write()
    with nsysparse.open_trace(path) as t:
        real = t._rd.stream
        t._rd.stream = lambda decl, batch_rows=3: real(decl, 3)  # type: ignore[method-assign]
        calls = stream_api_calls(t._rd, t.strings, CallFile(tmp_path / "api_calls.parquet", lambda: {"k": "v"}), None)
        streamed_notes = list(t.notes)
    with nsysparse.open_trace(path) as t:
        assert calls is not None and calls.spilled.rows == len(t.api_calls) == 60
        assert table_digest(calls.spilled.frame()) == table_digest(t.api_calls)
        assert calls.span == (900, 6890)
        assert calls.syncs["base_name"].astype(str).tolist() == ["cudaStreamSynchronize"] * 10
        assert streamed_notes == t.notes and any("1 of 61 CUDA API call rows ended before" in n for n in t.notes)


@pytest.fixture(scope="module")
def damaged_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return grown_export(tmp_path_factory.mktemp("grown"))


@pytest.mark.parametrize("early", ["0", "1"])
@pytest.mark.parametrize("what", list(DAMAGE))
def test_damaged_calls_stream_as_they_read_whole(what: str, early: str, damaged_source: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/test_reader_checks.py's damaged exports (150k calls, three batches):
    where numpy decides, the stream keeps the rows and notes of the whole read;
    elsewhere it stops (CannotStream, possibly batches in); and the spilled report
    (streamed after the GPU ops' rows or beside them, ``early``, or read whole
    after the stop) equals the one held in memory."""
    monkeypatch.setenv("NSYSPARSE_STREAM_EARLY", early)
    p = damaged(damaged_source, what, tmp_path)
    whole = reader.Reader(p)
    want = whole.read(S.RUNTIME)
    streamed = reader.Reader(p)
    if what in NUMPY_DECIDES:
        got = pd.concat(list(streamed.stream(S.RUNTIME)), ignore_index=True)
        # (a batch's all-NULL column comes as None, the whole column's NULLs as NaN: as numbers, equal)
        pd.testing.assert_frame_equal(got.astype("float64"), want.astype("float64"), check_exact=True)
        assert streamed.notes == whole.notes
    else:
        with pytest.raises(reader.CannotStream):
            list(streamed.stream(S.RUNTIME))
    with nsysparse.open_trace(p) as t:
        in_memory = report_digest(build_report(t))
    with nsysparse.open_trace(p) as t:
        assert report_digest(build_report(t, spill_to=tmp_path)) == in_memory


@pytest.mark.parametrize("early", ["0", "1"])
def test_calls_not_in_start_order_are_read_whole_with_the_same_report(early: str, make_builder, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """An export whose API rows are not in start order: the stream stops, leaves no
    file, and the spilled report equals the one held in memory (the stream tried
    after the GPU ops' rows, or beside them: ``early``)."""
    monkeypatch.setenv("NSYSPARSE_STREAM_EARLY", early)
    b = make_builder("unsorted")
    b.gpu()
    for i in range(30):
        b.range("step", 1000 * i, 1000 * i + 900)
        b.kernel(1000 * i + 100, 1000 * i + 400, launch=(1000 * i + 10, 1000 * i + 30))
    b.api("cudaDeviceSynchronize", 500, 600)  # written last, started early
    path = b.write()
    with nsysparse.open_trace(path) as t:
        assert stream_api_calls(t._rd, t.strings, CallFile(tmp_path / "x.parquet", dict), None) is None
    assert not (tmp_path / "x.parquet").exists()
    with nsysparse.open_trace(path) as t:
        want = report_digest(build_report(t))
    with nsysparse.open_trace(path) as t:
        spilled = build_report(t, spill_to=tmp_path)
        got = report_digest(spilled)
        assert spilled.tables.spilled("api_calls") is not None
    assert got == want


def test_ops_without_a_globalpid_stream_after_their_rows_as_before(builder, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel whose globalPid is NULL: its launch keys cannot be read ahead
    (read_launch_keys gives None), so the calls are read whole once the rows
    are (the op's process is the calls' one), and the report equals the one
    streamed after the rows and the one held in memory."""
    import sqlite3

    from nsysparse import call_stream

    builder.gpu()
    for i in range(20):
        builder.range("step", 1000 * i, 1000 * i + 900)
        builder.kernel(1000 * i + 100, 1000 * i + 400, launch=(1000 * i + 10, 1000 * i + 30))
    path = builder.write()
    con = sqlite3.connect(path)
    con.execute("UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET globalPid = NULL WHERE rowid = 3")
    con.commit()
    con.close()
    with nsysparse.open_trace(path) as t:
        assert call_stream.read_launch_keys(t._rd, [S.KERNEL]) is None
        want = report_digest(build_report(t))
    for early in ("0", "1"):
        monkeypatch.setenv("NSYSPARSE_STREAM_EARLY", early)
        out = tmp_path / early
        out.mkdir()
        with nsysparse.open_trace(path) as t:
            got = report_digest(build_report(t, spill_to=out))
            assert t.kernels["launch_tid"].notna().all()  # every kernel found its call
        assert got == want


def _os_rows_by_hand(builder) -> Path:
    """A trace whose OSRT_API rows are flushed per thread, not in start order, with
    ties of start (kept in row order) and one row that cannot be read (no end)."""
    import sqlite3

    builder.gpu()
    builder.range("step", 0, 10_000)
    builder.kernel(100, 400, launch=(10, 30))
    path = builder.write()
    con = sqlite3.connect(path)
    con.execute('CREATE TABLE OSRT_API (start INTEGER NOT NULL, "end" INTEGER, eventClass INTEGER, '
                'nameId INTEGER, globalTid INTEGER, callchainId INTEGER)')
    names = {"read": 9001, "pthread_cond_wait": 9002, "ioctl": 9003}
    con.executemany("INSERT INTO StringIds (id, value) VALUES (?, ?)", [(i, v) for v, i in names.items()])
    gt = [(1 << 56) | (7 << 24) | t for t in (7, 8)]  # pid 7, threads 7 and 8
    rows = [  # thread 8's buffer flushed first, then thread 7's
        (500, 900, names["ioctl"], gt[1]), (500, 600, names["read"], gt[1]), (2000, 2500, names["read"], gt[1]),
        (100, 300, names["read"], gt[0]), (500, 700, names["pthread_cond_wait"], gt[0]),
        (800, None, names["read"], gt[0]), (3000, 9000, names["pthread_cond_wait"], gt[0]),
    ]
    con.executemany('INSERT INTO OSRT_API (start, "end", eventClass, nameId, globalTid) VALUES (?, ?, 27, ?, ?)', rows)
    con.commit()
    con.close()
    return path


def _as_read(df: pd.DataFrame) -> pd.DataFrame:
    """An OS-call frame with its names as text (the categories' order aside)."""
    return df.assign(name=df["name"].astype(object))


def test_os_calls_stream_in_start_order_as_the_whole_table_sorts_them(builder, tmp_path: Path) -> None:
    """Worked by hand: the file holds the rows cuda.os_calls builds (sorted by start,
    ties in row order, the row without an end left out and noted), batch by batch."""
    from nsysparse.call_stream import stream_os_calls

    path = _os_rows_by_hand(builder)
    with nsysparse.open_trace(path) as t:
        real = t._rd.stream
        t._rd.stream = lambda decl, batch_rows=2, by=None: real(decl, 2, by)  # type: ignore[method-assign]
        got = stream_os_calls(t._rd, t.strings, CallFile(tmp_path / "os_calls.parquet", lambda: {"k": "v"}))
        streamed_notes = list(t.notes)
    assert got is not None and got.spilled.rows == 6
    df = got.spilled.frame()
    assert df["start_ns"].tolist() == [100, 500, 500, 500, 2000, 3000]
    assert df["tid"].tolist() == [7, 8, 8, 7, 8, 7]  # the ties at 500 in row order: 8's ioctl, 8's read, 7's wait
    assert df["name"].astype(str).tolist() == ["read", "ioctl", "read", "pthread_cond_wait", "read",
                                               "pthread_cond_wait"]
    assert df["dur_ns"].tolist() == [200, 400, 100, 200, 500, 6000]
    with nsysparse.open_trace(path) as t:
        pd.testing.assert_frame_equal(_as_read(df), _as_read(t.os_calls), check_exact=True)
        assert streamed_notes == t.notes and any("OS runtime call" in n for n in t.notes)
    # the index the breakdown reads them by is the frame's
    want = row_windows.os_call_rows(df)
    w, v = got.rows.window(0, 10_000), want.window(0, 10_000)
    assert sorted(w) == sorted(v)
    for k in ("s", "e", "pid", "tid", "row"):
        np.testing.assert_array_equal(w[k], v[k])
    assert list(got.rows.categories["name"][w["name"]]) == list(want.categories["name"][v["name"]])


def test_a_real_exports_os_calls_stream_as_they_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The DeepSeek offload run's 12,449 OS calls (4 rows out of start order in the
    export), in file slices of 1,000 rows: the file is the whole table."""
    from nsysparse import call_stream, parquet

    monkeypatch.setattr(parquet, "CHUNK_ROWS", 1000)
    path = Path(__file__).parent / "data" / "runs" / "deepseek_disk_stream.sqlite"
    with nsysparse.open_trace(path) as t:
        got = call_stream.stream_os_calls(t._rd, t.strings, CallFile(tmp_path / "os.parquet", dict))
        want = t.os_calls
    assert got is not None and got.spilled.rows == len(want) == 12_449
    import sqlite3

    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:  # the export's rows need the sort
        back = con.execute("SELECT SUM(s < p) FROM (SELECT start AS s, LAG(start) OVER (ORDER BY rowid) AS p "
                           "FROM OSRT_API)").fetchone()[0]
    assert back == 4
    pd.testing.assert_frame_equal(_as_read(got.spilled.frame()), _as_read(want), check_exact=True)
    import pyarrow.parquet as pq

    assert pq.ParquetFile(tmp_path / "os.parquet").metadata.num_row_groups == 13


OS_DAMAGE = {
    "null start": ['UPDATE OSRT_API SET start = NULL WHERE rowid % 97 = 0'],
    "end before start": ['UPDATE OSRT_API SET "end" = start - 1 WHERE rowid % 89 = 0'],
    "a start as text": ["UPDATE OSRT_API SET start = 'soon' WHERE rowid = 5000"],  # not checkable in numpy
}


@pytest.mark.parametrize("what", list(OS_DAMAGE))
def test_damaged_os_calls_stream_as_they_read_whole(what: str, tmp_path: Path) -> None:
    """The DeepSeek run's OS calls damaged (their table without its NOT NULL
    constraints): where numpy decides, the stream keeps the rows and notes of the
    whole read; a text start stops it (CannotStream: read whole); either way the
    spilled report equals the one held in memory."""
    import shutil
    import sqlite3

    from nsysparse.call_stream import stream_os_calls

    p = tmp_path / "t.sqlite"
    shutil.copy2(Path(__file__).parent / "data" / "runs" / "deepseek_disk_stream.sqlite", p)
    con = sqlite3.connect(p)
    con.execute('CREATE TABLE "_loose" AS SELECT * FROM OSRT_API')
    con.execute("DROP TABLE OSRT_API")
    con.execute('ALTER TABLE "_loose" RENAME TO OSRT_API')
    for stmt in OS_DAMAGE[what]:
        con.execute(stmt)
    con.commit()
    con.close()
    with nsysparse.open_trace(p) as t:
        got = stream_os_calls(t._rd, t.strings, CallFile(tmp_path / "os.parquet", dict))
        streamed_notes = list(t.notes)
    with nsysparse.open_trace(p) as t:
        want = t.os_calls
        if what == "a start as text":
            assert got is None and not (tmp_path / "os.parquet").exists()
        else:
            assert got is not None and 0 < got.spilled.rows == len(want) < 12_449
            pd.testing.assert_frame_equal(_as_read(got.spilled.frame()), _as_read(want), check_exact=True)
            assert streamed_notes == t.notes and any("OS runtime call" in n for n in t.notes)
    with nsysparse.open_trace(p) as t:
        in_memory = report_digest(build_report(t))
    out = tmp_path / "spill"
    out.mkdir()
    with nsysparse.open_trace(p) as t:
        assert report_digest(build_report(t, spill_to=out)) == in_memory
