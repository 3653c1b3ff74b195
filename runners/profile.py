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

Exit codes are CONTRACT.md's, raised as :mod:`nsysparse.errors` classes and
printed as one line on stderr: 2 usage (a bad option; no GPU where the run
needs one), 5 no usable trace (nsys not found; no NVTX annotation backend
under nsys; nsys or the engine failed), and the report's own code when
``nsysparse report`` refuses the trace. ``--no-nsys`` on a machine without a
GPU runs the engine on the CPU (and says so) unless ``--device cuda`` is given.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, replace
from importlib import metadata
from pathlib import Path

from nsysparse import conventions as C
from nsysparse.errors import NotAnExport, NsysParseError, UsageError

from .engine.config import DEFAULT_STORE, EngineConfig
from .engine.instrument import DESCRIBE, NVTX, TORCH, annotation_backend
from .engine.options import add_engine_arguments, config_from_args, engine_argv
from .engine.presets import get_preset
from .engine.store import build_store
from .nsys import ensure_sqlite, find_nsys, nsys_version, profile_command, run_logged

ROOT = Path(__file__).resolve().parent.parent
IO_LOG = "io_log.jsonl"  # written under nsys when the annotations carry no byte payloads


def build_parser() -> argparse.ArgumentParser:
    """The ``runners.profile`` argument parser (engine options included)."""
    parser = argparse.ArgumentParser(prog="python -m runners.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_engine_arguments(parser)
    # no --device: cuda, except --no-nsys on a machine without a GPU (resolve_device)
    parser.set_defaults(device=None)
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


def current_umask() -> int:
    """This process's umask, read without changing it where Linux allows (``/proc/self/status``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # the portable way sets it to read it: set it straight back
    os.umask(mask)
    return mask


def honour_umask(folder: Path) -> None:
    """Give ``folder`` the mode a plain ``mkdir`` would (``0o777 & ~umask``).

    ``tempfile.mkdtemp`` creates folders 0700, which a teammate cannot read; the
    report folder comes from one (renamed into place).
    """
    folder.chmod(0o777 & ~current_umask())


def run_report(sqlite: Path, out: Path, io_log: Path | None = None) -> dict:
    """``nsysparse report`` on ``sqlite`` through the library: ``out`` gets the report folder.

    Returns what happened (``status`` ok, failed or unavailable; ``text``, the
    terminal report, when ok; ``exit_code`` and ``message`` when not); never
    raises for the report's failure, so the trace just taken is not lost.
    """
    try:
        import nsysparse
        from nsysparse.render.files import spill_folder, write_report_folder
        from nsysparse.render.text import render_text
        from nsysparse.report import Settings, build_report
    except ImportError as exc:
        return {"status": "unavailable", "message": f"nsysparse is not importable ({exc}); "
                                                    f"run `nsysparse report {sqlite}` once it is installed"}
    try:
        from nsysparse.render.charts import write_charts
    except ImportError:  # matplotlib missing: tables and text still come
        write_charts = None
    settings = Settings(step=C.STEP, wait=C.WAIT, layer=C.LAYER, io_range=C.IO_RANGE,
                        io_log=str(io_log) if io_log is not None and io_log.exists() else None)
    try:
        with nsysparse.open_trace(sqlite) as trace, spill_folder(out) as spill:  # as `nsysparse report` does
            report = build_report(trace, settings, spill)
            files = write_report_folder(report, out, charts=write_charts)
            text = render_text(report)
    except NsysParseError as exc:
        return {"status": "failed", "exit_code": exc.exit_code, "message": str(exc)}
    except Exception as exc:  # our bug: reported with its traceback once the trace is safe
        import traceback

        return {"status": "failed", "exit_code": 1, "message": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()}
    honour_umask(out)
    return {"status": "ok", "folder": out.name, "files": files, "charts": write_charts is not None, "text": text}


def resolve_device(ns: argparse.Namespace, gpu: dict | None) -> tuple[str, str | None]:
    """The engine's device, and a note for stderr when it was not asked for.

    Under nsys: cuda (a GPU is required, and ``--device cpu`` is refused).
    With ``--no-nsys``: what ``--device`` says, else cuda when a GPU is
    visible and cpu when none is.
    """
    if not ns.no_nsys:
        if ns.device == "cpu":
            raise UsageError(None, "profiling traces CUDA: use --device cuda (or --no-nsys to run on the CPU)")
        if gpu is None:
            raise UsageError(None, "no CUDA GPU visible (nvidia-smi and torch see none); profiling needs one "
                                   "(the engine alone runs on the CPU with --no-nsys)")
        return "cuda", None
    if ns.device == "cuda" and gpu is None:
        raise UsageError(None, "--device cuda but no CUDA GPU is visible (nvidia-smi and torch see none); "
                               "leave --device out to run on the CPU")
    if ns.device is not None:
        return ns.device, None
    if gpu is None:
        return "cpu", "no CUDA GPU visible: --no-nsys runs the engine on the CPU"
    return "cuda", None


def resolve_annotations(cfg: EngineConfig, under_nsys: bool, out: Path) -> tuple[EngineConfig, dict]:
    """Fix the annotation backend of a run (what the manifest's ``annotations`` says).

    Under nsys a profile is never silently unannotated: the ``nvtx`` package,
    else ``torch.cuda.nvtx`` (no payloads, so the run also writes
    :data:`IO_LOG`, whose ranges carry the bytes and align with the trace on
    the clock mark), else :class:`NotAnExport`. ``--no-nvtx`` turns
    annotations off on purpose. Without nsys the engine picks (``auto``).
    """
    info: dict = {"requested": cfg.nvtx_backend if cfg.nvtx else "off", "backend": None, "payloads": False,
                  "io_log": Path(cfg.io_log).name if cfg.io_log else None}
    if not under_nsys:
        info["note"] = "without nsys the engine chose; `backend` is what it used"
        return cfg, info
    if not cfg.nvtx:
        info["note"] = "--no-nvtx: no ranges; the report sees the whole span as one step"
        return cfg, info
    backend = annotation_backend(cfg.nvtx_backend)
    if backend is None:
        what = ("the nvtx package does not import and torch.cuda.nvtx does not work (a CPU build of torch?)"
                if cfg.nvtx_backend == "auto" else f"--nvtx-backend {cfg.nvtx_backend} does not work here")
        raise NotAnExport(None, f"no NVTX annotations: {what}; `pip install nvtx`, or pass --no-nvtx to "
                                "profile without step ranges")
    cfg = replace(cfg, nvtx_backend=backend)
    if backend == TORCH:  # no payloads in the trace: the bytes are in the I/O log only
        if cfg.io_log is None:
            cfg = replace(cfg, io_log=str(out / IO_LOG))
        info["io_log"] = Path(cfg.io_log).name
    info.update(backend=backend, payloads=backend == NVTX, description=DESCRIBE[backend])
    return cfg, info


def _run_engine(cmd: list[str], log: Path, result: Path, what: str) -> dict:
    t0 = time.perf_counter()
    rc = run_logged(cmd, log, timeout=3600, env=child_env())
    if rc != 0 or not result.is_file():
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        raise NotAnExport(log, f"{what} failed (exit {rc}): {lines[-1] if lines else 'no output'}")
    d = json.loads(result.read_text())
    d["wall_s"] = round(time.perf_counter() - t0, 3)
    return d


def profile(ns: argparse.Namespace) -> int:
    """Carry out one ``runners.profile`` invocation; raises an :class:`NsysParseError` on a user-facing failure."""
    nsys = None if ns.no_nsys else find_nsys()
    if not ns.no_nsys and nsys is None and not ns.dry_run:
        raise NotAnExport(None, "nsys not found ($NSYS, PATH, /opt/nvidia/nsight-systems/*/bin, Nsight Compute's "
                                "bundled copy); install Nsight Systems or set NSYS, or pass --no-nsys")
    if ns.dry_run and (ns.device is not None or not ns.no_nsys):  # nothing to probe: print what was asked
        gpu, device, note = None, ns.device or "cuda", None
    else:
        gpu = None if ns.no_nsys and ns.device == "cpu" else gpu_info()
        device, note = resolve_device(ns, gpu)
    ns.device = device
    cfg = config_from_args(ns)
    try:
        cfg.validate()
    except ValueError as exc:
        raise UsageError(None, str(exc)) from None
    name = ns.name or f"{cfg.preset}_{cfg.mode}_{cfg.sync}"
    out: Path = (ns.out or Path("nsysparse-out") / "runs" / name).resolve()
    stem = out / name
    if ns.dry_run:
        cmd = engine_program(cfg, out / "engine.json")
        if not ns.no_nsys:
            cmd = profile_command(nsys or "nsys", stem, cmd, extra=ns.nsys_args)
            if nsys is None:
                print("note: nsys not found; the command names plain `nsys`", file=sys.stderr)
        print(shlex.join(cmd))
        return 0
    if note:
        print(f"runners.profile: {note}", file=sys.stderr)
    cfg, annotations = resolve_annotations(cfg, nsys is not None, out)
    if nsys is not None:
        print(f"runners.profile: annotations: {annotations.get('description') or 'none (--no-nvtx)'}",
              file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "profile.log"
    log.write_text("")
    manifest: dict = {"tool": "runners.profile", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      "argv": sys.argv[1:], "name": name, "preset": cfg.preset, "options": asdict(cfg),
                      "gpu": gpu, "device_note": note, "versions": versions(nsys), "nsys": str(nsys) if nsys else None,
                      "annotations": annotations}
    manifest["preset_shape"] = get_preset(cfg.preset).as_dict()
    # the store is written here, before nsys starts: generating it is not part of the profile
    _, manifest["store_build"] = build_store(cfg.store or DEFAULT_STORE, get_preset(cfg.preset), cfg.seed, cfg.layers)
    result_path = out / "engine.json"
    program = engine_program(cfg, result_path)
    if nsys is None:
        manifest["command"] = shlex.join(program)
        result = _run_engine(program, log, result_path, "the engine")
    else:
        cmd = profile_command(nsys, stem, program, extra=ns.nsys_args)
        manifest["command"] = shlex.join(cmd)
        result = _run_engine(cmd, log, result_path, "nsys profile")
        sqlite, recovery = ensure_sqlite(nsys, stem, log)
        manifest["trace"] = {"sqlite": sqlite.name, "nsys_rep": stem.with_suffix(".nsys-rep").name,
                             "export": recovery.how, "recovery_steps": recovery.steps,
                             "sqlite_bytes": sqlite.stat().st_size}
    manifest["engine"] = {k: result[k] for k in ("layers", "moe_layers", "expert_bytes", "gpu_cache_experts",
                                                  "host_cache_experts", "stats", "store", "device_name",
                                                  "host_pinning", "nvtx_active", "prefill_ms", "wall_s")}
    used = manifest["engine"]["nvtx_backend"] = result.get("nvtx_backend")
    if nsys is None:
        annotations.update(backend=used, payloads=used == NVTX)
    elif used != annotations["backend"]:  # never a silently unannotated (or differently annotated) profile
        raise NotAnExport(result_path, f"the engine annotated with {used!r}, not {annotations['backend']!r} "
                                       f"as asked; the trace {manifest['trace']['sqlite']} lacks its ranges")
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
    report: dict | None = None
    if nsys is not None and ns.report:
        log_name = (manifest.get("annotations") or {}).get("io_log")
        report = run_report(out / manifest["trace"]["sqlite"], out / "report", io_log=out / log_name if log_name else None)
        manifest["report"] = {k: v for k, v in report.items() if k not in ("text", "traceback")}
    manifest["files"] = sorted(p.name for p in out.iterdir()) + ["manifest.json"]
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, default=str))
    tmp.replace(out / "manifest.json")
    if report is not None and report["status"] == "ok":
        sys.stdout.write(report["text"])
    st = manifest["engine"]["steps"]
    print(f"{out}: {cfg.preset} {cfg.mode}/{cfg.sync} on {cfg.device}, {st['steps']} steps, "
          f"p50 {st['step_ms_p50']:.2f} ms" + (f", trace {manifest['trace']['sqlite']}" if nsys else ""))
    if report is not None and report["status"] != "ok":
        if "traceback" in report:
            sys.stderr.write(report["traceback"])
        print(f"{out}: report not made: {report['message']}", file=sys.stderr)
        return int(report.get("exit_code", 1))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: CONTRACT.md's exit codes (see the module doc); one line on stderr for a user's mistake."""
    ns = build_parser().parse_args(argv)
    try:
        return profile(ns)
    except NsysParseError as exc:
        print(str(exc) if exc.path else f"runners.profile: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
