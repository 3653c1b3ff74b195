"""A ``.nsys-rep`` wherever a trace is accepted: exported with nsys when found,
exit 5 with one line naming the file when not (CONTRACT.md, exit codes)."""

from __future__ import annotations

import json
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from nsysparse import nsys as nsys_mod
from nsysparse.cli import main
from nsysparse.errors import NotAnExport
from nsysparse.inputs import resolve_trace
from nsysparse.nsys import export_command, find_nsys


@pytest.fixture
def rep(data_dir: Path) -> Path:
    return data_dir / "tiny_matmul_copy.nsys-rep"


@pytest.fixture
def no_nsys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nowhere to find nsys: no $NSYS, an empty PATH, no install folders."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.delenv("NSYS", raising=False)
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(nsys_mod, "INSTALL_GLOBS", (str(tmp_path / "opt" / "*" / "bin" / "nsys"),))


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _fake_nsys(path: Path, src: Path, log: Path) -> Path:
    """An nsys whose `export --type sqlite --output DEST REP` copies ``src`` to DEST
    (in Python: the tests empty PATH, so no `cp`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\nimport shutil, sys\n"
                    f"open({str(log)!r}, 'w').write(' '.join(sys.argv[1:]))\n"
                    f"shutil.copy({str(src)!r}, sys.argv[5])\n")
    path.chmod(0o755)
    return path


def test_rep_without_nsys_is_exit_5(no_nsys: None, rep: Path, tmp_path: Path, capsys) -> None:
    rc = main(["report", str(rep), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 5
    assert err.startswith(f"{rep}: is a .nsys-rep and nsys was not found") and err.count("\n") == 1
    assert "nsys export --type sqlite" in err
    assert not (tmp_path / "o").exists()


def test_rep_without_nsys_in_diff_and_batch(no_nsys: None, rep: Path, fixture_path: Callable[[str], Path],
                                            tmp_path: Path, capsys) -> None:
    assert main(["diff", str(fixture_path("tiny_matmul_copy")), str(rep), "--out", str(tmp_path / "d")]) == 5
    assert capsys.readouterr().err.startswith(f"{rep}: ")
    rc = main(["batch", str(fixture_path("tiny_matmul_copy")), str(rep), "--out", str(tmp_path / "b"),
               "--on-error", "skip", "--jobs", "1"])
    assert rc == 0
    failures = json.loads((tmp_path / "b" / "failures.json").read_text())["failures"]
    assert [(f["path"], f["exit_code"]) for f in failures] == [(str(rep), 5)]


def test_missing_rep_is_exit_3(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "gone.nsys-rep"
    assert main(["report", str(missing), "--out", str(tmp_path / "o")]) == 3
    assert capsys.readouterr().err.startswith(f"{missing}: no such file")


def test_rep_exported_with_nsys(no_nsys: None, rep: Path, fixture_path: Callable[[str], Path], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    log = tmp_path / "args.txt"
    monkeypatch.setenv("NSYS", str(_fake_nsys(tmp_path / "tools" / "nsys", fixture_path("tiny_matmul_copy"), log)))
    rc = main(["report", str(rep), "--format", "json", "--out", str(tmp_path / "o")])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    args = log.read_text().split()
    assert args[:4] == ["export", "--type", "sqlite", "--output"] and args[5] == str(rep)
    dest = Path(args[4])
    assert dest.name == "tiny_matmul_copy.sqlite"
    assert not dest.parent.exists()  # the temporary export is removed afterwards
    main(["report", str(fixture_path("tiny_matmul_copy")), "--format", "json", "--out", str(tmp_path / "o2")])
    direct = json.loads(capsys.readouterr().out)
    assert summary["steps"] == direct["steps"] and summary["links"] == direct["links"]
    assert summary["input"]["sha256"] == direct["input"]["sha256"]


def test_failed_export_is_one_line(no_nsys: None, rep: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys) -> None:
    bad = _script(tmp_path / "tools" / "nsys", 'echo "Importing..." \necho "ERROR: the report is corrupt" >&2\nexit 1\n')
    monkeypatch.setenv("NSYS", str(bad))
    rc = main(["report", str(rep), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 5
    assert err == f"{rep}: `nsys export --type sqlite` failed (exit 1): ERROR: the report is corrupt\n"


def test_export_writing_nothing_is_an_error(no_nsys: None, rep: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NSYS", str(_script(tmp_path / "tools" / "nsys", "exit 0\n")))
    with pytest.raises(NotAnExport, match="failed \\(exit 0\\): no output"):
        with resolve_trace(rep):
            pass


def test_find_nsys_order(no_nsys: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_nsys() is None
    for version in ("2024.6.1", "2025.3.2", "2025.10.1"):
        _script(tmp_path / "opt" / version / "bin" / "nsys", "exit 0\n")
    _script(tmp_path / "opt" / "2026.1.1" / "bin" / "nsys", "exit 0\n").chmod(0o644)  # not executable
    assert find_nsys() == tmp_path / "opt" / "2025.10.1" / "bin" / "nsys"  # newest by number, not by text
    on_path = _script(tmp_path / "empty-bin" / "nsys", "exit 0\n")
    assert find_nsys() == on_path
    monkeypatch.setenv("NSYS", str(tmp_path / "nowhere" / "nsys"))  # set but wrong: keep looking
    assert find_nsys() == on_path
    env = _script(tmp_path / "tools" / "nsys", "exit 0\n")
    monkeypatch.setenv("NSYS", str(env))
    assert find_nsys() == env


def test_sqlite_passes_through(fixture_path: Callable[[str], Path]) -> None:
    with resolve_trace(fixture_path("graphs")) as p:
        assert p == fixture_path("graphs")


def test_export_command() -> None:
    assert export_command(Path("/x/nsys"), Path("r.nsys-rep"), Path("/t/r.sqlite")) == [
        "/x/nsys", "export", "--type", "sqlite", "--output", "/t/r.sqlite", "r.nsys-rep"]


@pytest.mark.skipif(find_nsys() is None, reason="nsys is not installed")
def test_real_nsys_export(rep: Path, fixture_path: Callable[[str], Path], tmp_path: Path, capsys) -> None:
    from nsysparse import open_trace

    with resolve_trace(rep) as p, open_trace(p) as t, open_trace(fixture_path("tiny_matmul_copy")) as ref:
        assert len(t.kernels) == len(ref.kernels) and len(t.memcpy) == len(ref.memcpy)
