"""The results database: a re-run replaces, two traces make two runs in time
order with the change worked out by hand, and plain tools read it as it is."""

from __future__ import annotations

import copy
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import sqlite_utils

from nsysparse import db as rdb
from nsysparse.errors import InputMissing, NotADatabase, UsageError
from tests.share_fixture import shared_report


@pytest.fixture(scope="module")
def disk():
    return shared_report("offload_disk")


@pytest.fixture(scope="module")
def host():
    return shared_report("offload_host")


def _count(path: Path, table: str, rid: str | None = None) -> int:
    con = sqlite3.connect(path)
    try:
        if rid is None:
            return con.execute(f"select count(*) from [{table}]").fetchone()[0]
        return con.execute(f"select count(*) from [{table}] where run_id = ?", [rid]).fetchone()[0]
    finally:
        con.close()


def test_recording_twice_keeps_one_run_and_its_child_rows_once(disk, tmp_path):
    path = tmp_path / "runs.db"
    a = rdb.record_run(path, disk)
    first = sqlite_utils.Database(path)["runs"].get(a)
    b = rdb.record_run(path, disk)
    assert a == b == rdb.run_id(disk.input["sha256"], disk.summary["settings"])
    assert _count(path, "runs") == 1
    assert _count(path, "steps", a) == len(disk.tables["steps"]) == 5
    assert _count(path, "breakdown", a) == len(disk.tables["breakdown"])
    assert _count(path, "links", a) == len(disk.tables["links"])
    assert _count(path, "targets", a) == len(disk.summary["targets"]) > 3
    again = sqlite_utils.Database(path)["runs"].get(a)
    assert again["created_utc"] == first["created_utc"] and again["updated_utc"] > first["updated_utc"]


def test_the_runs_row_holds_the_headline_figures(disk, tmp_path):
    path = tmp_path / "runs.db"
    rid = rdb.record_run(path, disk)
    row = sqlite_utils.Database(path)["runs"].get(rid)
    s = disk.summary
    for k in ("step_ms_p50", "step_ms_p95", "step_ms_mean", "bubble_ratio", "gpu_idle_ratio", "sync_share", "io_floor_share"):
        assert row[k] == s[k]
    assert row["host_wait_other_ms"] == s["breakdown"]["host_wait_other"]
    assert row["input_sha256"] == s["input"]["sha256"] and row["input_size"] == s["input"]["size"]
    assert row["nsys_version"] == "2025.3.2.0" and row["tool_version"] == s["tool_version"]
    assert row["input_name"] == "offload_disk"


def test_a_replaced_run_drops_rows_it_no_longer_has(disk, tmp_path):
    path = tmp_path / "runs.db"
    rid = rdb.record_run(path, disk)
    fewer = copy.copy(disk)
    fewer.tables = {**disk.tables, "steps": disk.tables["steps"].head(2)}
    assert rdb.record_run(path, fewer) == rid
    assert _count(path, "steps", rid) == 2


def test_other_settings_are_another_run(disk, tmp_path):
    path = tmp_path / "runs.db"
    other = copy.copy(disk)
    other.summary = {**disk.summary, "settings": {**disk.summary["settings"], "warmup": 2}}
    assert rdb.record_run(path, disk) != rdb.record_run(path, other)
    assert _count(path, "runs") == 2


def test_history_of_two_traces_in_time_order_with_the_change(disk, host, tmp_path):
    path = tmp_path / "runs.db"
    a, b = rdb.record_runs(path, [disk, host])
    h = rdb.history(path, "step_ms_p50")
    assert h["run_id"].tolist() == [a, b]
    va, vb = disk.summary["step_ms_p50"], host.summary["step_ms_p50"]
    assert h["value"].tolist() == [va, vb]
    assert pd.isna(h["change"].iloc[0]) and h["change"].iloc[1] == pytest.approx(vb - va)
    assert h["change_ratio"].iloc[1] == pytest.approx((vb - va) / va)
    # recording the first again keeps the order: history follows first recording
    rdb.record_run(path, disk)
    assert rdb.history(path)["run_id"].tolist() == [a, b]
    lines = rdb.history_lines(h)
    assert lines[0].split()[:3] == ["recorded", "(UTC)", "trace"] and len(lines) == 3
    assert "offload_disk" in lines[1] and "offload_host" in lines[2]
    assert f"{100 * (vb - va) / va:+.1f}%" in lines[2]


def test_record_summary_from_batch_shaped_results(disk, tmp_path):
    from nsysparse.render.files import arrow_table

    path = tmp_path / "runs.db"
    tables = {k: arrow_table(v) for k, v in disk.tables.items()}  # what a batch worker sends back
    rid = rdb.record_summary(path, disk.summary, tables)
    assert _count(path, "steps", rid) == 5
    rid2 = rdb.record_summary(tmp_path / "bare.db", disk.summary)  # summary alone
    assert _count(tmp_path / "bare.db", "links", rid2) == len(disk.summary["links"])
    assert _count(tmp_path / "bare.db", "steps", rid2) == 0


def test_plain_tools_read_it(disk, host, tmp_path):
    path = tmp_path / "runs.db"
    rdb.record_runs(path, [disk, host])
    con = sqlite3.connect(path)
    try:
        runs = pd.read_sql("select * from runs order by created_utc", con)
        steps = pd.read_sql("select * from steps", con)
        joined = pd.read_sql("select r.input_name, count(*) n from steps s join runs r using(run_id) group by 1 order by 1", con)
    finally:
        con.close()
    assert len(runs) == 2 and set(steps["run_id"]) == set(runs["run_id"])
    assert joined["n"].tolist() == [len(disk.tables["steps"]), len(host.tables["steps"])]
    d = sqlite_utils.Database(path)
    assert d["runs"].pks == ["run_id"]
    assert d["steps"].pks == ["run_id", "step"] and d["breakdown"].pks == ["run_id", "step", "category"]
    for t in ("steps", "breakdown", "links", "targets"):
        assert [(fk.column, fk.other_table, fk.other_column) for fk in d[t].foreign_keys] == [("run_id", "runs", "run_id")]


def test_errors(tmp_path, disk):
    with pytest.raises(InputMissing, match="no results database"):
        rdb.history(tmp_path / "none.db")
    path = tmp_path / "runs.db"
    rdb.record_run(path, disk)
    with pytest.raises(UsageError, match="step_ms_p95"):
        rdb.history(path, "nope")
    assert rdb.history(path, "bubble_ratio")["value"].iloc[0] == disk.summary["bubble_ratio"]
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all, not at all" * 100)
    with pytest.raises(NotADatabase):
        rdb.history(junk)
