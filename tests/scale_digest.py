"""A digest of everything a report computes on one trace: each table's columns,
dtypes and values, and the summary. Equal digests mean equal reports, exactly
(floats by their ``repr``, nulls by kind). ``python -m tests.scale_digest OUT``
writes the digests of every fixture that test_scale.py checks."""

from __future__ import annotations

import hashlib
import json
import lzma
import sys
from pathlib import Path

import pandas as pd

DATA = Path(__file__).resolve().parent / "data"


def fixture_traces(tmp: Path) -> dict[str, Path]:
    """Every real trace of tests/data (and runs/, and the xz ones decompressed into ``tmp``)."""
    out = {p.stem: p for p in sorted(DATA.glob("*.sqlite"))}
    out.update({f"runs/{p.stem}": p for p in sorted((DATA / "runs").glob("*.sqlite"))})
    for p in sorted(DATA.glob("*.sqlite.xz")) + sorted((DATA / "external").glob("*.sqlite.xz")):
        dest = tmp / p.name[: -len(".xz")]
        if not dest.exists():
            dest.write_bytes(lzma.decompress(p.read_bytes()))
        out[p.name[: -len(".sqlite.xz")]] = dest
    return out


def table_digest(df: pd.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([[c, str(t)] for c, t in df.dtypes.items()]).encode())
    h.update(df.astype(object).to_csv(index=False, float_format=None, na_rep="<NA>").encode())
    return h.hexdigest()


def report_digest(report, drop_input: bool = True) -> dict[str, str]:
    """Table name -> digest, and ``summary`` -> digest of the summary (input path left out:
    the xz traces are decompressed to a temporary folder)."""
    out = {name: table_digest(df) for name, df in sorted(report.tables.items())}
    summary = dict(report.summary)
    if drop_input:
        summary["input"] = {k: v for k, v in summary["input"].items() if k != "path"}
    out["summary"] = hashlib.sha256(json.dumps(summary, sort_keys=True, default=str).encode()).hexdigest()
    out["notes"] = hashlib.sha256(json.dumps(report.notes).encode()).hexdigest()
    return out


def main(out: str) -> None:
    import tempfile

    import nsysparse
    from nsysparse.errors import NsysParseError
    from nsysparse.report import build_report

    digests = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in fixture_traces(Path(tmp)).items():
            try:
                with nsysparse.open_trace(path) as t:
                    digests[name] = report_digest(build_report(t))
            except NsysParseError as exc:
                digests[name] = {"error": type(exc).__name__}
    Path(out).write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
