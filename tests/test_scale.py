"""Same answers at any scale: the report of every fixture equals, exactly, the one
recorded before the scale work (tests/data/scale/digests.json, written by
``python -m tests.scale_digest`` at commit 6fd6451), whether the API calls are
held in memory or spilled to their Parquet file as they are read, and the
Parquet files written in slices equal one Arrow conversion of the whole table.

The copies table's digests were recorded again when its five text columns became
categoricals (its files unchanged): each new digest only once the table, those
columns cast back to text, gave the recorded digest exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import nsysparse
from nsysparse import parquet
from nsysparse.render import files
from nsysparse.report import KERNEL_COLUMNS, PROJECTED_COLUMNS, build_report
from tests.scale_digest import DATA, fixture_traces, report_digest

DIGESTS = json.loads((DATA / "scale" / "digests.json").read_text())


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return fixture_traces(tmp_path_factory.mktemp("xz"))


@pytest.mark.parametrize("name", sorted(DIGESTS))
def test_every_table_and_the_summary_equal_the_recorded_ones(name: str, traces: dict[str, Path]) -> None:
    with nsysparse.open_trace(traces[name]) as t:
        got = report_digest(build_report(t))
    want = DIGESTS[name]
    assert sorted(got) == sorted(want)
    assert {k: v for k, v in got.items() if v != want[k]} == {}


@pytest.mark.parametrize("name", sorted(DIGESTS))
def test_a_spilled_report_equals_the_recorded_one(name: str, traces: dict[str, Path], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's way: the API calls streamed to their file batch by batch (never
    built; built whole and written where they are not in start order), the OS
    calls to theirs in start order (never built), the kernels to theirs as
    soon as they are built (narrowed for the projection once written, then
    for the rest), the breakdown and what-held-the-wait reading them back;
    every table (the spilled one read back), the summary and the notes are the
    recorded ones, and each table of calls was built once at most (given up,
    never read again)."""
    if "error" in DIGESTS[name]:
        pytest.skip("a trace nsysparse refuses")
    from nsysparse import cuda

    built: list[str] = []
    for table in ("api_calls", "os_calls"):
        real = getattr(cuda, table)
        monkeypatch.setattr(cuda, table, lambda *a, _real=real, _name=table, **k: built.append(_name) or _real(*a, **k))
    with nsysparse.open_trace(traces[name]) as t:
        os_rows = t.recorded("os_calls")
    # the OS calls stream (in start order, sorted by SQLite) wherever the trace has some
    want = ([] if _streams(traces[name]) else ["api_calls"]) + ([] if os_rows else ["os_calls"])
    narrowed: list[tuple[str, tuple[str, ...]]] = []
    real_narrow = nsysparse.trace.Trace.narrow
    monkeypatch.setattr(nsysparse.trace.Trace, "narrow",
                        lambda self, *a: narrowed.append(a) or real_narrow(self, *a))
    with nsysparse.open_trace(traces[name]) as t:
        report = build_report(t, spill_to=tmp_path)
        assert sorted(built) == want
        assert report.tables.spilled("api_calls") is not None
        assert "api_calls" not in t.__dict__ and "os_calls" not in t.__dict__  # given up
        # the kernels went to their file; the analyses held only the columns they read,
        # then the trace gave them up
        assert report.tables.spilled("kernels") is not None
        assert narrowed == [("kernels", KERNEL_COLUMNS + PROJECTED_COLUMNS), ("kernels", KERNEL_COLUMNS)]
        assert "kernels" not in t.__dict__
        got = report_digest(report)
        assert sorted(built) == want
        # a trace that gave its API calls up reads them again when asked: the whole table
        from tests.scale_digest import table_digest
        assert table_digest(t.api_calls) == DIGESTS[name]["api_calls"]
        assert table_digest(t.kernels) == DIGESTS[name]["kernels"]  # and the kernels, whole
    assert {k: v for k, v in got.items() if v != DIGESTS[name][k]} == {}


def _streams(path: Path) -> bool:
    """Whether the trace's API calls can stream: rowid order is start order, and every
    GPU op has its globalPid (worked out here in SQL, not by the code under test)."""
    import sqlite3

    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "CUPTI_ACTIVITY_KIND_RUNTIME" not in tables:
        return False
    descents = con.execute("SELECT COUNT(*) FROM (SELECT start < LAG(start) OVER (ORDER BY rowid) AS d "
                           "FROM CUPTI_ACTIVITY_KIND_RUNTIME) WHERE d").fetchone()[0]
    keyed = _gpu_ops_keyed(con, tables, ("globalPid",))
    con.close()
    return keyed and descents == 0


def _gpu_ops_keyed(con, tables: set[str], need: tuple[str, ...]) -> bool:  # type: ignore[no-untyped-def]
    """Whether every GPU-op table of ``tables`` has the columns ``need`` and a globalPid on every row (SQL)."""
    for op in ("KERNEL", "MEMCPY", "MEMSET", "GRAPH_TRACE"):
        table = f"CUPTI_ACTIVITY_KIND_{op}"
        if table in tables:
            cols = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
            if not set(need) <= cols or con.execute(f"SELECT COUNT(*) FROM {table} WHERE globalPid IS NULL").fetchone()[0]:
                return False
    return True


def _whole(df, meta) -> pa.Table:
    """What write_parquet wrote before it wrote in slices: one conversion of the whole frame."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    for i, f in enumerate(table.schema):
        if pa.types.is_dictionary(f.type):
            table = table.set_column(i, f.name, table.column(i).cast(f.type.value_type))
    merged = {**(table.schema.metadata or {}), **{f"nsysparse.{k}".encode(): v.encode() for k, v in meta.items()}}
    return table.replace_schema_metadata(merged)


@pytest.mark.parametrize("name", ["edge", "offload_disk", "hf_olmoe", "p2p"])
def test_parquet_written_in_slices_equals_the_whole_table(name: str, traces: dict[str, Path], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parquet, "CHUNK_ROWS", 7)  # many slices, a short last one, all-null text in some
    out = tmp_path / "out"
    with nsysparse.open_trace(traces[name]) as t, files.spill_folder(out) as spill:
        report = build_report(t, spill_to=spill)  # the API calls written ahead, the rest by the folder writer
        files.write_report_folder(report, out)
    assert not list(tmp_path.glob(".out.tmp-*"))  # the spill folder is gone
    assert report.tables.spilled("api_calls").path == out / "api_calls.parquet"  # read back from the folder now
    meta = files.provenance(report)
    for table, df in report.tables.items():
        disk = pq.read_table(out / f"{table}.parquet")
        want = _whole(df, meta)
        assert disk.schema.equals(want.schema, check_metadata=True), table
        assert disk.equals(want), table
        # the file's own key-value metadata, ARROW:schema included, byte for byte as Arrow writes it
        pq.write_table(want, tmp_path / "whole.parquet")
        assert (pq.ParquetFile(out / f"{table}.parquet").metadata.metadata
                == pq.ParquetFile(tmp_path / "whole.parquet").metadata.metadata), table
        if len(df) > 7:
            assert pq.ParquetFile(out / f"{table}.parquet").metadata.num_row_groups > 1, table
    back = files.read_report_folder(out)
    assert sorted(back.tables) == sorted(report.tables)


@pytest.mark.parametrize("name", ["offload_disk", "runs/deepseek_disk_stream", "accel_qwen"])
def test_breakdown_swept_in_many_slices_is_the_same(name: str, traces: dict[str, Path],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from nsysparse import breakdown

    monkeypatch.setattr(breakdown, "SLICE_BOUNDS", 50)  # a slice per few steps
    with nsysparse.open_trace(traces[name]) as t:
        got = report_digest(build_report(t))
    assert {k: v for k, v in got.items() if v != DIGESTS[name][k]} == {}


def test_tables_count_and_list_a_spilled_table_without_reading_it(tmp_path: Path) -> None:
    import pandas as pd

    from nsysparse.tables import Tables, spill

    df = pd.DataFrame({"name": pd.Categorical(["b", "a", "b"], categories=["b", "a"]),
                       "start_ns": [3, 1, 2], "rv": pd.array([0, None, 5], dtype="Int64")})
    s = spill(df, tmp_path / "t.parquet", {"k": "v"})
    tables = Tables({"t": s, "small": df.iloc[:1]})
    (tmp_path / "t.parquet").unlink()  # nothing below may read it
    assert (tables.rows("t"), tables.rows("small"), list(tables), list(tables.in_memory())) == (3, 1, ["t", "small"], ["small"])
    assert "t" in tables and "small" in tables and "x" not in tables
    assert "t: 3 rows (spilled)" in repr(tables)
    spill(df, tmp_path / "t.parquet", {"k": "v"})
    back = tables["t"]  # read back: same dtypes, categories in their order, values, nulls
    pd.testing.assert_frame_equal(back, df)
    assert list(back["name"].cat.categories) == ["b", "a"]
    assert pq.ParquetFile(tmp_path / "t.parquet").metadata.metadata[b"nsysparse.k"] == b"v"


def test_a_spilled_window_equals_the_window_held_in_memory(traces: dict[str, Path], tmp_path: Path) -> None:
    """--steps with the API calls spilled: the window's calls go to the file, and
    both the view and the trace give theirs up."""
    from nsysparse.report import Settings
    from nsysparse.window import Window

    settings = Settings(window=Window(steps=(2, 5)))
    with nsysparse.open_trace(traces["offload_disk"]) as t:
        want = report_digest(build_report(t, settings))
    with nsysparse.open_trace(traces["offload_disk"]) as t:
        report = build_report(t, settings, spill_to=tmp_path)
        assert "api_calls" not in t.__dict__
        got = report_digest(report)
    assert report.tables.rows("api_calls") < len(nsysparse.open_trace(traces["offload_disk"]).api_calls)
    assert got == want


def test_a_refused_trace_stops_the_files_being_written(traces: dict[str, Path], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A --step that matches nothing is refused after the calls' files were started:
    the writer is stopped between slices and waited for, and leaves no thread."""
    import threading

    from nsysparse.errors import NothingToAnalyse
    from nsysparse.report import Settings

    monkeypatch.setattr(parquet, "CHUNK_ROWS", 7)  # many slices: the stop lands between two
    settings = Settings(step="no such step", given=frozenset({"step"}))
    with nsysparse.open_trace(traces["offload_disk"]) as t, pytest.raises(NothingToAnalyse):
        build_report(t, settings, spill_to=tmp_path)
    assert not [th for th in threading.enumerate() if th.name.startswith("nsysparse-spill")]
    with pytest.raises(parquet.Cancelled):
        cancel = threading.Event()
        cancel.set()
        parquet.write_parquet(nsysparse.open_trace(traces["offload_disk"]).marks, tmp_path / "m.parquet", {},
                              cancel=cancel)


@pytest.mark.parametrize("name", sorted(DIGESTS))
def test_calls_streamed_beside_the_gpu_ops_reads_give_the_recorded_report(
        name: str, traces: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On many cores (trace.stream_early; forced here) the API calls stream while
    the GPU ops' rows are read, found per distinct launch key read ahead: every
    table, the summary and the notes are the recorded ones, and the keys were
    read ahead exactly where the calls can stream (a NULL globalPid: not)."""
    if "error" in DIGESTS[name]:
        pytest.skip("a trace nsysparse refuses")
    from nsysparse import call_stream, trace

    monkeypatch.setenv("NSYSPARSE_STREAM_EARLY", "1")
    assert trace.stream_early()
    read: list[bool] = []
    real = call_stream.read_launch_keys
    monkeypatch.setattr(trace, "read_launch_keys", lambda *a: read.append((k := real(*a)) is not None) or k)
    with nsysparse.open_trace(traces[name]) as t:
        got = report_digest(build_report(t, spill_to=tmp_path))
    calls, readable = _launch_keys_readable(traces[name])
    assert read == ([readable] if calls else [])
    assert {k: v for k, v in got.items() if v != DIGESTS[name][k]} == {}


def _launch_keys_readable(path: Path) -> tuple[bool, bool]:
    """Whether the trace has API call rows, and whether every GPU-op table has a
    globalPid column with no NULL in it (worked out in SQL, not by the code under test)."""
    import sqlite3

    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        calls = "CUPTI_ACTIVITY_KIND_RUNTIME" in tables and \
            con.execute("SELECT COUNT(*) FROM CUPTI_ACTIVITY_KIND_RUNTIME").fetchone()[0] > 0
        return calls, _gpu_ops_keyed(con, tables, ("globalPid", "correlationId"))
    finally:
        con.close()
