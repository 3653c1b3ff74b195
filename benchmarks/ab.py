"""``report --no-charts`` under each value of one environment setting, against the
ADBC read of the columns it needs, on one machine in one run (issue 11).

    python benchmarks/ab.py TRACE --env NSYSPARSE_STREAM_EARLY=0,1 [--reps 2] [--json F]

The values run interleaved, rep by rep, so that a busy minute hits each alike;
every report is checked against the first value's (every table and the summary
equal, exactly). Prints one JSON object: wall s and peak RSS per value (best of
the reps, every wall kept), the ADBC floor, and each value's ratio to it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench  # noqa: E402


def same_report(a: Path, b: Path) -> bool:
    """Every Parquet table and summary.json of two report folders equal, exactly."""
    import pandas as pd

    for f in sorted(a.glob("*.parquet")):
        pd.testing.assert_frame_equal(pd.read_parquet(f), pd.read_parquet(b / f.name), check_exact=True)
    return json.loads((a / "summary.json").read_text()) == json.loads((b / "summary.json").read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("trace", type=Path)
    p.add_argument("--env", required=True, help="NAME=V1,V2,...: the setting and the values to compare")
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/nsysparse-ab"))
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    name, _, values = args.env.partition("=")
    values = values.split(",")
    with open(args.trace, "rb") as fh:  # warm the page cache: compare compute, not disk
        while fh.read(1 << 24):
            pass
    py = sys.executable
    runs: dict[str, list[tuple[float, int]]] = {v: [] for v in values}
    for rep in range(args.reps):
        for v in values:
            out = args.workdir / f"{name}_{v}"
            wall, rss, rc, err = bench.timed([py, "-m", "nsysparse", "report", str(args.trace), "--no-charts",
                                              "--out", str(out), "--force", "--quiet"], {**os.environ, name: v})
            if rc != 0:
                raise SystemExit(f"{name}={v}: exit {rc}: {err}")
            runs[v].append((wall, rss))
            print(f"{name}={v} rep {rep}: {wall:.2f} s, {rss / 1e6:.0f} MB", file=sys.stderr, flush=True)
    first = args.workdir / f"{name}_{values[0]}"
    needed = bench.needed_columns(args.trace)
    floor = bench.best_of([py, "-c", bench.ARROW_FLOOR, str(args.trace), json.dumps(needed), "adbc"], args.reps)
    res: dict[str, object] = {
        "trace": str(args.trace), "size_mb": round(args.trace.stat().st_size / 1e6, 1), "machine": bench.machine(),
        "setting": name,
        "same_answers": all(same_report(first, args.workdir / f"{name}_{v}") for v in values[1:]),
        "adbc_floor": floor,
        "values": {v: {"wall_s": round(min(rs)[0], 3), "peak_rss_mb": round(min(rs)[1] / 1e6, 1),
                       "walls": [round(w, 3) for w, _ in rs], "rss_mb": [round(r / 1e6, 1) for _, r in rs],
                       "per_adbc_floor": round(min(rs)[0] / floor["wall_s"], 2)} for v, rs in runs.items()},
    }
    print(json.dumps(res, indent=2))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
