"""Numbers are checked before they are written: user peaks in range, and a
summary that would say something impossible never reaches the disk."""

from __future__ import annotations

import pytest

from nsysparse.cli import main
from nsysparse.report import check_summary


@pytest.mark.parametrize("peak", ["1e-300", "0", "-3", "10001", "inf", "nan"])
def test_link_peaks_outside_the_range_are_usage_errors(peak: str, fixture_path, tmp_path, capsys) -> None:
    rc = main(["report", str(fixture_path("tiny_matmul_copy")), "--link-peak", f"H2D={peak}", "--out", str(tmp_path / "o")])
    assert rc == 2
    assert capsys.readouterr().err == (f"--link-peak 'H2D={peak}': GBPS must be between 0.001 and 10,000 "
                                       "(GB/s, 1e9 bytes per second)\n")
    assert not (tmp_path / "o").exists()


def test_the_largest_peak_is_accepted(fixture_path, tmp_path, capsys) -> None:
    assert main(["report", str(fixture_path("tiny_matmul_copy")), "--link-peak", "P2P=10000", "--out",
                 str(tmp_path / "o"), "--no-charts", "--no-html"]) == 0


@pytest.mark.parametrize("summary, says", [
    ({"step_ms_p50": -1.0}, "step_ms_p50 is negative (-1.0)"),
    ({"bubble_ratio": 1.5}, "bubble_ratio is outside [0, 1] (1.5)"),
    ({"sync_share": float("nan")}, "sync_share is nan"),
    ({"links": [{"link": "L", "busy_ns": -5}]}, "link L busy_ns is negative (-5)"),
    ({"breakdown": {"host_cpu": -0.5}}, "breakdown.host_cpu is negative (-0.5)"),
    ({"targets": [{"what": "disk_read", "share": 2.0}]}, "target disk_read share is outside [0, 1] (2.0)"),
])
def test_an_impossible_summary_is_refused(summary, says) -> None:
    with pytest.raises(AssertionError) as exc:
        check_summary(summary, "t.sqlite")
    assert str(exc.value) == f"t.sqlite: the summary would say something impossible: {says}"


def test_a_sound_summary_passes() -> None:
    check_summary({"step_ms_p50": 1.0, "bubble_ratio": 1.0, "gpu_idle_ratio": None, "breakdown": {"host_cpu": 0.0},
                   "targets": [{"what": "x", "share": None}]}, "t.sqlite")
