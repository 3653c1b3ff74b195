"""``nsysparse``: arguments in, exit codes out; nothing else.

Every command calls the library; the library raises one of the typed errors of
``nsysparse.errors`` and only this module turns it into one line on stderr and
its exit code (CONTRACT.md). Anything else is our bug, shown with a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

from . import __version__
from .entry import INTERRUPTED
from .errors import NsysParseError, UsageError
from .links import PEAK_KINDS
from .report import Report, Settings
from .window import Window, parse_steps, parse_window

FORMATS = ("text", "json", "markdown")


def example_trace() -> Path:
    """The real trace bundled in the package (the offload_disk fixture)."""
    return Path(str(resources.files("nsysparse") / "data" / "example.sqlite"))


def default_out(trace: Path) -> Path:
    return Path("nsysparse-out") / trace.stem


MAX_PEAK_GBPS = 10_000  # GB/s: beyond any link built (NVLink 5 is 1,800 GB/s per GPU)
MIN_PEAK_GBPS = 0.001  # 1 MB/s: below any link; a smaller "peak" only makes utilisation absurd


def parse_link_peaks(items: list[str] | None) -> dict[str, float]:
    """``["H2D=55", "disk=7"]`` -> ``{"H2D": 55.0, "disk": 7.0}``; bad items raise UsageError."""
    out: dict[str, float] = {}
    for item in items or []:
        kind, _, value = item.partition("=")
        kind = kind.strip()
        if kind not in PEAK_KINDS:
            raise UsageError(None, f"--link-peak {item!r}: KIND must be one of {', '.join(PEAK_KINDS)}")
        try:
            gbps = float(value)
        except ValueError:
            raise UsageError(None, f"--link-peak {item!r}: GBPS must be a number (GB/s, 1e9 bytes per second)") from None
        if not MIN_PEAK_GBPS <= gbps <= MAX_PEAK_GBPS:
            raise UsageError(None, f"--link-peak {item!r}: GBPS must be between {MIN_PEAK_GBPS:g} and {MAX_PEAK_GBPS:,} "
                                   "(GB/s, 1e9 bytes per second)")
        out[kind] = gbps
    return out


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (exit 2, one line) instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(None, f"{self.prog}: {message} (see `{self.prog} --help`)")


def _analysis_options(p: argparse.ArgumentParser) -> None:
    d = Settings()
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr (shown on a terminal)")
    p.add_argument("--step", help=f"step range text, without domain (default {d.step!r})")
    p.add_argument("--wait", help=f"regex (re.search) for host-wait ranges (default {d.wait!r})")
    p.add_argument("--layer", help=f"layer range text (default {d.layer!r})")
    p.add_argument("--io-range", dest="io_range", help=f"disk-read range text with byte payload (default {d.io_range!r})")
    p.add_argument("--warmup", type=int, help="first N steps are warm-up (default 1 with 3+ steps, else 0)")
    p.add_argument("--link-peak", dest="link_peak", action="append", metavar="KIND=GBPS",
                   help="peak GB/s of a link kind: H2D, D2H, D2D, P2P or disk (repeatable)")
    p.add_argument("--window", metavar="START:END",
                   help="analyse only what starts in this span, seconds from the capture's start (either side optional)")
    p.add_argument("--io-log", dest="io_log", metavar="JSONL",
                   help="the engine's I/O log: disk reads from it when the trace's ranges carry no byte payloads")
    p.add_argument("--steps", metavar="A:B", help="analyse only steps A to B-1 (a Python slice: 2:5 keeps 2, 3 and 4)")


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from parsed options; ``given`` records what the user set."""
    given = {k for k in ("step", "wait", "layer", "io_range") if getattr(args, k, None) is not None}
    d = Settings()
    if args.warmup is not None and args.warmup < 0:
        raise UsageError(None, "--warmup must be 0 or more")
    seconds, steps = parse_window(getattr(args, "window", None)), parse_steps(getattr(args, "steps", None))
    if seconds is not None and steps is not None:
        raise UsageError(None, "give --window or --steps, not both")
    return Settings(
        window=Window(seconds=seconds, steps=steps) if (seconds or steps) else None,
        io_log=getattr(args, "io_log", None),
        step=args.step if args.step is not None else d.step,
        wait=args.wait if args.wait is not None else d.wait,
        layer=args.layer if args.layer is not None else d.layer,
        io_range=args.io_range if args.io_range is not None else d.io_range,
        warmup=args.warmup,
        link_peaks=parse_link_peaks(args.link_peak),
        given=frozenset(given),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nsysparse", description="Where an MoE decode step goes, from an Nsight Systems trace.")
    parser.add_argument("--version", action="version", version=f"nsysparse {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    rep = sub.add_parser("report", help="analyse one trace (.sqlite or .nsys-rep)")
    rep.add_argument("trace", nargs="?", help="exported .sqlite (or .nsys-rep when nsys is installed)")
    rep.add_argument("--example", action="store_true", help="analyse the real trace bundled in the package")
    rep.add_argument("--out", type=Path, help="output folder (default ./nsysparse-out/<trace stem>/)")
    rep.add_argument("--format", choices=FORMATS, default="text", help="what to print on stdout")
    rep.add_argument("--no-charts", action="store_true", help="skip the PNG charts")
    rep.add_argument("--force", action="store_true", help="replace an --out folder that nsysparse did not write")
    rep.add_argument("--no-html", dest="no_html", action="store_true", help="skip report.html")
    rep.add_argument("--perfetto", action="store_true", help="also write timeline.perfetto.json (Perfetto / chrome://tracing)")
    rep.add_argument("--db", type=Path, metavar="PATH", help="record the run in this results database (SQLite)")
    _analysis_options(rep)

    dif = sub.add_parser("diff", help="compare two runs, with bootstrap confidence intervals")
    dif.add_argument("runs", nargs="+", metavar="A B", help="two traces or report folders (one with --baseline)")
    dif.add_argument("--baseline", metavar="NAME", help="compare against the named baseline (as A)")
    dif.add_argument("--fail-on-regression", dest="fail_on_regression", action="store_true",
                     help="exit 7 when a headline figure is worse by more than --threshold and not noise")
    dif.add_argument("--threshold", type=float, default=None, metavar="PCT",
                     help="how much worse counts as a regression, in percent (default 5)")
    dif.add_argument("--format", choices=FORMATS, default="text")
    dif.add_argument("--out", type=Path)
    dif.add_argument("--force", action="store_true", help="replace an --out folder that nsysparse did not write")
    _analysis_options(dif)

    sho = sub.add_parser("show", help="print a report folder again, and redraw its charts, without the trace")
    sho.add_argument("folder", type=Path, help="a folder written by `nsysparse report`")
    sho.add_argument("--format", choices=FORMATS, default="text")
    sho.add_argument("--charts", type=Path, metavar="DIR", help="also draw the charts into DIR")
    sho.add_argument("--force", action="store_true", help="replace a --charts folder that nsysparse did not write")

    bas = sub.add_parser("baseline", help="keep named baselines for `diff --baseline`")
    bsub = bas.add_subparsers(dest="baseline_command", parser_class=_Parser)
    bsave = bsub.add_parser("save", help="save a trace's report (or a report folder) as baseline NAME")
    bsave.add_argument("name")
    bsave.add_argument("source", help="a trace, or a folder written by `nsysparse report`")
    _analysis_options(bsave)
    bsub.add_parser("list", help="the saved baselines")

    bat = sub.add_parser("batch", help="analyse many traces into one partitioned Parquet dataset")
    bat.add_argument("paths", nargs="+")
    bat.add_argument("--out", type=Path, required=True)
    bat.add_argument("--jobs", type=int, default=None)
    bat.add_argument("--scheduler", help="address of a Dask scheduler (default: local processes)")
    bat.add_argument("--on-error", dest="on_error", choices=("raise", "skip"), default="raise")
    bat.add_argument("--force", action="store_true", help="replace an --out folder that nsysparse did not write")
    bat.add_argument("--db", type=Path, metavar="PATH", help="record every analysed trace in this results database")
    _analysis_options(bat)

    his = sub.add_parser("history", help="the runs a results database holds, in time order, with a metric's change")
    his.add_argument("db", type=Path)
    his.add_argument("--metric", default="step_ms_p50", help="a numeric column of the runs table (default step_ms_p50)")
    return parser


def _print_report(report: Report, fmt: str) -> None:
    from .render import text

    sys.stdout.write({"text": text.render_text, "json": text.render_json, "markdown": text.render_markdown}[fmt](report))


def cmd_report(args: argparse.Namespace) -> int:
    """``nsysparse report TRACE``: analyse, write the folder, print the report."""
    from .render.files import check_out, spill_folder, write_report_folder

    if args.example == (args.trace is not None):
        raise UsageError(None, "nsysparse report: give a TRACE or --example, not both or neither")
    path = example_trace() if args.example else Path(args.trace)
    settings = settings_from(args)
    shown = args.out or default_out(path)
    out = check_out(shown, [path], args.force)
    with spill_folder(out) as spill:  # the API calls go to their file as they are read (nsysparse.tables)
        report = _analysed(path, settings, spill)
        write_report_folder(report, out, charts=_drawers(args))
    if args.db is not None:
        from .db import record_run

        record_run(args.db, report)
    _print_report(report, args.format)
    if args.format == "text":
        sys.stdout.write(f"wrote {shown}/\n")
    return 0


def _drawers(args: argparse.Namespace) -> Callable[[Report, Path], list[str]] | None:
    """What draws into the report folder: the charts, then report.html (which
    inlines them), then the Perfetto timeline, as the options ask."""
    parts: list[Callable[[Report, Path], list[str]]] = []
    if not args.no_charts:
        from .render.charts import write_charts

        parts.append(write_charts)
    if not args.no_html:
        from .render.html import write_html_into

        parts.append(write_html_into)
    if args.perfetto:
        from .render.perfetto import write_perfetto_into

        parts.append(write_perfetto_into)
    if not parts:
        return None
    return lambda report, folder: [name for draw in parts for name in draw(report, folder)]


def cmd_history(args: argparse.Namespace) -> int:
    """``nsysparse history DB``: the recorded runs in time order with a metric and its change."""
    from .db import history, history_lines

    sys.stdout.write("\n".join(history_lines(history(args.db, args.metric))) + "\n")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """``nsysparse show DIR``: the report a folder holds, printed (and its charts
    drawn into ``--charts``) exactly as ``report`` did, from the folder alone."""
    from .render.files import atomic_dir, check_out, read_report_folder

    report = read_report_folder(args.folder)
    if args.charts is not None:
        from .render.charts import write_charts

        with atomic_dir(check_out(args.charts, [args.folder], args.force)) as tmp:
            write_charts(report, tmp)
    _print_report(report, args.format)
    return 0


def _analysed(path: Path, settings: Settings, spill_to: Path | None = None) -> Report:
    """The trace at ``path`` (``.sqlite``, or ``.nsys-rep`` exported) analysed with
    ``settings`` (``spill_to``: see :func:`nsysparse.report.build_report`)."""
    from .inputs import resolve_trace
    from .report import build_report
    from .trace import open_trace

    with resolve_trace(path) as sqlite_path, open_trace(sqlite_path) as trace:
        return build_report(trace, settings, spill_to)


def _report_of(path: Path, settings: Settings) -> Report:
    """A trace analysed with ``settings``, or a report folder read back."""
    from .render.files import read_report_folder

    if path.is_dir() and (path / "manifest.json").is_file():
        return read_report_folder(path)
    return _analysed(path, settings)


def cmd_diff(args: argparse.Namespace) -> int:
    """``nsysparse diff A B``: print the comparison, write it (and its chart) to
    ``--out``. A and B are traces or report folders; ``--baseline NAME`` is A.
    With ``--fail-on-regression``, exit 7 when B regressed (each one named on stderr)."""
    from .baselines import existing_baseline
    from .diff import DEFAULT_THRESHOLD_PCT, diff_reports, regressions
    from .render.diff import RENDERERS as DIFF_RENDERERS, write_diff_folder
    from .render.files import check_out

    settings = settings_from(args)
    want = 1 if args.baseline else 2
    if len(args.runs) != want:
        raise UsageError(None, "nsysparse diff: give A and B, or --baseline NAME and B")
    if args.threshold is not None and not (0 <= args.threshold < 1e6):
        raise UsageError(None, "--threshold must be a percentage, 0 or more")
    runs = [Path(r) for r in args.runs]
    a, b = (existing_baseline(args.baseline), runs[0]) if args.baseline else (runs[0], runs[1])
    name_a = args.baseline or a.stem
    shown = args.out or Path("nsysparse-out") / f"{name_a}-vs-{b.stem}"
    out = check_out(shown, [a, b], args.force)
    d = diff_reports(_report_of(a, settings), _report_of(b, settings), given=(a, b))
    write_diff_folder(d, out)
    sys.stdout.write(DIFF_RENDERERS[args.format](d))
    if args.format == "text":
        sys.stdout.write(f"wrote {shown}/\n")
    if args.fail_on_regression:
        pct = DEFAULT_THRESHOLD_PCT if args.threshold is None else args.threshold
        worse = regressions(d, pct)
        for r in worse:
            of = " of A's mean step" if r["section"] == "breakdown" else ""
            print(f"{b}: regression: {r['section']} {r['name']} {r['change_pct']:+.1f}%{of} "
                  f"({r['a']:.4g} -> {r['b']:.4g} {r['unit']}), beyond {pct:g}% and not noise", file=sys.stderr)
        if worse:
            return 7
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    """``nsysparse baseline save NAME SOURCE`` / ``baseline list``."""
    from .baselines import baseline_path, copy_folder, list_baselines
    from .render.files import is_output_folder, write_report_folder

    if args.baseline_command == "list":
        for name in list_baselines():
            sys.stdout.write(f"{name}\n")
        return 0
    if args.baseline_command != "save":
        raise UsageError(None, "nsysparse baseline: say `save NAME SOURCE` or `list`")
    dest = baseline_path(args.name)
    source = Path(args.source)
    if source.is_dir():
        if not is_output_folder(source):
            raise UsageError(source, "is not a folder written by `nsysparse report`; give it or a trace")
        copy_folder(source, dest)
    else:
        write_report_folder(_report_of(source, settings_from(args)), dest)
    sys.stdout.write(f"saved baseline {args.name!r} in {dest}/\n")
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    """``nsysparse batch PATHS... --out DIR``: exit 0 when at least one trace was
    analysed (each skipped one is a line on stderr and a row of failures.json)."""
    from .batch import FAILURES, run_batch, write_batch
    from .render.files import check_out

    settings = settings_from(args)
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(None, "--jobs must be 1 or more")
    paths = [str(p) for p in args.paths]
    check_out(args.out, [Path(p) for p in paths], args.force)
    analysed, failures = run_batch(paths, settings, jobs=args.jobs, scheduler=args.scheduler, on_error=args.on_error)
    for f in failures:
        print(f"{f['message']} (skipped)", file=sys.stderr)
    if not analysed and failures:
        return int(failures[0]["exit_code"])  # nothing analysed: no folder either
    write_batch(args.out, analysed, failures, paths, settings)
    if args.db is not None:
        from .db import record_summary

        for _, res in analysed:
            record_summary(args.db, res["summary"], res["tables"])
    sys.stdout.write(f"analysed {len(analysed)} of {len(paths)} traces"
                     + (f", skipped {len(failures)} (see {FAILURES})" if failures else "") + f"; wrote {args.out}/\n")
    return 0


COMMANDS = {"report": cmd_report, "show": cmd_show, "diff": cmd_diff, "baseline": cmd_baseline, "batch": cmd_batch,
            "history": cmd_history}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: returns the exit code (CONTRACT.md)."""
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help(sys.stderr)
            return 2
        from . import progress

        if getattr(args, "quiet", False):  # progress goes to stderr only: JSON on stdout stays clean
            progress.set_enabled(False)
        return COMMANDS[args.command](args)
    except NsysParseError as err:
        print(str(err), file=sys.stderr)
        return err.exit_code
    except BrokenPipeError:
        # stdout closed early (`nsysparse report T | head`): the outputs are written;
        # point stdout at devnull so the interpreter's final flush stays quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
