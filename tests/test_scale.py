"""Same answers at any scale: the report of every fixture equals, exactly, the one
recorded before the scale work (tests/data/scale/digests.json, written by
``python -m tests.scale_digest`` at commit 6fd6451), and the Parquet files
written in slices equal one Arrow conversion of the whole table."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import nsysparse
from nsysparse.render import files
from nsysparse.report import build_report
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
    monkeypatch.setattr(files, "CHUNK_ROWS", 7)  # many slices, a short last one, all-null text in some
    with nsysparse.open_trace(traces[name]) as t:
        report = build_report(t)
    out = tmp_path / "out"
    files.write_report_folder(report, out)
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
