"""``python -m runners.profile PRESET``: run the engine under Nsight Systems and report on it.

    python -m runners.profile PRESET [--out DIR] [--dry-run] [--no-nsys] [engine options]
                              [--nsys-args ARG ...]

One run folder (default ``./nsysparse-out/runs/<preset>_<mode>_<sync>/``) gets:
``<name>.nsys-rep`` and ``<name>.sqlite`` (the trace), ``engine.json`` (the
engine's own result), ``overhead.json`` (the same run again, its decode steps
alternately annotated and not: what the annotations cost),
``bandwidth.json`` (this machine's pinned copy bandwidth), ``report/`` (the
``nsysparse report`` output), ``profile.log`` (nsys's output) and
``manifest.json`` (preset, options, GPU, driver, versions, disk-read method,
what was created). ``--dry-run`` prints the nsys command line only.
Without nsys or a GPU: one line on stderr and exit 3 (no nsys) or 4 (no GPU).
"""
from __future__ import annotations

import argparse
import json
from importlib import metadata
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from .engine.options import add_engine_arguments, config_from_args, engine_argv
from .engine.config import EngineConfig
from .nsys import NsysError, ensure_sqlite, find_nsys, nsys_version, profile_command, run_logged

ROOT = Path(__file__).resolve().parent.parent
EXIT_USAGE, EXIT_NO_NSYS, EXIT_NO_GPU, EXIT_RUN_FAILED = 2, 3, 4, 5


class ProfileError(Exception):
    """A failure the user can act on; ``exit_code`` says which."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def build_parser() -> argparse.ArgumentParser:
    """The ``runners.profile`` argument parser (engine options included)."""
    parser = argparse.ArgumentParser(prog="python -m runners.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_engine_arguments(parser)
    g = parser.add_argument_group("profiling")
    g.add_argument("--out", type=Path, default=None, help="run folder (default ./nsysparse-out/runs/<name>/)")
    g.add_argument("--name", default=None, help="trace stem (default <preset>_<mode>_<sync>)")
    g.add_argument("--dry-run", action="store_true", help="print the nsys command line and exit")
    g.add_argument("--no-nsys", action="store_true", help="run the engine alone, without nsys")
    g.add_argument("--no-overhead", dest="overhead", action="store_false",
                   help="skip the second run with annotations off")
    g.add_argument("--overhead-steps", type=int, default=None,
                   help="decode steps of the annotations on/off run (default: --decode-steps)")
    g.add_argument("--no-bandwidth", dest="bandwidth", action="store_false",
                   help="skip measuring this machine's pinned copy bandwidth")
    g.add_argument("--no-report", dest="report", action="store_false", help="skip `nsysparse report`")
    g.add_argument("--nsys-args", nargs=argparse.REMAINDER, default=[],
                   help="passed to `nsys profile` before the program; must come last")
    return parser


def engine_program(cfg: EngineConfig, result: Path) -> list[str]:
    """The engine's command line: ``python -m runners.engine ... --result RESULT``."""
    return [sys.executable, "-m", "runners.engine", *engine_argv(cfg), "--result", str(result)]


def child_env() -> dict[str, str]:
    """Our environment with the project root first on PYTHONPATH, so the engine imports from here."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def gpu_info() -> dict | None:
    """Name, driver and memory of GPU 0 from ``nvidia-smi``, or None when there is no GPU to see."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,pci.bus_id",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        out = None
    if out is not None and out.returncode == 0 and out.stdout.strip():
        name, driver, mem, bus = [s.strip() for s in out.stdout.splitlines()[0].split(",")[:4]]
        return {"name": name, "driver": driver, "memory": mem, "pci_bus_id": bus, "source": "nvidia-smi"}
    try:
        import torch
    except ImportError:
        return None
    if torch.cuda.is_available():
        return {"name": torch.cuda.get_device_name(0), "driver": None, "source": "torch"}
    return None


def versions(nsys: Path | None) -> dict:
    """Versions of what took part: python, torch (and its CUDA), nvtx, nsys, nsysparse."""
    out: dict[str, str | None] = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("torch", "nvtx", "nsysparse"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:  # run from source (PYTHONPATH=.), or absent
            try:
                out[dist] = getattr(__import__(dist), "__version__", "unknown")
            except ImportError:
                out[dist] = None
    try:
        import torch

        out["torch_cuda"] = torch.version.cuda
    except ImportError:
        pass
    out["nsys"] = nsys_version(nsys) if nsys else None
    return out


def step_summary(step_ms: list[float], warmup: int = 1) -> dict:
    """p50 and mean step time (ms) of the steps after ``warmup``."""
    kept = step_ms[warmup:] if len(step_ms) > warmup else step_ms
    return {"steps": len(step_ms), "warmup": len(step_ms) - len(kept),
            "step_ms_p50": statistics.median(kept) if kept else None,
            "step_ms_mean": statistics.fmean(kept) if kept else None}


def overhead_summary(step_ms: list[float], annotated: list[bool], under_nsys: bool, nvtx_active: bool,
                     warmup: int = 4) -> dict:
    """What the annotations cost, from one ``--overhead-ab`` run: annotated minus unannotated step time.

    Steps alternate ABBA within the one process (same caches, clocks and
    allocator state), so the comparison is paired; the first ``warmup`` steps
    are left out. ``nvtx_active`` false (CPU, no nvtx package) makes the
    difference pure noise.
    """
    kept = list(zip(step_ms, annotated))[warmup:]
    on = [t for t, a in kept if a]
    off = [t for t, a in kept if not a]
    d: dict = {"method": f"one run, decode steps alternately annotated and not (ABBA), first {warmup} left out",
               "under_nsys": under_nsys, "nvtx_active": nvtx_active,
               "annotated": {"steps": len(on), "step_ms_p50": statistics.median(on) if on else None,
                             "step_ms_mean": statistics.fmean(on) if on else None},
               "unannotated": {"steps": len(off), "step_ms_p50": statistics.median(off) if off else None,
                               "step_ms_mean": statistics.fmean(off) if off else None},
               "step_ms": step_ms, "step_annotated": annotated}
    if on and off:
        a, b = d["annotated"], d["unannotated"]
        d["delta_ms_p50"] = a["step_ms_p50"] - b["step_ms_p50"]
        d["delta_share_p50"] = d["delta_ms_p50"] / b["step_ms_p50"]
        d["delta_ms_mean"] = a["step_ms_mean"] - b["step_ms_mean"]
        d["delta_share_mean"] = d["delta_ms_mean"] / b["step_ms_mean"]
    return d


def run_report(sqlite: Path, out: Path) -> dict:
    """Run ``nsysparse report`` on ``sqlite`` in-process; returns what happened (never raises for its failure)."""
    try:
        from nsysparse.cli import main as nsysparse_main
    except ImportError as exc:
        return {"status": "unavailable", "message": f"nsysparse is not importable ({exc}); "
                                                    f"run `nsysparse report {sqlite}` once it is installed"}
    argv = ["report", str(sqlite), "--out", str(out)]
    try:
        rc = nsysparse_main(argv)
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:  # a bug in the report must not lose the trace we just took
        return {"status": "failed", "argv": argv, "message": f"{type(exc).__name__}: {exc}"}
    return {"status": "ok" if rc == 0 else "failed", "argv": argv, "exit_code": rc}


def _run_engine(cmd: list[str], log: Path, result: Path, what: str) -> dict:
    t0 = time.perf_counter()
    rc = run_logged(cmd, log, timeout=3600, env=child_env())
    if rc != 0 or not result.is_file():
        raise ProfileError(f"{what} failed (exit {rc}); see {log}", EXIT_RUN_FAILED)
    d = json.loads(result.read_text())
    d["wall_s"] = round(time.perf_counter() - t0, 3)
    return d


def profile(ns: argparse.Namespace) -> int:
    """Carry out one ``runners.profile`` invocation; raises :class:`ProfileError` on a user-facing failure."""
    cfg = config_from_args(ns)
    try:
        cfg.validate()
    except ValueError as exc:
        raise ProfileError(str(exc), EXIT_USAGE) from None
    name = ns.name or f"{cfg.preset}_{cfg.mode}_{cfg.sync}"
    out: Path = (ns.out or Path("nsysparse-out") / "runs" / name).resolve()
    stem = out / name
    nsys = None if ns.no_nsys else find_nsys()
    if ns.dry_run:
        cmd = engine_program(cfg, out / "engine.json")
        if not ns.no_nsys:
            cmd = profile_command(nsys or "nsys", stem, cmd, extra=ns.nsys_args)
            if nsys is None:
                print("note: nsys not found; the command names plain `nsys`", file=sys.stderr)
        print(shlex.join(cmd))
        return 0
    if not ns.no_nsys and nsys is None:
        raise ProfileError("nsys not found ($NSYS, PATH, /opt/nvidia/nsight-systems/*/bin, Nsight Compute's "
                           "bundled copy); install Nsight Systems or set NSYS, or pass --no-nsys", EXIT_NO_NSYS)
    gpu = gpu_info() if cfg.device == "cuda" or not ns.no_nsys else None
    if (cfg.device == "cuda" or not ns.no_nsys) and gpu is None:
        raise ProfileError("no CUDA GPU visible (nvidia-smi and torch see none); profiling needs one "
                           "(the engine alone runs with --no-nsys --device cpu)", EXIT_NO_GPU)
    if not ns.no_nsys and cfg.device != "cuda":
        raise ProfileError("profiling traces CUDA: use --device cuda (or --no-nsys)", EXIT_USAGE)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "profile.log"
    log.write_text("")
    manifest: dict = {"tool": "runners.profile", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      "argv": sys.argv[1:], "name": name, "preset": cfg.preset, "options": asdict(cfg),
                      "gpu": gpu, "versions": versions(nsys), "nsys": str(nsys) if nsys else None}
    from .engine.presets import get_preset

    manifest["preset_shape"] = get_preset(cfg.preset).as_dict()
    result_path = out / "engine.json"
    program = engine_program(cfg, result_path)
    if nsys is None:
        manifest["command"] = shlex.join(program)
        result = _run_engine(program, log, result_path, "the engine")
    else:
        cmd = profile_command(nsys, stem, program, extra=ns.nsys_args)
        manifest["command"] = shlex.join(cmd)
        result = _run_engine(cmd, log, result_path, "nsys profile")
        try:
            sqlite, recovery = ensure_sqlite(nsys, stem, log)
        except NsysError as exc:
            raise ProfileError(str(exc), EXIT_RUN_FAILED) from None
        manifest["trace"] = {"sqlite": sqlite.name, "nsys_rep": stem.with_suffix(".nsys-rep").name,
                             "export": recovery.how, "recovery_steps": recovery.steps,
                             "sqlite_bytes": sqlite.stat().st_size}
    manifest["engine"] = {k: result[k] for k in ("layers", "moe_layers", "expert_bytes", "gpu_cache_experts",
                                                  "host_cache_experts", "stats", "store", "device_name",
                                                  "host_pinning", "nvtx_active", "prefill_ms", "wall_s")}
    manifest["engine"]["steps"] = step_summary(result["step_ms"])
    manifest["disk_read"] = {"method": result["disk_read_method"], "note": result["disk_read_note"],
                             "used": cfg.mode == "disk"}
    if ns.overhead:
        ab_cfg = replace(cfg, overhead_ab=True, io_log=None, decode_steps=ns.overhead_steps or cfg.decode_steps)
        ab_path = out / "engine_overhead_ab.json"
        ab_prog = engine_program(ab_cfg, ab_path)
        if nsys is not None:  # the same conditions as the traced run: under nsys, trace discarded
            ab_stem = out / "_overhead_ab"
            ab_prog = profile_command(nsys, ab_stem, ab_prog, export="none", extra=ns.nsys_args)
        ab = _run_engine(ab_prog, log, ab_path, "the annotations on/off run")
        if nsys is not None:
            for suffix in (".nsys-rep", ".qdstrm"):
                ab_stem.with_suffix(suffix).unlink(missing_ok=True)
        ov = overhead_summary(ab["step_ms"], ab["step_annotated"], under_nsys=nsys is not None,
                              nvtx_active=ab["nvtx_active"])
        (out / "overhead.json").write_text(json.dumps(ov, indent=1))
        manifest["overhead"] = {k: ov.get(k) for k in ("delta_ms_p50", "delta_share_p50", "delta_ms_mean",
                                                        "delta_share_mean", "under_nsys", "nvtx_active")}
    if ns.bandwidth and cfg.device == "cuda":
        bw_path = out / "bandwidth.json"
        rc = run_logged([sys.executable, "-m", "runners.bandwidth", "--preset", cfg.preset, "--json", str(bw_path)],
                        log, timeout=600, env=child_env())
        manifest["bandwidth"] = json.loads(bw_path.read_text()) if rc == 0 and bw_path.is_file() else None
    if nsys is not None and ns.report:
        manifest["report"] = run_report(out / manifest["trace"]["sqlite"], out / "report")
        if manifest["report"]["status"] != "ok":
            print(f"{out}: report not made: {manifest['report'].get('message', manifest['report'])}", file=sys.stderr)
    manifest["files"] = sorted(p.name for p in out.iterdir()) + ["manifest.json"]
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, default=str))
    tmp.replace(out / "manifest.json")
    st = manifest["engine"]["steps"]
    print(f"{out}: {cfg.preset} {cfg.mode}/{cfg.sync}, {st['steps']} steps, p50 {st['step_ms_p50']:.2f} ms"
          + (f", trace {manifest['trace']['sqlite']}" if nsys else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit codes 0 ok, 2 usage, 3 no nsys, 4 no GPU, 5 the run failed."""
    ns = build_parser().parse_args(argv)
    try:
        return profile(ns)
    except ProfileError as exc:
        print(f"runners.profile: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
