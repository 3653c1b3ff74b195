"""--window and --steps: every table restricted to what starts in the window,
steps keeping their trace numbers; an empty window is exit 6 naming the span."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nsysparse import open_trace
from nsysparse.cli import main
from nsysparse.report import Settings, build_report
from nsysparse.window import Window


@pytest.fixture(scope="module")
def full(data_dir: Path):
    return build_report(open_trace(data_dir / "offload_disk.sqlite"))


def test_steps_slice_keeps_those_steps_with_their_numbers(data_dir: Path, full) -> None:
    r = build_report(open_trace(data_dir / "offload_disk.sqlite"), Settings(window=Window(steps=(2, 5))))
    st, fs = r.tables["steps"], full.tables["steps"].set_index("step")
    assert st["step"].tolist() == [2, 3, 4] and not st["warmup"].any()
    for col in ("start_ns", "dur_ns", "wait_ns", "sync_ns"):
        assert st[col].tolist() == fs.loc[[2, 3, 4], col].tolist(), col
    assert r.summary["steps"] == 3 and r.summary["warmup"] == 0
    assert r.summary["step_ms_p50"] == pytest.approx(np.median(st["dur_ns"]) / 1e6)
    lo, hi = int(st["start_ns"].min()), int(st["end_ns"].max())
    k = r.tables["kernels"]
    assert len(k) and k["start_ns"].between(lo, hi - 1).all()
    fk = full.tables["kernels"]
    assert len(k) == int(((fk["start_ns"] >= lo) & (fk["start_ns"] < hi)).sum())
    assert any(n.startswith("--steps 2:5: only what starts between") for n in r.notes)
    # every per-step table and the breakdown summary speak of the same (renumbered) steps
    for name in ("breakdown", "held_by", "step_links", "step_devices"):
        assert set(r.tables[name]["step"]) <= {2, 3, 4}, name
    assert sum(r.summary["breakdown"].values()) == pytest.approx(r.summary["step_ms_mean"], rel=1e-12)
    assert r.summary["held_by"][0]["ms_per_step"] == pytest.approx(st["wait_ns"].mean() / 1e6)


def test_window_in_seconds(data_dir: Path, full, tmp_path: Path, capsys) -> None:
    fs = full.tables["steps"]
    lo, hi = float(fs.loc[1, "start_ns"] / 1e9), float(fs.loc[2, "end_ns"] / 1e9 + 1e-9)
    assert main(["report", str(data_dir / "offload_disk.sqlite"), "--window", f"{lo!r}:{hi!r}", "--out",
                 str(tmp_path / "o"), "--no-charts"]) == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["steps"] == 2
    assert summary["settings"]["window"] == {"seconds": [lo, hi], "steps": None}
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["settings"]["window"]["seconds"] == [lo, hi]


def test_an_empty_window_is_exit_6_with_the_span(data_dir: Path, tmp_path: Path, capsys, full) -> None:
    path = data_dir / "offload_disk.sqlite"
    assert main(["report", str(path), "--window", "1000:", "--out", str(tmp_path / "o"), "--no-charts"]) == 6
    err = capsys.readouterr().err
    assert err.startswith(f"{path}: --window 1000: holds no activity; the trace's activity spans ") and err.count("\n") == 1
    assert main(["report", str(path), "--steps", "9:", "--out", str(tmp_path / "o"), "--no-charts"]) == 6
    assert capsys.readouterr().err.startswith(f"{path}: --steps 9: selects no step; the trace has 5 (0 to 4)")


@pytest.mark.parametrize("argv, msg", [
    (["--window", "3"], "--window '3': give START:END in seconds from the capture's start (either side optional)"),
    (["--window", "2:1"], "--window '2:1': need 0 <= START < END"),
    (["--steps", "a:b"], "--steps 'a:b': give A:B, step indices from 0 as a Python slice (2:5 keeps 2, 3 and 4)"),
    (["--steps", "1:2", "--window", "0:1"], "give --window or --steps, not both"),
])
def test_bad_windows_are_usage_errors(data_dir: Path, tmp_path: Path, capsys, argv, msg) -> None:
    assert main(["report", str(data_dir / "offload_disk.sqlite"), *argv, "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == msg + "\n"
