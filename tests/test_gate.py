"""`diff --fail-on-regression` as a CI gate, and named baselines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nsysparse.cli import main

RUNS = Path(__file__).parent / "data" / "runs"
HOST, DISK = RUNS / "deepseek_host_event.sqlite", RUNS / "deepseek_disk_event.sqlite"


@pytest.fixture(autouse=True)
def baselines(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("NSYSPARSE_BASELINES", str(tmp_path / "baselines"))
    return tmp_path / "baselines"


def test_a_slower_run_fails_the_gate(tmp_path: Path, capsys) -> None:
    # host mode (~12 ms steps) -> disk mode (~55 ms): step time is far worse and not noise
    rc = main(["diff", str(HOST), str(DISK), "--fail-on-regression", "--out", str(tmp_path / "d"), "--format", "json"])
    assert rc == 7
    err = capsys.readouterr().err.splitlines()
    lines = [line for line in err if " regression: metrics step_ms_mean " in line]
    assert len(lines) == 1 and lines[0].startswith(f"{DISK}: regression: metrics step_ms_mean +")
    assert lines[0].endswith("beyond 5% and not noise")
    disk = [line for line in err if " regression: breakdown disk_read " in line]
    assert len(disk) == 1 and "% of A's mean step (0 -> " in disk[0]  # a cause that grew from nothing


def test_a_faster_run_passes_the_gate(tmp_path: Path, capsys) -> None:
    assert main(["diff", str(DISK), str(HOST), "--fail-on-regression", "--out", str(tmp_path / "d")]) == 0
    assert "regression" not in capsys.readouterr().err


def test_the_threshold_decides(tmp_path: Path, capsys) -> None:
    out = tmp_path / "d"
    assert main(["diff", str(HOST), str(DISK), "--format", "json", "--out", str(out)]) == 0
    d = json.loads(capsys.readouterr().out)
    mean = next(r for r in d["metrics"] if r["name"] == "step_ms_mean")
    pct = 100 * mean["delta"] / mean["a"]
    above = [f"{pct + 1:.1f}"]
    # with a threshold above every headline change, the gate passes
    worst = max([abs(100 * r["delta"] / r["a"]) for r in d["metrics"] if r["a"]] +
                [abs(100 * r["delta"] / r["a"]) for r in d["links"] if r["a"] and r["delta"] is not None])
    assert main(["diff", str(HOST), str(DISK), "--fail-on-regression", "--threshold", f"{worst + 1:.1f}",
                 "--out", str(out)]) == 0
    assert main(["diff", str(HOST), str(DISK), "--fail-on-regression", "--threshold", above[0], "--out", str(out)]) in (0, 7)


def test_baselines_save_list_and_compare(tmp_path: Path, baselines: Path, capsys) -> None:
    assert main(["baseline", "save", "h200-host", str(HOST)]) == 0
    assert capsys.readouterr().out == f"saved baseline 'h200-host' in {baselines / 'h200-host'}/\n"
    assert (baselines / "h200-host" / "summary.json").exists()
    assert main(["baseline", "list"]) == 0 and capsys.readouterr().out == "h200-host\n"
    assert main(["diff", "--baseline", "h200-host", str(DISK), "--fail-on-regression", "--out", str(tmp_path / "d")]) == 7
    capsys.readouterr()
    # a report folder can be saved as it is
    assert main(["report", str(DISK), "--out", str(tmp_path / "rep"), "--no-charts"]) == 0
    assert main(["baseline", "save", "disk", str(tmp_path / "rep")]) == 0
    assert main(["diff", "--baseline", "disk", str(DISK), "--fail-on-regression", "--out", str(tmp_path / "d")]) == 0


def test_a_missing_baseline_is_exit_3(tmp_path: Path, baselines: Path, capsys) -> None:
    assert main(["diff", "--baseline", "nope", str(DISK), "--out", str(tmp_path / "d")]) == 3
    assert capsys.readouterr().err == (f"{baselines / 'nope'}: no baseline 'nope'; "
                                       "save one with `nsysparse baseline save NAME TRACE`\n")
    assert main(["baseline", "save", "../x", str(DISK)]) == 2
