"""Every output path: nothing of the user's is ever lost, each refusal is one
line with its exit code (CONTRACT.md), and report folders honour the umask."""

from __future__ import annotations

import builtins
import errno
import hashlib
import os
import shutil
import time
from pathlib import Path

import pytest

from nsysparse import entry
from nsysparse.cli import main
from nsysparse.render import files


@pytest.fixture()
def trace(tmp_path: Path, data_dir: Path) -> Path:
    p = tmp_path / "in" / "t.sqlite"
    p.parent.mkdir()
    shutil.copy(data_dir / "tiny_matmul_copy.sqlite", p)
    return p


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def run(capsys, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(["report", *argv, "--no-charts"])
    return rc, capsys.readouterr().err


def test_out_is_the_input(trace: Path, capsys) -> None:
    before = sha(trace)
    rc, err = run(capsys, str(trace), "--out", str(trace))
    assert (rc, err) == (2, f"{trace}: --out is the input itself; give a new folder\n")
    assert sha(trace) == before


def test_out_holds_the_input(trace: Path, capsys) -> None:
    rc, err = run(capsys, str(trace), "--out", str(trace.parent))
    assert rc == 2
    assert err == f"{trace.parent}: --out holds the input {trace}; replacing it would delete it: give a new folder\n"
    assert trace.exists()


@pytest.mark.parametrize("out", [".", ".."])
def test_out_is_this_folder_or_above(trace: Path, capsys, monkeypatch, tmp_path: Path, out: str) -> None:
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    rc, err = run(capsys, str(trace), "--out", out)
    assert (rc, err) == (2, f"{out}: --out must name a folder of its own, not the current folder or one above it\n")


def test_a_folder_of_the_users_is_refused_then_replaced_with_force(trace: Path, tmp_path: Path, capsys) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    rc, err = run(capsys, str(trace), "--out", str(mine))
    assert rc == 2 and err == (f"{mine}: --out is a folder that nsysparse did not write; it would be replaced whole: "
                               "give a new folder, or --force to replace it\n")
    assert (mine / "notes.txt").read_text() == "keep"
    rc, _ = run(capsys, str(trace), "--out", str(mine), "--force")
    assert rc == 0 and (mine / "summary.json").exists() and not (mine / "notes.txt").exists()


def test_an_earlier_report_folder_is_replaced(trace: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "o"
    assert run(capsys, str(trace), "--out", str(out))[0] == 0
    (out / "stale.parquet").write_text("x")
    assert run(capsys, str(trace), "--out", str(out))[0] == 0
    assert not (out / "stale.parquet").exists()


def test_an_existing_file_is_refused(trace: Path, tmp_path: Path, capsys) -> None:
    f = tmp_path / "file"
    f.write_text("data")
    rc, err = run(capsys, str(trace), "--out", str(f))
    assert (rc, err) == (2, f"{f}: --out is an existing file; give a folder\n")
    assert f.read_text() == "data" and not list(tmp_path.glob(".file.*"))


def test_a_symlinked_out_keeps_the_link(trace: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "real"
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    assert run(capsys, str(trace), "--out", str(link))[0] == 0
    assert link.is_symlink() and (target / "summary.json").exists()


def test_permission_and_disk_full_are_exit_8(trace: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(files.tempfile, "mkdtemp", denied)
    rc, err = run(capsys, str(trace), "--out", str(tmp_path / "o"))
    assert (rc, err) == (8, f"{tmp_path / 'o'}: cannot write the output folder here (Permission denied); give another --out\n")
    monkeypatch.undo()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "write_json", full)
    rc, err = run(capsys, str(trace), "--out", str(tmp_path / "o"))
    assert rc == 8 and err == (f"{tmp_path / 'o'}: cannot write the output folder (No space left on device); "
                               "nothing was replaced: free space or give another --out\n")
    assert not list(tmp_path.glob(".o.tmp-*")) and not (tmp_path / "o").exists()


def test_stale_temporary_folders_are_swept(trace: Path, tmp_path: Path, capsys) -> None:
    old = tmp_path / ".o.tmp-dead"
    fresh = tmp_path / ".o.tmp-live"
    other = tmp_path / ".keep.tmp-x"
    for p in (old, fresh, other):
        p.mkdir()
    hour_ago = time.time() - 2 * files.STALE_TMP_S
    os.utime(old, (hour_ago, hour_ago))
    os.utime(other, (hour_ago, hour_ago))
    assert run(capsys, str(trace), "--out", str(tmp_path / "o"))[0] == 0
    assert not old.exists() and fresh.exists() and other.exists()


def test_report_folders_honour_the_umask(trace: Path, tmp_path: Path, capsys) -> None:
    mask = os.umask(0o022)
    try:
        assert run(capsys, str(trace), "--out", str(tmp_path / "o"))[0] == 0
    finally:
        os.umask(mask)
    assert (tmp_path / "o").stat().st_mode & 0o777 == 0o755


def test_ctrl_c_while_importing_is_one_line(monkeypatch, capsys) -> None:
    real_import = builtins.__import__

    def interrupted(name, *a, **k):
        if name == "cli" or name.endswith("nsysparse.cli"):
            raise KeyboardInterrupt
        return real_import(name, *a, **k)

    monkeypatch.delitem(__import__("sys").modules, "nsysparse.cli", raising=False)
    monkeypatch.setattr(builtins, "__import__", interrupted)
    assert entry.main() == 130
    assert capsys.readouterr().err == "nsysparse: interrupted; no partial output was left\n"


def test_batch_refuses_an_out_holding_an_input(trace: Path, capsys) -> None:
    capsys.readouterr()
    rc = main(["batch", str(trace), "--out", str(trace.parent)])
    assert rc == 2 and capsys.readouterr().err.startswith(f"{trace.parent}: --out holds the input")
