"""The shared outputs through the command line: report.html by default,
--no-html, --perfetto, --db for report and batch, and `nsysparse history`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import sqlite_utils

from nsysparse.cli import main


def test_report_writes_html_and_perfetto_and_records_the_run(fixture_path, tmp_path: Path, capsys) -> None:
    out, db = tmp_path / "o", tmp_path / "runs.db"
    assert main(["report", str(fixture_path("offload_disk")), "--out", str(out), "--perfetto", "--db", str(db),
                 "--no-charts"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert {"report.html", "timeline.perfetto.json"} <= set(manifest["files"])
    html = (out / "report.html").read_text()
    assert "http://" not in html and "https://" not in html
    trace = json.loads((out / "timeline.perfetto.json").read_text())
    assert trace["traceEvents"] and trace["displayTimeUnit"] == "ns"
    runs = sqlite_utils.Database(db)["runs"]
    assert runs.count == 1
    row = next(runs.rows)
    summary = json.loads((out / "summary.json").read_text())
    assert row["step_ms_p50"] == summary["step_ms_p50"]
    assert row["disk_read_ms"] == summary["breakdown"]["disk_read"]


def test_no_html_skips_the_page(fixture_path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "o"
    assert main(["report", str(fixture_path("tiny_matmul_copy")), "--out", str(out), "--no-html", "--no-charts"]) == 0
    assert not (out / "report.html").exists() and not (out / "timeline.perfetto.json").exists()


def test_a_rerun_replaces_and_history_lists_runs_in_order(fixture_path, tmp_path: Path, capsys) -> None:
    db = tmp_path / "runs.db"
    for name in ("offload_host", "offload_disk", "offload_host"):
        assert main(["report", str(fixture_path(name)), "--out", str(tmp_path / name), "--no-charts", "--no-html",
                     "--db", str(db)]) == 0
    capsys.readouterr()
    assert sqlite_utils.Database(db)["runs"].count == 2  # offload_host again replaced its run
    assert main(["history", str(db), "--metric", "step_ms_p50"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "step_ms_p50" in lines[0]
    assert [ln.split()[2] for ln in lines[1:]] == ["offload_host", "offload_disk"]
    df = pd.read_sql("SELECT input_name, step_ms_p50 FROM runs ORDER BY created_utc", sqlite_utils.Database(db).conn)
    host, disk = df["step_ms_p50"].tolist()
    assert f"{disk - host:+.3f}" in lines[2] and f"{100 * (disk - host) / host:+.1f}%" in lines[2]


def test_batch_records_every_trace(fixture_path, tmp_path: Path, capsys) -> None:
    db = tmp_path / "runs.db"
    paths = [str(fixture_path(n)) for n in ("offload_host", "tiny_matmul_copy")]
    assert main(["batch", *paths, "--out", str(tmp_path / "b"), "--jobs", "1", "--db", str(db)]) == 0
    names = sorted(r["input_name"] for r in sqlite_utils.Database(db)["runs"].rows)
    assert names == ["offload_host", "tiny_matmul_copy"]


def test_history_of_a_missing_database_is_exit_3(tmp_path: Path, capsys) -> None:
    assert main(["history", str(tmp_path / "none.db")]) == 3
    assert capsys.readouterr().err.startswith(f"{tmp_path / 'none.db'}: ")
