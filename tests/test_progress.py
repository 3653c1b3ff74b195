"""nsysparse.progress: phase lines on stderr only when asked or on a terminal, never on stdout."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from nsysparse import progress


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _auto():
    progress.set_enabled(None)
    yield
    progress.set_enabled(None)


def test_silent_when_stderr_is_not_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not progress.enabled()
    with progress.phase("reading api_calls", rows=5_000_000):
        pass
    assert __import__("sys").stderr.getvalue() == ""


def test_terminal_shows_long_phases_only(monkeypatch):
    tty = FakeTTY()
    monkeypatch.setattr("sys.stderr", tty)
    clock = iter([0.0, 0.1, 10.0, 12.5])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    with progress.phase("reading StringIds", rows=12):  # short and small: nothing
        pass
    with progress.phase("reading CUPTI_ACTIVITY_KIND_RUNTIME", rows=2_400_440):
        pass
    assert tty.getvalue().splitlines() == [
        "nsysparse: reading CUPTI_ACTIVITY_KIND_RUNTIME (2,400,440 rows) ...",
        "nsysparse: reading CUPTI_ACTIVITY_KIND_RUNTIME (2,400,440 rows): 2.5 s",
    ]


def test_quiet_silences_a_terminal(monkeypatch):
    tty = FakeTTY()
    monkeypatch.setattr("sys.stderr", tty)
    progress.set_enabled(False)
    with progress.phase("analysing", rows=10_000_000):
        pass
    assert tty.getvalue() == ""


def test_a_failing_phase_says_nothing_more(monkeypatch):
    tty = FakeTTY()
    monkeypatch.setattr("sys.stderr", tty)
    progress.set_enabled(True)
    with pytest.raises(ValueError), progress.phase("writing"):
        raise ValueError("boom")
    assert tty.getvalue() == "nsysparse: writing ...\n"


def test_a_report_on_a_terminal_names_its_phases_on_stderr_not_stdout(monkeypatch, capsys, tmp_path, fixture_path):
    from nsysparse.cli import main

    progress.set_enabled(True)  # what a terminal shows on a long run
    rc = main(["report", str(fixture_path("offload_disk")), "--out", str(tmp_path / "out"), "--format", "json",
               "--no-charts"])
    out, err = capsys.readouterr()
    assert rc == 0
    json.loads(out)  # stdout stays one JSON document
    lines = [l for l in err.splitlines() if l.startswith("nsysparse: ")]
    said = "\n".join(lines)
    for what in ("reading CUPTI_ACTIVITY_KIND_RUNTIME (2,071 rows)", "analysing", "writing"):
        assert what in said, said
    assert (Path(tmp_path) / "out" / "summary.json").exists()


def test_quiet_silences_progress(capsys, tmp_path, fixture_path):
    from nsysparse.cli import main

    progress.set_enabled(True)
    try:
        assert main(["report", str(fixture_path("offload_disk")), "--out", str(tmp_path / "out"), "--no-charts",
                     "--no-html", "--quiet"]) == 0
        assert [l for l in capsys.readouterr().err.splitlines() if l.startswith("nsysparse: ")] == []
    finally:
        progress.set_enabled(None)
