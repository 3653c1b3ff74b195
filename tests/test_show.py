"""`nsysparse show DIR`: a report folder alone (the trace deleted) prints and
draws exactly what `nsysparse report` did."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from nsysparse.cli import main
from nsysparse.render.files import read_report_folder

FORMATS = ("text", "markdown", "json")


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Path, dict[str, str]]:
    """Each format as `report` printed it, from a copy of a fixture that is then deleted."""
    tmp = tmp_path_factory.mktemp("show")
    trace = tmp / "offload_disk.sqlite"
    shutil.copy(data_dir / "offload_disk.sqlite", trace)
    out = tmp / "rep"
    texts = {}
    for fmt in FORMATS:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert main(["report", str(trace), "--out", str(out), "--format", fmt]) == 0
        texts[fmt] = buf.getvalue()
    trace.unlink()  # the folder must stand alone
    return out, texts


@pytest.mark.parametrize("fmt", FORMATS)
def test_show_prints_what_report_printed(printed, fmt: str, capsys) -> None:
    out, texts = printed
    capsys.readouterr()
    assert main(["show", str(out), "--format", fmt]) == 0
    shown = capsys.readouterr().out
    expected = texts[fmt]
    if fmt == "text":  # `report` ends with where it wrote the folder
        expected = expected.removesuffix(f"wrote {out}/\n")
    assert shown == expected


def test_show_redraws_the_same_charts(printed, tmp_path: Path, capsys) -> None:
    out, _ = printed
    assert main(["show", str(out), "--charts", str(tmp_path / "charts")]) == 0
    for name in ("timeline.png", "steps.png", "links.png", "gpu_busy.png"):
        a, b = imread(out / name), imread(tmp_path / "charts" / name)
        assert a.shape == b.shape and np.array_equal(a, b), name


def test_the_folder_holds_every_table_the_renderers_read(printed) -> None:
    out, _ = printed
    report = read_report_folder(out)
    for name in ("copies", "sync_calls", "gpus", "threads", "gpu_busy", "steps", "links"):
        assert name in report.tables
    assert not hasattr(report, "trace")


def test_show_on_a_folder_that_is_not_a_report(tmp_path: Path, capsys) -> None:
    (tmp_path / "x").mkdir()
    assert main(["show", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err == f"{tmp_path / 'x'}: is not an nsysparse report folder: it lacks a readable manifest.json and summary.json\n"
    assert main(["show", str(tmp_path / "nope")]) == 3
