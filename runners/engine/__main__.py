"""``python -m runners.engine PRESET [options] [--result FILE]``: run the engine alone."""
from __future__ import annotations

import argparse
import json
import statistics
import sys

from .options import add_engine_arguments, config_from_args


def main(argv: list[str] | None = None) -> int:
    """Run the engine; print a one-line summary; write the full result as JSON to ``--result``."""
    parser = argparse.ArgumentParser(prog="python -m runners.engine", description=__doc__)
    add_engine_arguments(parser)
    parser.add_argument("--result", default=None, help="write the run's result (JSON) here")
    ns = parser.parse_args(argv)
    cfg = config_from_args(ns)
    from .instrument import AnnotationsUnavailable
    from .model import run_engine  # torch imported only once the arguments are good

    try:
        result = run_engine(cfg)
    except AnnotationsUnavailable as exc:  # CONTRACT.md's 5: the trace would not be a usable one
        print(f"runners.engine: {exc}", file=sys.stderr)
        return 5
    except (ValueError, RuntimeError) as exc:
        print(f"runners.engine: {exc}", file=sys.stderr)
        return 2
    d = result.as_dict()
    if ns.result:
        with open(ns.result, "w") as f:
            json.dump(d, f, indent=1)
    steps = result.step_ms
    s = result.stats
    p50 = statistics.median(steps) if steps else float("nan")
    print(f"{cfg.preset} {cfg.mode}/{cfg.sync} on {result.device_name}: {len(steps)} steps, p50 {p50:.2f} ms, "
          f"prefill {result.prefill_ms:.1f} ms; requested {s['requested']} hits {s['hits']} misses {s['misses']}; "
          f"disk {s['disk_bytes'] / 1e9:.3f} GB ({result.disk_read_method}), h2d {s['h2d_bytes'] / 1e9:.3f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
