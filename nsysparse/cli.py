"""``nsysparse``: arguments in, exit codes out; nothing else.

Every command calls the library; the library raises one of the typed errors of
``nsysparse.errors`` and only this module turns it into one line on stderr and
its exit code (CONTRACT.md). Anything else is our bug, shown with a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from . import __version__
from .errors import NsysParseError, UsageError
from .report import Settings, parse_link_peaks

FORMATS = ("text", "json", "markdown")


def example_trace() -> Path:
    """The real trace bundled in the package (the offload_disk fixture)."""
    return Path(str(resources.files("nsysparse") / "data" / "example.sqlite"))


def default_out(trace: Path) -> Path:
    return Path("nsysparse-out") / trace.stem


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (exit 2, one line) instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(None, f"{self.prog}: {message} (see `{self.prog} --help`)")


def _analysis_options(p: argparse.ArgumentParser) -> None:
    d = Settings()
    p.add_argument("--step", help=f"step range text, without domain (default {d.step!r})")
    p.add_argument("--wait", help=f"regex (re.search) for host-wait ranges (default {d.wait!r})")
    p.add_argument("--layer", help=f"layer range text (default {d.layer!r})")
    p.add_argument("--io-range", dest="io_range", help=f"disk-read range text with byte payload (default {d.io_range!r})")
    p.add_argument("--warmup", type=int, help="first N steps are warm-up (default 1 with 3+ steps, else 0)")
    p.add_argument("--link-peak", dest="link_peak", action="append", metavar="KIND=GBPS",
                   help="peak GB/s of a link kind: H2D, D2H, D2D, P2P or disk (repeatable)")


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from parsed options; ``given`` records what the user set."""
    given = {k for k in ("step", "wait", "layer", "io_range") if getattr(args, k, None) is not None}
    d = Settings()
    if args.warmup is not None and args.warmup < 0:
        raise UsageError(None, "--warmup must be 0 or more")
    return Settings(
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
    _analysis_options(rep)

    dif = sub.add_parser("diff", help="compare two runs, with bootstrap confidence intervals")
    dif.add_argument("a")
    dif.add_argument("b")
    dif.add_argument("--format", choices=FORMATS, default="text")
    dif.add_argument("--out", type=Path)
    _analysis_options(dif)

    bat = sub.add_parser("batch", help="analyse many traces into one partitioned Parquet dataset")
    bat.add_argument("paths", nargs="+")
    bat.add_argument("--out", type=Path, required=True)
    bat.add_argument("--jobs", type=int, default=None)
    bat.add_argument("--scheduler", help="address of a Dask scheduler (default: local processes)")
    bat.add_argument("--on-error", dest="on_error", choices=("raise", "skip"), default="raise")
    _analysis_options(bat)
    return parser


def cmd_report(args: argparse.Namespace) -> int:
    from .inputs import resolve_trace
    from .render.files import write_report_folder
    from .render.text import render_json, render_markdown, render_text
    from .report import build_report
    from .trace import open_trace

    if args.example == (args.trace is not None):
        raise UsageError(None, "nsysparse report: give a TRACE or --example, not both or neither")
    path = example_trace() if args.example else Path(args.trace)
    settings = settings_from(args)
    with resolve_trace(path) as sqlite_path:
        trace = open_trace(sqlite_path)
        report = build_report(trace, settings)
        out = args.out or default_out(path)
        charts = None
        if not args.no_charts:
            from .render.charts import write_charts

            charts = write_charts
        write_report_folder(report, out, charts=charts)
    render = {"text": render_text, "json": render_json, "markdown": render_markdown}[args.format]
    sys.stdout.write(render(report))
    if args.format == "text":
        sys.stdout.write(f"wrote {out}/\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: returns the exit code (CONTRACT.md)."""
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help(sys.stderr)
            return 2
        if args.command == "report":
            return cmd_report(args)
        if args.command == "diff":
            from .diff import cmd_diff

            return cmd_diff(args, settings_from(args))
        from .batch import cmd_batch

        return cmd_batch(args, settings_from(args))
    except NsysParseError as err:
        print(str(err), file=sys.stderr)
        return err.exit_code
    except BrokenPipeError:
        # stdout closed early (`nsysparse report T | head`): the outputs are written;
        # point stdout at devnull so the interpreter's final flush stays quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("nsysparse: interrupted; no partial output was left", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
