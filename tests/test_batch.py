"""``nsysparse batch``: partitioned datasets equal the single reports; failures
are skipped with their reason or stop the batch; a Dask cluster gives the same
result as local processes (CONTRACT.md, ``batch``)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from nsysparse.report import RENDER_TABLES
from nsysparse import open_trace
from nsysparse.batch import flatten, partition_names
from nsysparse.cli import main
from nsysparse.report import build_report

TRACES = ["offload_host", "offload_disk", "graphs", "tiny_matmul_copy"]


@pytest.fixture(scope="module")
def corrupt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("bad") / "corrupt.sqlite"
    p.write_bytes(bytes(range(256)) * 40)  # random-looking bytes, not a database
    return p


@pytest.fixture(scope="module")
def batch_out(tmp_path_factory: pytest.TempPathFactory, data_dir: Path, corrupt: Path) -> tuple[Path, int, str]:
    """One skip-mode batch over four fixtures, a copy of one (same stem) and a corrupt file."""
    tmp = tmp_path_factory.mktemp("batch")
    (tmp / "copy").mkdir()
    copy = shutil.copy(data_dir / "offload_host.sqlite", tmp / "copy" / "offload_host.sqlite")
    paths = [str(data_dir / f"{n}.sqlite") for n in TRACES] + [str(copy), str(corrupt)]
    out = tmp / "out"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["batch", *paths, "--out", str(out), "--jobs", "2", "--on-error", "skip"])
    return out, rc, err.getvalue()


def _arrow_round_trip(df: pd.DataFrame) -> pd.DataFrame:
    cat = [c for c in df.columns if isinstance(df[c].dtype, pd.CategoricalDtype)]
    return pa.Table.from_pandas(df.astype({c: object for c in cat}), preserve_index=False).to_pandas()


def test_partitions_equal_the_single_reports(batch_out, data_dir: Path) -> None:
    out, rc, _ = batch_out
    assert rc == 0
    for name in TRACES:
        with open_trace(data_dir / f"{name}.sqlite") as t:
            report = build_report(t)
        for table in ("steps", "links", "step_links", "ranges"):
            got = pq.read_table(out / table / f"trace={name}" / "part-0.parquet").to_pandas()
            want = _arrow_round_trip(report.tables[table])
            assert len(got) == len(want) > 0 or table == "step_links"
            pd.testing.assert_frame_equal(got, want, check_dtype=False)
        meta = pq.read_schema(out / "steps" / f"trace={name}" / "part-0.parquet").metadata
        assert meta[b"nsysparse.input_sha256"].decode() == report.input["sha256"]
        row = pd.read_parquet(out / "summary.parquet").set_index("trace").loc[name]
        assert row["steps"] == report.summary["steps"]
        assert row["bubble_ratio"] == pytest.approx(report.summary["bubble_ratio"])
        assert json.loads(row["links"]) == json.loads(json.dumps(report.summary["links"]))
        assert row["input.sha256"] == report.input["sha256"]


def test_a_dataset_reads_as_one_table(batch_out) -> None:
    out, _, _ = batch_out
    steps = ds.dataset(out / "steps", partitioning="hive").to_table().to_pandas()
    assert sorted(steps["trace"].unique()) == sorted([*TRACES, "offload_host-2"])
    counts = steps.groupby("trace").size()
    assert counts["offload_host"] == counts["offload_host-2"] == 5 and counts["tiny_matmul_copy"] == 1
    # every table the report writes is a dataset with one partition per analysed trace
    tables = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert "nvtx_ranges" in tables and "memcpy" in tables and len(tables) == 17 + len(RENDER_TABLES)  # + breakdown, held_by
    for table in tables:
        assert len(list((out / table).iterdir())) == 5
        ds.dataset(out / table, partitioning="hive").to_table()  # one schema across traces


def test_repeated_stem_gets_a_suffix(batch_out) -> None:
    out, _, _ = batch_out
    summary = pd.read_parquet(out / "summary.parquet")
    assert summary["trace"].tolist() == [*TRACES, "offload_host-2"]
    assert summary["path"].iloc[-1].endswith("copy/offload_host.sqlite")
    assert summary.loc[0, "bubble_ratio"] == summary.loc[4, "bubble_ratio"]
    assert partition_names(["a/x.sqlite", "b/x.sqlite", "x-2.nsys-rep", "c/x.sqlite"]) == ["x", "x-2", "x-2-2", "x-3"]


def test_corrupt_file_is_skipped_with_its_reason(batch_out, corrupt: Path) -> None:
    out, rc, err = batch_out
    assert rc == 0
    failures = json.loads((out / "failures.json").read_text())["failures"]
    assert failures == [{"path": str(corrupt), "exit_code": 4, "message": failures[0]["message"]}]
    assert failures[0]["message"].startswith(f"{corrupt}: ") and "not a SQLite database" in failures[0]["message"]
    assert err.startswith(f"{corrupt}: ") and err.count("\n") == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["failed"] == [str(corrupt)] and len(manifest["traces"]) == 5
    assert manifest["files"] == sorted(manifest["files"]) and "summary.parquet" in manifest["files"]


def test_raise_stops_with_the_error_code(data_dir: Path, corrupt: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("previous run")
    (out / "manifest.json").write_text('{"tool": "nsysparse", "command": "batch"}')  # an earlier batch folder
    rc = main(["batch", str(data_dir / "offload_host.sqlite"), str(corrupt), "--out", str(out), "--on-error", "raise"])
    err = capsys.readouterr().err
    assert rc == 4
    assert err.startswith(f"{corrupt}: ") and err.count("\n") == 1
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "old.txt"]  # the old folder is left as it was
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp")]


def test_all_failed_exits_with_the_first_code(tmp_path: Path, corrupt: Path, capsys) -> None:
    missing = tmp_path / "missing.sqlite"
    rc = main(["batch", str(missing), str(corrupt), "--out", str(tmp_path / "o"), "--on-error", "skip", "--jobs", "1"])
    assert rc == 3
    err = capsys.readouterr().err.splitlines()
    assert err == [f"{missing}: no such file; give the path of an exported .sqlite trace (skipped)",
                   f"{corrupt}: is not a SQLite database; export the .nsys-rep with `nsys export --type sqlite` (skipped)"]
    assert not (tmp_path / "o").exists()  # nothing analysed: no folder claims otherwise


def test_bad_jobs_is_a_usage_error(data_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(["batch", str(data_dir / "graphs.sqlite"), "--out", str(tmp_path / "o"), "--jobs", "0"]) == 2


def test_dask_cluster_gives_the_same_summary(batch_out, data_dir: Path, corrupt: Path, tmp_path: Path, capsys) -> None:
    distributed = pytest.importorskip("dask.distributed")
    paths = [str(data_dir / f"{n}.sqlite") for n in TRACES[:2]] + [str(corrupt)]
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as cluster:
        rc = main(["batch", *paths, "--out", str(tmp_path / "d"), "--scheduler", cluster.scheduler_address,
                   "--on-error", "skip"])
    assert rc == 0
    local = pd.read_parquet(batch_out[0] / "summary.parquet").iloc[:2].reset_index(drop=True)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "d" / "summary.parquet"), local)
    failures = json.loads((tmp_path / "d" / "failures.json").read_text())["failures"]
    assert [(f["path"], f["exit_code"]) for f in failures] == [(str(corrupt), 4)]
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "d" / "steps" / "trace=offload_disk"),
        pd.read_parquet(batch_out[0] / "steps" / "trace=offload_disk"),
    )


def test_unreachable_scheduler_is_a_usage_error(data_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    pytest.importorskip("dask.distributed")
    monkeypatch.setattr("nsysparse.batch.CONNECT_TIMEOUT", "1s")
    rc = main(["batch", str(data_dir / "graphs.sqlite"), "--out", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:9"])
    assert rc == 2
    assert "cannot reach the Dask scheduler" in capsys.readouterr().err


def test_flatten() -> None:
    flat = flatten({"a": 1, "b": {"c": 2, "d": {"e": None}}, "l": [{"x": 1.5}], "empty": {}})
    assert flat == {"a": 1, "b.c": 2, "b.d.e": None, "l": '[{"x": 1.5}]', "empty": "{}"}
