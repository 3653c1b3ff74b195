"""CPU tests of `python -m runners.profile` as one way through: the annotation backend under nsys
(nvtx, torch.cuda.nvtx, or a refusal), --no-nsys without a GPU, umask-honouring folders, the
report made through the library, names written once in nsysparse.conventions, and an engine
whose constructor writes nothing.

nsys is a fake (a script that writes the engine's result and copies a real export); the
`nvtx` import is made to fail by putting None in sys.modules.
"""
from __future__ import annotations

import json
import os
import re
import stat
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from nsysparse import conventions as C
from nsysparse import open_trace
from nsysparse.iolog import clock_offset_ns, log_disk_reads
from nsysparse.links import disk_reads
from runners import profile as prof
from runners.engine import instrument as ins

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "data" / "tiny_matmul_copy.sqlite"

# What the runner reads from engine.json; the fake nsys fills in the backend it was asked for.
ENGINE_RESULT = {
    "layers": 3, "moe_layers": 2, "expert_bytes": 49152, "gpu_cache_experts": 11, "host_cache_experts": 0,
    "stats": {"requested": 4, "hits": 2, "misses": 2}, "store": {}, "device_name": "fake",
    "host_pinning": "none", "nvtx_active": True, "nvtx_backend": None, "prefill_ms": 1.0,
    "step_ms": [3.0, 2.0, 2.5], "step_annotated": None, "disk_read_method": "o_direct", "disk_read_note": "",
}
FAKE_NSYS = f"""#!{sys.executable}
import json, shutil, sys
a = sys.argv[1:]
with open({str(Path('@LOG@'))!r}, "a") as f:
    f.write(json.dumps(a) + "\\n")
res = json.loads({json.dumps(json.dumps(ENGINE_RESULT))})
res["nvtx_backend"] = a[a.index("--nvtx-backend") + 1] if "--nvtx-backend" in a else "nvtx"
json.dump(res, open(a[a.index("--result") + 1], "w"))
if a[a.index("--export") + 1] == "sqlite":
    shutil.copy({str(FIXTURE)!r}, a[a.index("-o") + 1] + ".sqlite")
"""


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    try:
        yield 0o027
    finally:
        os.umask(old)


def block_nvtx(monkeypatch: pytest.MonkeyPatch) -> None:
    """`import nvtx` raises ImportError from here on (None in sys.modules)."""
    monkeypatch.setitem(sys.modules, "nvtx", None)


def fake_torch_nvtx(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """torch.cuda.nvtx push/pop/mark recorded instead of emitted (a CUDA build's API, on a CPU build)."""
    import torch.cuda.nvtx as tnvtx

    calls: list[tuple] = []
    monkeypatch.setattr(tnvtx, "range_push", lambda msg: calls.append(("push", msg)))
    monkeypatch.setattr(tnvtx, "range_pop", lambda: calls.append(("pop",)))
    monkeypatch.setattr(tnvtx, "mark", lambda msg: calls.append(("mark", msg)))
    return calls


def fake_nsys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake nsys found by the runner, and a GPU it believes in; returns the log of nsys's argv."""
    log = tmp_path / "nsys-argv.jsonl"
    exe = tmp_path / "bin" / "nsys"
    exe.parent.mkdir()
    exe.write_text(FAKE_NSYS.replace("@LOG@", str(log)))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(prof, "find_nsys", lambda: exe)
    monkeypatch.setattr(prof, "gpu_info", lambda: {"name": "Fake GPU", "source": "test"})
    return log


def profile_argv(log: Path) -> list[str]:
    """The argv of the fake's first ``nsys profile`` call."""
    return next(a for a in map(json.loads, log.read_text().splitlines()) if a[0] == "profile")


def profile_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["tiny", "--store", str(tmp_path / "store"), "--out", str(tmp_path / "run"), "--no-overhead",
            "--no-bandwidth", *extra]


# ---- annotation backends ---------------------------------------------------------------------------
def test_without_nvtx_ranges_fall_back_to_torch_nvtx(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    block_nvtx(monkeypatch)
    calls = fake_torch_nvtx(monkeypatch)
    assert not ins.nvtx_available() and ins.annotation_backend() == ins.TORCH
    instr = ins.Instrument(nvtx_on=True, io_log=tmp_path / "io.jsonl")
    assert instr.backend == ins.TORCH and instr.nvtx_active and not instr.payloads
    assert not (tmp_path / "io.jsonl").exists()  # the log is created by open_log, not the constructor
    calls.clear()  # the probe's push/pop (harmless without a profiler)
    instr.open_log()
    t = instr.clock_mark()
    with instr.range(C.R_STEP), instr.range(C.R_DISK_TO_CPU, 4096):
        pass
    instr.close()
    assert calls == [("mark", f"io_log_clock={t}"), ("push", "step"), ("push", "disk_to_cpu"), ("pop",), ("pop",)]
    assert C.parse_clock_mark(calls[0][1]) == t
    lines = [json.loads(x) for x in (tmp_path / "io.jsonl").read_text().splitlines()]
    assert lines[0] == {"event": "clock_mark", "name": C.CLOCK_MARK, "t_ns": t, "tid": lines[0]["tid"]}
    assert [x["payload"] for x in lines if x.get("name") == "disk_to_cpu"] == [4096]  # the bytes live here


def test_no_backend_is_off_alone_and_an_error_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    block_nvtx(monkeypatch)
    monkeypatch.setattr(ins, "torch_nvtx_available", lambda: False)  # as on a CPU build of torch
    assert ins.annotation_backend() is None and ins.annotation_backend("torch") is None
    assert ins.Instrument(nvtx_on=True).backend is None  # the engine alone: auto may find nothing
    with pytest.raises(ins.AnnotationsUnavailable, match="--nvtx-backend nvtx: the nvtx package does not work"):
        ins.Instrument(nvtx_on=True, backend="nvtx")


def test_cpu_torch_build_has_no_torch_nvtx() -> None:
    torch = pytest.importorskip("torch")
    if torch.version.cuda is None:
        assert not ins.torch_nvtx_available()


def test_profile_refuses_an_unannotated_trace(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    argv_log = fake_nsys(tmp_path, monkeypatch)
    block_nvtx(monkeypatch)
    monkeypatch.setattr(ins, "torch_nvtx_available", lambda: False)
    assert prof.main(profile_args(tmp_path)) == 5
    err = capsys.readouterr().err
    assert err == ("runners.profile: no NVTX annotations: the nvtx package does not import and torch.cuda.nvtx "
                   "does not work (a CPU build of torch?); `pip install nvtx`, or pass --no-nvtx to profile "
                   "without step ranges\n")
    assert not argv_log.exists() and not (tmp_path / "run").exists()  # refused before anything ran


def test_profile_under_nsys_with_torch_nvtx(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                            capsys: pytest.CaptureFixture, umask_027: int) -> None:
    argv_log = fake_nsys(tmp_path, monkeypatch)
    block_nvtx(monkeypatch)
    monkeypatch.setattr(ins, "torch_nvtx_available", lambda: True)
    assert prof.main(profile_args(tmp_path)) == 0
    out, err = capsys.readouterr()
    run = tmp_path / "run"
    assert err.splitlines() == [f"runners.profile: annotations: {ins.DESCRIBE['torch']}"]
    argv = profile_argv(argv_log)
    assert argv[argv.index("--nvtx-backend") + 1] == "torch"  # the engine is told, not left to guess
    assert argv[argv.index("--io-log") + 1] == str(run / prof.IO_LOG)
    m = json.loads((run / "manifest.json").read_text())
    assert m["annotations"] == {"requested": "auto", "backend": "torch", "payloads": False, "io_log": prof.IO_LOG,
                                "description": ins.DESCRIBE["torch"]}
    assert m["engine"]["nvtx_backend"] == "torch" and m["options"]["device"] == "cuda"
    assert m["store_build"]["generated"] == m["store_build"]["files"] == 16  # written before nsys started
    # the report, made through the library: its folder, its text on stdout, its status in the manifest
    assert m["report"]["status"] == "ok" and "summary.json" in m["report"]["files"]
    assert (run / "report" / "summary.json").is_file() and "Where the step goes" in out
    # folders honour the umask: 0o777 & ~0o027
    assert stat.S_IMODE((run / "report").stat().st_mode) == 0o750
    assert stat.S_IMODE(run.stat().st_mode) == 0o750


def test_profile_under_nsys_with_the_nvtx_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("nvtx")
    argv_log = fake_nsys(tmp_path, monkeypatch)
    assert prof.main(profile_args(tmp_path, "--no-report")) == 0
    assert capsys.readouterr().err == f"runners.profile: annotations: {ins.DESCRIBE['nvtx']}\n"
    argv = profile_argv(argv_log)
    assert argv[argv.index("--nvtx-backend") + 1] == "nvtx" and "--io-log" not in argv
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert m["annotations"]["backend"] == "nvtx" and m["annotations"]["payloads"] and "report" not in m


def test_profile_refuses_an_engine_that_annotated_otherwise(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("nvtx")
    fake_nsys(tmp_path, monkeypatch)
    monkeypatch.setattr(prof, "engine_program", lambda cfg, result: [sys.executable, "-c", "pass", "--nvtx-backend",
                                                                     "none", "--result", str(result)])
    assert prof.main(profile_args(tmp_path, "--no-report")) == 5
    assert "the engine annotated with 'none', not 'nvtx' as asked" in capsys.readouterr().err


def test_report_failure_keeps_the_trace_and_returns_its_code(tmp_path: Path) -> None:
    bad = tmp_path / "empty.sqlite"
    bad.write_bytes(b"")
    r = prof.run_report(bad, tmp_path / "report")
    assert r["status"] == "failed" and r["exit_code"] == 4 and r["message"].startswith(str(bad))


# ---- --no-nsys without a GPU --------------------------------------------------------------------------
def test_no_nsys_without_a_gpu_runs_on_the_cpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                               capsys: pytest.CaptureFixture, umask_027: int) -> None:
    pytest.importorskip("torch")
    monkeypatch.setattr(prof, "gpu_info", lambda: None)
    rc = prof.main(["tiny", "--no-nsys", "--store", str(tmp_path / "store"), "--decode-steps", "2",
                    "--prompt-len", "2", "--no-overhead", "--out", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert err == "runners.profile: no CUDA GPU visible: --no-nsys runs the engine on the CPU\n"
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert m["options"]["device"] == "cpu" and m["device_note"] and "on cpu" in out
    assert m["annotations"]["backend"] is None  # the engine annotates only on a GPU
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o750


# ---- folders and the umask --------------------------------------------------------------------------
def test_honour_umask_opens_a_mkdtemp_folder(tmp_path: Path, umask_027: int) -> None:
    d = Path(tempfile.mkdtemp(dir=tmp_path))
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert prof.current_umask() == 0o027 and os.umask(0o027) == 0o027  # read without changing it
    prof.honour_umask(d)
    assert stat.S_IMODE(d.stat().st_mode) == 0o750


# ---- names written once ------------------------------------------------------------------------------
def test_range_names_and_the_clock_mark_are_written_once() -> None:
    sources = {p: p.read_text() for d in ("runners", "nsysparse") for p in (ROOT / d).rglob("*.py")}
    conv = ROOT / "nsysparse" / "conventions.py"
    for p, text in sources.items():
        assert not re.search(r"\.range\(\s*[\"']", text), f"{p}: a bare range name; use nsysparse.conventions"
        if p != conv:
            assert '"io_log_clock"' not in text, f"{p}: CLOCK_MARK is nsysparse.conventions.CLOCK_MARK"
            assert '"export", "--type"' not in text, f"{p}: build the command with conventions.export_command"
    assert len(set(C.ENGINE_RANGES)) == len(C.ENGINE_RANGES) == 15
    assert {C.STEP, C.LAYER, C.IO_RANGE} <= set(C.ENGINE_RANGES)
    # the report's default wait pattern finds the engine's barrier and not its step
    assert re.search(C.WAIT, C.R_EXPERT_WAIT) and not re.search(C.WAIT, C.R_STEP)
    assert ins.DOMAIN == C.ENGINE_DOMAIN == "moe"


def test_clock_offset_from_a_payload_less_mark(builder) -> None:
    """torch.cuda.nvtx cannot give a mark a payload: the value rides in the text."""
    clock = 2**53 + 11
    builder.mark(C.clock_mark_text(clock), 5_000)
    builder.kernel(10, 20, launch=(1, 5))
    assert clock_offset_ns(open_trace(builder.write())) == 5_000 - clock
    assert C.parse_clock_mark("io_log_clock=x") is None and C.parse_clock_mark("other=5") is None


def test_disk_reads_from_the_io_log_when_ranges_have_no_payload(builder) -> None:
    """The torch.cuda.nvtx backend's disk link: the bytes come from the log, aligned on the mark."""
    clock = 10**15
    builder.mark(C.clock_mark_text(clock), 5_000, tid=101)
    builder.range(C.R_DISK_TO_CPU, 5_100, 5_400, tid=102)  # no payload in the trace
    builder.kernel(10, 20, launch=(1, 5))
    trace = open_trace(builder.write())
    log = pd.DataFrame([
        {"event": "clock_mark", "name": C.CLOCK_MARK, "t_ns": clock, "tid": 101},
        {"name": C.R_DISK_TO_CPU, "start_ns": clock + 100, "end_ns": clock + 400, "tid": 102, "payload": 4096},
        {"name": C.R_CPU_TO_GPU, "start_ns": clock + 400, "end_ns": clock + 450, "tid": 102, "payload": 4096},
    ])
    reads = log_disk_reads(trace, log)
    assert reads.to_dict("records") == [{"start_ns": 5_100, "end_ns": 5_400, "dur_ns": 300, "pid": 100, "tid": 102,
                                         "bytes": 4096}]
    assert list(reads.columns) == list(disk_reads(trace.nvtx_ranges, C.IO_RANGE).columns)
    assert disk_reads(trace.nvtx_ranges, C.IO_RANGE).empty  # what the report sees without the log


# ---- building the store is its own step -----------------------------------------------------------------
def test_constructing_an_engine_writes_nothing(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from runners.engine.model import EngineConfig, MoEEngine
    from runners.engine.presets import get_preset
    from runners.engine.store import build_store

    root, io_log = tmp_path / "store", tmp_path / "io.jsonl"
    cfg = EngineConfig(preset="tiny", device="cpu", store=str(root), decode_steps=1, prompt_len=2, io_log=str(io_log))
    with pytest.raises(ValueError, match="16 of 16 expert files missing or invalid; build the store first"):
        MoEEngine(cfg)
    assert list(tmp_path.iterdir()) == []
    store, built = build_store(root, get_preset("tiny"), 0)
    assert built["generated"] == built["files"] == 16
    before = {p: p.stat().st_mtime_ns for p in store.dir.iterdir()}
    engine = MoEEngine(cfg)
    try:
        assert {p: p.stat().st_mtime_ns for p in store.dir.iterdir()} == before and not io_log.exists()
        result = engine.run()
    finally:
        engine.close()
    assert io_log.is_file() and len(result.step_ms) == 1
    assert build_store(root, get_preset("tiny"), 0)[1]["reused"] == 16
