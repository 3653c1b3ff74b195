"""``nsysparse diff``: deltas, bootstrap intervals and verdicts (CONTRACT.md, ``diff``).

Real traces for the whole command (a run against itself; host vs disk mode),
tiny hand-built traces for the bootstrap, whose intervals are checked against a
plain loop over the resamples drawn from the same ``default_rng(0)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from nsysparse import intervals as iv
from nsysparse import open_trace
from nsysparse.cli import main
from nsysparse.diff import RESAMPLES, busy_shares, diff_reports, draw_counts, interval, verdict
from nsysparse.report import Settings, build_report
from tests.builders import TraceBuilder

DISK_LINK = "Disk-to-Host Disk->Host host->host"
STEP_NS = 10_000


def _diff(a: Path, b: Path, settings: Settings = Settings()):
    with open_trace(a) as ta, open_trace(b) as tb:
        return diff_reports(build_report(ta, settings), build_report(tb, settings))


def _rows(d) -> list[dict]:
    return d.metrics + d.ranges + d.links


@pytest.fixture(scope="module")
def host_vs_disk(fixture_path: Callable[[str], Path]):
    return _diff(fixture_path("offload_host"), fixture_path("offload_disk"))


def test_a_run_against_itself_shows_no_change(fixture_path: Callable[[str], Path]) -> None:
    d = _diff(fixture_path("offload_disk"), fixture_path("offload_disk"))
    rows = _rows(d)
    assert len(d.metrics) == 9 and len(d.ranges) == 12 and len(d.links) == 4
    for r in rows:
        assert r["delta"] == 0, r
        assert r["verdict"] == "within noise", r
        assert r["a"] == r["b"]
        if r["ci_low"] is not None:
            assert r["ci_low"] <= 0 <= r["ci_high"]
    # resamples of A and B are drawn independently: a real interval, not [0, 0]
    bubble = next(r for r in d.metrics if r["name"] == "bubble_ratio")
    assert bubble["ci_low"] < 0 < bubble["ci_high"]


def test_host_vs_disk(host_vs_disk, fixture_path: Callable[[str], Path]) -> None:
    d = host_vs_disk
    links = {r["name"]: r for r in d.links}
    disk = links[DISK_LINK]
    assert disk["verdict"] == "only in B" and disk["a"] is None and disk["delta"] is None
    assert disk["ci_low"] is None and disk["n_a"] == 0 and disk["n_b"] == 24
    ranges = {r["name"]: r for r in d.ranges}
    assert ranges["moe:disk_to_cpu"]["verdict"] == "only in B"
    assert ranges["moe:disk_to_cpu"]["a"] is None
    # the lifetime range is outside every step: whole-trace means, no interval
    fetch = ranges["moe:gpu_fetch"]
    assert fetch["basis"] == "whole trace" and fetch["ci_low"] is None and fetch["verdict"] == "within noise"
    # a and b are the two reports' own summary values; host wait went from 28.9% to 72.2%
    with open_trace(fixture_path("offload_disk")) as t:
        report_b = build_report(t)
    summary_b = report_b.summary
    assert disk["b"] == report_b.tables["links"].set_index("link").loc[DISK_LINK, "gbps_effective"]
    assert disk["b"] == pytest.approx(2.0614, abs=1e-4)  # GB/s
    metrics = {r["name"]: r for r in d.metrics}
    bubble = metrics["bubble_ratio"]
    assert bubble["b"] == summary_b["bubble_ratio"]
    assert bubble["a"] == pytest.approx(0.289462, abs=1e-6) and bubble["b"] == pytest.approx(0.721901, abs=1e-6)
    assert bubble["delta"] == pytest.approx(bubble["b"] - bubble["a"])
    assert bubble["ci_low"] > 0 and bubble["verdict"] == "changed"
    assert bubble["ci_low"] <= bubble["delta"] <= bubble["ci_high"]
    assert metrics["step_ms_mean"]["verdict"] == "changed" and metrics["step_ms_mean"]["n_a"] == 4
    assert links["Host-to-Device Pinned->Device host->0"]["verdict"] == "changed"  # 52.6 -> 28.1 GB/s
    # the step range's mean is the mean step time: same number, same resamples, same interval
    step = ranges["moe:step"]
    assert step["basis"] == "measured steps"
    assert step["a"] * 1e-6 == pytest.approx(metrics["step_ms_mean"]["a"])
    assert (step["ci_low"] * 1e-6, step["ci_high"] * 1e-6) == pytest.approx(
        (metrics["step_ms_mean"]["ci_low"], metrics["step_ms_mean"]["ci_high"]))


# ---------------------------------------------------------------- the bootstrap by hand


def _steps_trace(b: TraceBuilder, waits: list[int]) -> Path:
    """One 10 µs step per wait value, a ``wait`` range of that length inside it and
    one kernel (CUDA activity): the bubble ratio of step k is waits[k] / 10 µs."""
    for k, w in enumerate(waits):
        t0 = 1_000 + k * 2 * STEP_NS
        b.range("step", t0, t0 + STEP_NS)
        b.range("wait", t0 + 100, t0 + 100 + w)
        b.kernel(t0 + 5_000, t0 + 6_000, launch=(t0 + 4_000, t0 + 4_100))
    return b.write()


def _reference_interval(wait_a: list[int], wait_b: list[int]) -> tuple[float, float]:
    """The interval the contract defines, computed the slow way: a Python loop over
    2,000 resamples of steps, A's index matrix drawn first, then B's."""
    rng = np.random.default_rng(0)
    wa, wb = np.array(wait_a, float), np.array(wait_b, float)
    ia = rng.integers(0, wa.size, size=(RESAMPLES, wa.size))
    ib = rng.integers(0, wb.size, size=(RESAMPLES, wb.size))
    deltas = [wb[ib[r]].sum() / (STEP_NS * wb.size) - wa[ia[r]].sum() / (STEP_NS * wa.size) for r in range(RESAMPLES)]
    lo, hi = np.percentile(deltas, [2.5, 97.5])
    return float(lo), float(hi)


@pytest.mark.parametrize(
    ("wait_a", "wait_b", "expected"),
    [
        # every step of B waits longer than every step of A: each resample's delta is at
        # least 5000/10000 - 1300/10000 = 0.37 > 0, so the interval excludes 0
        ([1_000, 1_200, 1_100, 1_300], [5_000, 5_200, 5_100, 5_300], "changed"),
        # the same spread of values in another order: B − A straddles 0
        ([1_000, 5_000, 3_000, 2_000], [2_000, 4_000, 3_000, 1_000, 5_000], "within noise"),
    ],
)
def test_bootstrap_by_hand(make_builder, wait_a: list[int], wait_b: list[int], expected: str) -> None:
    a = _steps_trace(make_builder("a"), wait_a)
    b = _steps_trace(make_builder("b"), wait_b)
    d = _diff(a, b, Settings(warmup=0))
    bubble = next(r for r in d.metrics if r["name"] == "bubble_ratio")
    assert bubble["a"] == pytest.approx(sum(wait_a) / (STEP_NS * len(wait_a)))
    assert bubble["b"] == pytest.approx(sum(wait_b) / (STEP_NS * len(wait_b)))
    assert (bubble["ci_low"], bubble["ci_high"]) == pytest.approx(_reference_interval(wait_a, wait_b), abs=1e-12)
    assert bubble["verdict"] == expected
    if expected == "changed":
        assert bubble["ci_low"] >= 0.37
    # mean wait-range duration: the same sums divided by counts (one wait per step)
    wait = next(r for r in d.ranges if r["name"] == ":wait")
    assert wait["a"] == pytest.approx(np.mean(wait_a)) and wait["verdict"] == expected


def test_constant_steps_give_a_point_interval(make_builder) -> None:
    # every step of A has bubble 0.1, every step of B 0.5: every resample's delta is 0.4
    d = _diff(_steps_trace(make_builder("a"), [1_000] * 4), _steps_trace(make_builder("b"), [5_000] * 3),
              Settings(warmup=0))
    bubble = next(r for r in d.metrics if r["name"] == "bubble_ratio")
    assert bubble["delta"] == pytest.approx(0.4)
    assert bubble["ci_low"] == pytest.approx(0.4) and bubble["ci_high"] == pytest.approx(0.4)
    assert bubble["verdict"] == "changed"
    sync = next(r for r in d.metrics if r["name"] == "sync_share")
    assert (sync["delta"], sync["ci_low"], sync["ci_high"], sync["verdict"]) == (0, 0, 0, "within noise")


def test_one_step_has_no_interval(make_builder) -> None:
    d = _diff(_steps_trace(make_builder("a"), [1_000]), _steps_trace(make_builder("b"), [5_000]))
    bubble = next(r for r in d.metrics if r["name"] == "bubble_ratio")
    assert bubble["delta"] == pytest.approx(0.4)
    assert bubble["ci_low"] is None and bubble["verdict"] == "within noise"
    assert any("A has 1 measured step" in n for n in d.notes)


def test_interval_and_verdict() -> None:
    assert interval(np.array([np.nan, np.nan])) == (None, None)
    lo, hi = interval(np.arange(1001, dtype=float))  # 0..1000: linear percentiles at 2.5 and 97.5
    assert (lo, hi) == (25.0, 975.0)
    assert verdict(0.1, 0.3) == "changed" and verdict(-0.3, -0.1) == "changed"
    assert verdict(-0.1, 0.3) == "within noise" and verdict(0.0, 0.3) == "within noise"
    assert verdict(None, None) == "within noise"


def test_draw_counts() -> None:
    idx = np.array([[0, 0, 2], [1, 2, 2]])
    assert draw_counts(idx, 3).tolist() == [[2, 0, 1], [0, 1, 2]]


def test_busy_shares_by_hand() -> None:
    # [0,10) and [5,15) share [5,10): 5 alone + 5/2 each; [20,30) alone; [40,40) empty
    shares = busy_shares(np.array([0, 5, 20, 40]), np.array([10, 15, 30, 40]))
    assert shares.tolist() == [7.5, 7.5, 10.0, 0.0]
    # three copies at once on [0,3), then one on [3,6)
    assert busy_shares(np.array([0, 0, 0]), np.array([3, 3, 6])).tolist() == [1.0, 1.0, 4.0]


@hsettings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1_000), st.integers(0, 300)), min_size=1, max_size=40))
def test_busy_shares_sum_to_the_union(ivs: list[tuple[int, int]]) -> None:
    s = np.array([a for a, _ in ivs])
    e = s + np.array([d for _, d in ivs])
    shares = busy_shares(s, e)
    assert shares.sum() == pytest.approx(iv.total(s, e))
    assert (shares >= 0).all() and (shares <= (e - s) + 1e-9).all()


def test_link_point_values_are_the_reports(host_vs_disk, fixture_path: Callable[[str], Path]) -> None:
    with open_trace(fixture_path("offload_host")) as t:
        links = build_report(t).tables["links"].set_index("link")["gbps_effective"]
    for r in host_vs_disk.links:
        if r["a"] is not None:
            assert r["a"] == links[r["name"]]


# ---------------------------------------------------------------- the command


def test_cli_diff_writes_folder(fixture_path: Callable[[str], Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "d"
    rc = main(["diff", str(fixture_path("offload_host")), str(fixture_path("offload_disk")), "--format", "json",
               "--out", str(out)])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) >= {"metrics", "ranges", "links"}
    for key in ("metrics", "ranges", "links"):
        for r in printed[key]:
            assert set(r) >= {"name", "a", "b", "delta", "ci_low", "ci_high", "verdict"}
    assert sorted(p.name for p in out.iterdir()) == ["diff.json", "diff.md", "diff_steps.png", "manifest.json"]
    assert json.loads((out / "diff.json").read_text()) == printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["files"] == ["diff.json", "diff.md", "diff_steps.png", "manifest.json"]
    assert manifest["nsys_version"] == {"a": "2025.3.2.0", "b": "2025.3.2.0"}
    assert (out / "diff_steps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_cli_diff_text_and_markdown(fixture_path: Callable[[str], Path], tmp_path: Path, capsys, fmt: str) -> None:
    rc = main(["diff", str(fixture_path("offload_host")), str(fixture_path("offload_disk")), "--format", fmt,
               "--out", str(tmp_path / "d")])
    text = capsys.readouterr().out
    assert rc == 0
    assert "offload_host.sqlite" in text and "offload_disk.sqlite" in text
    line = next(ln for ln in text.splitlines() if DISK_LINK in ln)
    assert "only in B" in line
    line = next(ln for ln in text.splitlines() if "bubble" in ln)
    assert "28.9%" in line and "72.2%" in line and "+43.2 pt" in line and "changed" in line


def test_cli_diff_missing_input(fixture_path: Callable[[str], Path], tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nope.sqlite"
    rc = main(["diff", str(fixture_path("offload_host")), str(missing), "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert rc == 3
    assert err.startswith(f"{missing}: ") and err.count("\n") == 1
    assert not (tmp_path / "d").exists()


def test_blocks_equal_one_draw(fixture_path: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch, host_vs_disk) -> None:
    # a tiny block size hands the index matrix out a few rows at a time: same numbers
    monkeypatch.setattr("nsysparse.diff.MAX_CELLS", 7)
    d = _diff(fixture_path("offload_host"), fixture_path("offload_disk"))
    assert _rows(d) == _rows(host_vs_disk)
