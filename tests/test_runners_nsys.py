"""CPU tests of the runners' profiler front door: finding nsys, the command line, recovering a .qdstrm.

No torch needed: these run in CI without the `runner` extra.
"""
from __future__ import annotations

import shlex
import stat
import sys
from pathlib import Path

import pytest

from nsysparse.conventions import export_command
from nsysparse.errors import NotAnExport, UsageError
from runners import nsys as nsys_mod
from runners import profile as prof


def _fake_exe(path: Path, body: str = "exit 0") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_dry_run_prints_the_nsys_command(capsys: pytest.CaptureFixture, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NSYS", str(_fake_exe(tmp_path / "bin" / "nsys")))
    rc = prof.main(["deepseek", "--layers", "4", "--mode", "host", "--sync", "stream", "--out", str(tmp_path / "run"),
                    "--dry-run", "--nsys-args", "--cuda-graph-trace", "node"])
    assert rc == 0
    cmd = shlex.split(capsys.readouterr().out.strip())
    stem = str((tmp_path / "run" / "deepseek_host_stream").resolve())
    assert cmd[:3] == [str(tmp_path / "bin" / "nsys"), "profile", "-t"] and cmd[3] == "cuda,nvtx,osrt"
    assert cmd[cmd.index("--export") + 1] == "sqlite" and cmd[cmd.index("-o") + 1] == stem
    prog = cmd.index(sys.executable)
    assert cmd[prog - 2:prog] == ["--cuda-graph-trace", "node"]
    assert cmd[prog + 1:prog + 4] == ["-m", "runners.engine", "deepseek"]
    assert cmd[cmd.index("--mode") + 1] == "host" and cmd[cmd.index("--layers") + 1] == "4"
    assert cmd[-2:] == ["--result", str(tmp_path / "run" / "engine.json")]


def test_no_nsys_is_one_line_and_exit_5(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
                                       tmp_path: Path) -> None:
    """CONTRACT.md: 5 is "not a usable nsys export", nsys missing included (NotAnExport)."""
    monkeypatch.setattr(prof, "find_nsys", lambda: None)
    assert prof.main(["tiny", "--out", str(tmp_path / "r")]) == NotAnExport.exit_code == 5
    err = capsys.readouterr().err
    assert err.startswith("runners.profile: nsys not found (") and err.count("\n") == 1
    assert err.rstrip().endswith("or pass --no-nsys") and not (tmp_path / "r").exists()


def test_no_gpu_under_nsys_is_one_line_and_exit_2(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setattr(prof, "find_nsys", lambda: Path("/usr/bin/true"))
    monkeypatch.setattr(prof, "gpu_info", lambda: None)
    assert prof.main(["tiny", "--out", str(tmp_path / "r")]) == UsageError.exit_code == 2
    err = capsys.readouterr().err
    assert err == ("runners.profile: no CUDA GPU visible (nvidia-smi and torch see none); profiling needs one "
                   "(the engine alone runs on the CPU with --no-nsys)\n")
    assert prof.main(["tiny", "--no-nsys", "--device", "cuda", "--out", str(tmp_path / "r")]) == 2
    assert "leave --device out to run on the CPU" in capsys.readouterr().err


def test_cpu_under_nsys_is_a_usage_error(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    monkeypatch.setattr(prof, "find_nsys", lambda: Path("/usr/bin/true"))
    monkeypatch.setattr(prof, "gpu_info", lambda: {"name": "fake"})
    assert prof.main(["tiny", "--device", "cpu", "--out", str(tmp_path / "r")]) == 2
    assert "profiling traces CUDA" in capsys.readouterr().err


def test_find_nsys_order(tmp_path: Path) -> None:
    bundled = _fake_exe(tmp_path / "ncu" / "2025.3.1" / "host" / "target-linux-x64" / "nsys")
    newer = _fake_exe(tmp_path / "nsys-sys" / "2025.10.2" / "bin" / "nsys")
    _fake_exe(tmp_path / "nsys-sys" / "2025.9.1" / "bin" / "nsys")
    globs = (str(tmp_path / "nsys-sys" / "*" / "bin" / "nsys"), str(bundled.parent.parent.parent.parent / "*" /
                                                                    "host" / "target-linux-x64" / "nsys"))
    env = {"PATH": str(tmp_path / "empty")}
    assert nsys_mod.find_nsys(env, globs) == newer  # newest version, not the last in text order
    assert nsys_mod.find_nsys(env, globs[1:]) == bundled
    assert nsys_mod.find_nsys({**env, "NSYS": str(bundled)}, globs) == bundled
    assert nsys_mod.find_nsys(env, ()) is None


def test_qdstrm_is_imported_then_exported(tmp_path: Path) -> None:
    # nsys bundled with Nsight Compute: the importer lives in ../linux-desktop-glibc_2_11_3-x64/
    host = tmp_path / "host"
    nsys = _fake_exe(host / "target-linux-x64" / "nsys",
                     'out=""; prev=""\n'
                     'for a; do [ "$prev" = "--output" ] && out="$a"; prev="$a"; done\n'
                     '[ "$1" = export ] && echo "$*" > "$out"')
    _fake_exe(host / "linux-desktop-glibc_2_11_3-x64" / "QdstrmImporter",
              'f="$2"; echo rep > "${f%.qdstrm}.nsys-rep"')
    assert nsys_mod.find_importer(nsys) == host / "linux-desktop-glibc_2_11_3-x64" / "QdstrmImporter"
    stem = tmp_path / "run" / "t"
    stem.parent.mkdir()
    stem.with_suffix(".qdstrm").write_text("raw")
    sqlite, how = nsys_mod.ensure_sqlite(nsys, stem, tmp_path / "log")
    assert sqlite == stem.with_suffix(".sqlite")
    # the one export command line of nsysparse.conventions
    assert sqlite.read_text().split() == export_command(nsys, stem.with_suffix(".nsys-rep"), sqlite)[1:]
    assert how.how == "recovered" and how.steps[0].startswith("QdstrmImporter -i")
    assert "nsys export --type sqlite" in how.steps[1]


def test_missing_trace_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NotAnExport, match="neither") as err:
        nsys_mod.ensure_sqlite(Path("/usr/bin/true"), tmp_path / "x", tmp_path / "log")
    assert err.value.exit_code == 5 and str(err.value).startswith(str(tmp_path / "log"))


