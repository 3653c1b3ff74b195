"""Charts (placeholder until the chart module lands)."""

from __future__ import annotations

from pathlib import Path

from ..report import Report


def write_charts(report: Report, folder: Path) -> list[str]:
    return []
