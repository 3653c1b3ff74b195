"""Charts of a report, as PNG, drawn headless with matplotlib's object API.

One module per chart, each a function ``Report -> Figure`` that only lays out
what the report's tables hold (a chart computes nothing: the figures come from
the analyses, so ``nsysparse show DIR`` redraws them from a report folder):

- ``timeline.png`` (:mod:`.timeline`): one representative step, one lane per
  kind of activity (the step thread's NVTX ranges by depth, its synchronising
  calls, other threads' ranges inside the step, each GPU stream), copies
  coloured by link.
- ``steps.png`` (:mod:`.steps`): per step, where its time goes.
- ``links.png`` (:mod:`.links`): per-copy GB/s per link, with the link's
  effective GB/s and its peak.
- ``gpu_busy.png`` (:mod:`.gpu_busy`): per time bin, the share of the bin with
  a kernel (or graph run) running and with any GPU op, per device.

Nothing here goes through ``pyplot``: no global figure state, no GUI backend,
nothing shown. :func:`write_charts` saves them; a chart that fails to draw
(a degenerate trace) becomes a note and the other charts and tables stand.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from matplotlib.figure import Figure

from ...report import Report
from .gpu_busy import gpu_busy_figure
from .links import copy_rates, links_figure
from .steps import step_breakdown, steps_figure
from .style import DPI, MAX_BARS, representative_step
from .timeline import Lane, timeline_figure, timeline_lanes

CHARTS: dict[str, Callable[[Report], Figure]] = {
    "timeline.png": timeline_figure,
    "steps.png": steps_figure,
    "links.png": links_figure,
    "gpu_busy.png": gpu_busy_figure,
}

__all__ = [
    "CHARTS", "DPI", "MAX_BARS", "Lane", "copy_rates", "gpu_busy_figure", "links_figure", "representative_step",
    "step_breakdown", "steps_figure", "timeline_figure", "timeline_lanes", "write_charts",
]


def write_charts(report: Report, folder: Path) -> list[str]:
    """Draw every chart of :data:`CHARTS` and save it as PNG in ``folder``.
    Returns the file names written. A chart that cannot be drawn (a degenerate
    trace defeating matplotlib) is left out with a note in the report's notes:
    a chart never costs the user the report."""
    folder = Path(folder)
    written = []
    for name, draw in CHARTS.items():
        try:
            fig = draw(report)
            fig.savefig(folder / name, dpi=DPI, bbox_inches="tight", facecolor="white")
        except Exception as exc:  # noqa: BLE001 - any drawing failure becomes a note
            (folder / name).unlink(missing_ok=True)
            note = f"chart {name} could not be drawn ({type(exc).__name__}: {exc}); the tables are complete"
            report.notes.append(note)
            report.summary.setdefault("notes", []).append(note)
            continue
        written.append(name)
    return written
