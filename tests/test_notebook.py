"""``notebooks/explore.ipynb`` runs top to bottom against the bundled trace (and
against a folder given by ``NSYSPARSE_REPORT_DIR``), so it cannot rot."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from nsysparse.cli import main

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "explore.ipynb"


def _execute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, report_dir: Path | None) -> list[Any]:
    """Run the notebook in a fresh kernel; return every code cell's outputs."""
    # the kernel is another process: it must import this checkout's nsysparse
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    if report_dir is None:
        monkeypatch.delenv("NSYSPARSE_REPORT_DIR", raising=False)
    else:
        monkeypatch.setenv("NSYSPARSE_REPORT_DIR", str(report_dir))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"]
    assert not errors, errors
    return outputs


def _text(outputs: list[Any]) -> str:
    return "\n".join(o.get("text", "") + o.get("data", {}).get("text/html", "") + o.get("data", {}).get("text/markdown", "")
                     for o in outputs)


def test_notebook_runs_on_the_bundled_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = _execute(tmp_path, monkeypatch, None)
    text = _text(outputs)
    assert "example.sqlite, nsys 2025.3.2.0, 5 steps (1 warm-up)" in text
    assert "bubble_ratio" in text and "gpu_idle_ratio" in text  # the step table
    assert "Disk-to-Host Disk-&gt;Host host-&gt;host" in text  # the links table (HTML-escaped)
    assert "moe:disk_to_cpu" in text  # the per-range table
    assert "Top targets" in text or "top target" in text  # the report printed as Markdown
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3  # timeline, step breakdown, link bandwidth


def test_notebook_on_a_given_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixture_path, capsys) -> None:
    folder = tmp_path / "host"
    assert main(["report", str(fixture_path("offload_host")), "--out", str(folder), "--no-charts"]) == 0
    capsys.readouterr()
    text = _text(_execute(tmp_path, monkeypatch, folder))
    assert f"{folder}: offload_host.sqlite" in text
    assert "_no timeline.png: written with --no-charts?_" in text


def test_notebook_is_stored_clean() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
