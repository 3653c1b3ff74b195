"""The bad-input corpus (issue 6, item 3): what a user can hand ``nsysparse report``.

Every error must give its exit code from CONTRACT.md, exactly one line on
stderr that starts with the input's path, no traceback, the input left
byte-identical (sha256 before and after) and no output folder, partial or
whole. The inputs that are not errors (no NVTX table, a million polling
ranges) must succeed and say what they lacked. A run interrupted while
writing leaves the previous output folder intact, or none.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nsysparse.cli import main
from tests.builders import TraceBuilder
from tests.conftest import DATA

ROOT = Path(__file__).resolve().parent.parent


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "-"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def leftovers(folder: Path, name: str) -> list[str]:
    """Anything the writer left for output ``name`` in ``folder``: the folder or its temporaries."""
    return sorted(p.name for p in folder.iterdir() if p.name == name or p.name.startswith(f".{name}."))


def assert_clean_error(path: Path, argv_extra: list[str], code: int, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> str:
    """Run report on ``path``; check the contract of an error and return its message."""
    out_dir = tmp_path / "out"
    before = sha256(path)
    got, out, err = run(["report", str(path), "--out", str(out_dir), *argv_extra], capsys)
    assert got == code, (got, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(str(path)), lines[0]
    assert "Traceback" not in err and "Traceback" not in out
    assert sha256(path) == before
    assert leftovers(tmp_path, "out") == []
    return lines[0]


# ---- inputs ---------------------------------------------------------------------------


def gpu_trace(b: TraceBuilder, *, step: str | None = "step", n_steps: int = 3, nvtx: bool = True) -> Path:
    """A small well-formed trace: n steps, one kernel and one H2D copy in each."""
    for i in range(n_steps):
        t0 = 10_000 + i * 10_000
        if nvtx and step is not None:
            b.range(step, t0, t0 + 8_000)
        b.kernel(t0 + 2_000, t0 + 5_000, launch=(t0 + 100, t0 + 300))
        b.memcpy(t0 + 1_000, t0 + 1_800, bytes=1 << 20, src_kind="Pinned", launch=(t0 + 50, t0 + 90))
    b.gpu()
    return b.write()


@pytest.fixture
def empty_file(tmp_path: Path) -> Path:
    p = tmp_path / "empty.sqlite"
    p.write_bytes(b"")
    return p


@pytest.fixture
def random_bytes(tmp_path: Path) -> Path:
    p = tmp_path / "noise.sqlite"
    p.write_bytes(random.Random(6).randbytes(64 * 1024))
    return p


@pytest.fixture
def truncated(tmp_path: Path) -> Path:
    src = (DATA / "edge.sqlite").read_bytes()
    p = tmp_path / "truncated.sqlite"
    p.write_bytes(src[: len(src) // 2])
    return p


@pytest.fixture
def not_an_export(tmp_path: Path) -> Path:
    p = tmp_path / "people.sqlite"
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE people (name TEXT, age INTEGER)")
    con.execute("INSERT INTO people VALUES ('ada', 36)")
    con.commit()
    con.close()
    return p


@pytest.fixture
def no_cuda(make_builder) -> Path:
    b = make_builder("nvtx_only")
    b.range("step", 1_000, 5_000)
    b.range("step", 6_000, 9_000)
    return b.write()


# ---- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fixture, code, says",
    [
        ("empty_file", 4, "empty"),
        ("random_bytes", 4, "not a SQLite database"),
        ("truncated", 4, "truncated"),
        ("not_an_export", 5, "not an Nsight Systems export"),
        ("no_cuda", 5, "-t cuda"),
    ],
)
def test_bad_file_is_one_clean_line(fixture, code, says, request, tmp_path, capsys):
    path = request.getfixturevalue(fixture)
    msg = assert_clean_error(path, [], code, tmp_path, capsys)
    assert says in msg


def test_directory_is_exit_3(tmp_path, capsys):
    d = tmp_path / "a_dir.sqlite"
    d.mkdir()
    msg = assert_clean_error(d, [], 3, tmp_path, capsys)
    assert "directory" in msg


def test_missing_path_is_exit_3(tmp_path, capsys):
    msg = assert_clean_error(tmp_path / "nowhere.sqlite", [], 3, tmp_path, capsys)
    assert "no such file" in msg


def test_nsys_rep_without_nsys_is_exit_5(tmp_path, capsys, monkeypatch):
    rep = tmp_path / "tiny.nsys-rep"
    shutil.copyfile(DATA / "tiny_matmul_copy.nsys-rep", rep)
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("NSYS", str(tmp_path / "no" / "nsys"))
    monkeypatch.setenv("PATH", str(empty_bin))
    import nsysparse.nsys as nsys_mod

    monkeypatch.setattr(nsys_mod, "INSTALL_GLOBS", ())  # an nsys installed on this machine must not be found
    assert nsys_mod.find_nsys() is None
    msg = assert_clean_error(rep, [], 5, tmp_path, capsys)
    assert "nsys" in msg and "not found" in msg


def test_missing_nsys_rep_is_exit_3(tmp_path, capsys):
    assert_clean_error(tmp_path / "gone.nsys-rep", [], 3, tmp_path, capsys)


# Names a careless tool would paste into SQL text, or print on two lines.
NASTY = [
    "it's",
    'say "step"',
    "ステップ ✓ 🚀",
    "x'); DROP TABLE NVTX_EVENTS; --",
    "' OR '1'='1",
    "step%",
    "step_",
    "line\nbreak",
    "\\",
]


@pytest.mark.parametrize("name", NASTY)
def test_nasty_step_name_matching_nothing_is_exit_6(name, make_builder, tmp_path, capsys):
    path = gpu_trace(make_builder("t"))
    msg = assert_clean_error(path, ["--step", name], 6, tmp_path, capsys)
    assert "--step" in msg and "matches no NVTX range" in msg
    assert repr(name) in msg  # named as given, escaped onto the one line
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    assert con.execute("SELECT COUNT(*) FROM NVTX_EVENTS").fetchone()[0] == 3  # nothing was dropped
    con.close()


@pytest.mark.parametrize("name", NASTY)
def test_nasty_step_name_is_matched_exactly(name, make_builder, tmp_path, capsys):
    """A range really named like an injection is found by its exact text, and
    ``%``/``_`` are not LIKE wildcards: the name is a value, never SQL."""
    b = make_builder("nasty")
    gpu_trace(b, step=name, n_steps=2)
    b.range("stepX", 40_000, 41_000)  # 'step%' / 'step_' would match this as LIKE patterns
    path = b.write()
    before = sha256(path)
    code, out, err = run(["report", str(path), "--out", str(tmp_path / "o"), "--step", name, "--no-charts",
                          "--format", "json"], capsys)
    assert code == 0, err
    assert json.loads(out)["steps"] == 2
    assert sha256(path) == before


def test_step_matching_nothing_is_exit_6(make_builder, tmp_path, capsys):
    path = gpu_trace(make_builder("t"))
    msg = assert_clean_error(path, ["--step", "no_such_range"], 6, tmp_path, capsys)
    assert "'no_such_range'" in msg and "step" in msg  # and it lists the names it saw


@pytest.mark.parametrize("option", ["--wait", "--layer", "--io-range"])
def test_other_names_matching_nothing_are_exit_6(option, make_builder, tmp_path, capsys):
    path = gpu_trace(make_builder("t"))
    msg = assert_clean_error(path, [option, "x'; DROP TABLE StringIds; --"], 6, tmp_path, capsys)
    assert option in msg


@pytest.mark.parametrize("case", ["empty", "missing", "directory"])
def test_errors_hold_in_a_real_process(case, tmp_path):
    """In-process runs hide what the interpreter itself prints (warnings, tracebacks)."""
    path = tmp_path / "in.sqlite"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "directory":
        path.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "default"}
    done = subprocess.run([sys.executable, "-m", "nsysparse", "report", str(path), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == {"empty": 4, "missing": 3, "directory": 3}[case]
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith(str(path)), done.stderr
    assert not (tmp_path / "out").exists()


# ---- not errors -----------------------------------------------------------------------------


def test_no_nvtx_table_succeeds_and_says_so(make_builder, tmp_path, capsys):
    path = gpu_trace(make_builder("no_nvtx"), nvtx=False)
    con = sqlite3.connect(path)
    assert con.execute("SELECT 1 FROM sqlite_master WHERE name = 'NVTX_EVENTS'").fetchone() is None
    con.close()
    before = sha256(path)
    out_dir = tmp_path / "out"
    code, out, err = run(["report", str(path), "--out", str(out_dir), "--no-charts"], capsys)
    assert code == 0, err
    assert "NVTX" in out  # the text report says what the trace lacked
    summary = json.loads((out_dir / "summary.json").read_text())
    assert any("NVTX" in n for n in summary["notes"])
    assert summary["steps"] == 1  # no ranges: the whole profiled span is one step
    assert sha256(path) == before


def test_a_million_polling_ranges_succeed(make_builder, tmp_path, capsys):
    """An idle task queue polls a million times (METRICS.md, traps): the loaders stay
    vectorised and the report still finds its 3 steps among them."""
    b = make_builder("polling")
    n = 1_000_000
    starts = np.arange(n, dtype=np.int64) * 100 + 5_000
    b.ranges("task_queue_pop", starts, starts + 40, tid=101)
    for i in range(3):
        t0 = 10_000_000 + i * 20_000_000
        b.range("step", t0, t0 + 15_000_000)
        b.kernel(t0 + 1_000_000, t0 + 9_000_000, launch=(t0 + 100, t0 + 300))
    b.gpu()
    path = b.write()
    out_dir = tmp_path / "out"
    code, out, err = run(["report", str(path), "--out", str(out_dir), "--no-charts", "--format", "json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["steps"] == 3
    import pandas as pd

    ranges = pd.read_parquet(out_dir / "ranges.parquet").set_index("name")
    assert ranges.loc[":task_queue_pop", "count"] == n


# ---- interrupted writes -------------------------------------------------------------------


def _interrupt_after(monkeypatch, calls: int, exc: BaseException) -> None:
    import nsysparse.render.files as files

    real = files.write_parquet
    seen = {"n": 0}

    def flaky(*args, **kwargs):
        seen["n"] += 1
        if seen["n"] > calls:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(files, "write_parquet", flaky)


@pytest.mark.parametrize("exc, code", [(KeyboardInterrupt(), 130), (OSError(28, "No space left on device"), 8),
                                       (OSError(5, "Input/output error"), None)])
def test_interrupted_write_keeps_the_previous_output(exc, code, make_builder, tmp_path, capsys, monkeypatch):
    path = gpu_trace(make_builder("t"))
    out_dir = tmp_path / "out"
    assert run(["report", str(path), "--out", str(out_dir), "--no-charts"], capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in out_dir.iterdir()}
    assert "summary.json" in before and len(before) > 5
    _interrupt_after(monkeypatch, 3, exc)
    if code is None:  # not ours to explain: it propagates (exit 1 with a traceback), the folder survives
        with pytest.raises(type(exc)):
            main(["report", str(path), "--out", str(out_dir), "--no-charts", "--step", "step"])
    else:
        assert run(["report", str(path), "--out", str(out_dir), "--no-charts"], capsys)[0] == code
    after = {p.name: p.read_bytes() for p in out_dir.iterdir()}
    assert after == before
    assert leftovers(tmp_path, "out") == ["out"]


def test_interrupted_first_write_leaves_nothing(make_builder, tmp_path, capsys, monkeypatch):
    path = gpu_trace(make_builder("t"))
    _interrupt_after(monkeypatch, 2, KeyboardInterrupt())
    code, _, err = run(["report", str(path), "--out", str(tmp_path / "out"), "--no-charts"], capsys)
    assert code == 130 and len(err.splitlines()) == 1
    assert leftovers(tmp_path, "out") == []
