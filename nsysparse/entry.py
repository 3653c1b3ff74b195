"""The console script: imports the CLI (pandas, pyarrow, matplotlib: most of a
second) under the same Ctrl-C handling as the command itself."""

from __future__ import annotations

import sys

INTERRUPTED = "nsysparse: interrupted; no partial output was left"


def main() -> int:
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    return cli_main()
