"""``report.html`` in a real headless Chromium: it loads with no script error and
no request (its CSP forbids any; a violation or an error is written onto the
root element by the page's first script, read back from the dumped DOM), the
figures shown are summary.json's, the timeline draws, and a 1280x800
screenshot is not blank. Skips where Chromium is absent
(``apt-get install -y chromium``)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from nsysparse.render.charts import write_charts
from nsysparse.render.html import CATEGORY, MAX_INTERVALS, fmt_ms, fmt_pct, render_html, timeline_data, write_html_into
from tests.share_fixture import shared_report

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (apt-get install -y chromium)")


@pytest.fixture(scope="module")
def report():
    return shared_report()


@pytest.fixture(scope="module")
def folder(report, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("html")
    write_charts(report, out)
    assert write_html_into(report, out) == ["report.html"]
    (out / "summary.json").write_text(json.dumps(report.summary))
    return out


def _chromium(*args: str, timeout: int = 90) -> subprocess.CompletedProcess[str]:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           "--disable-extensions", "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=3000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


class _Figures(HTMLParser):
    """data-key/data-value pairs and the text inside each such element, plus the root's attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.figs: dict[str, tuple[str, str]] = {}
        self.root: dict[str, str | None] = {}
        self.canvas: dict[str, str | None] = {}
        self._open: list[tuple[str, str, str, int]] = []
        self._text: list[str] = []
        self.depth = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.depth += 1
        if tag == "html":
            self.root = a
        if tag == "canvas":
            self.canvas = a
        if "data-key" in a:
            self._open.append((a["data-key"], a["data-value"], tag, self.depth))
            self._text.append("")

    def handle_endtag(self, tag):
        if self._open and self._open[-1][3] == self.depth:
            key, value, _, _ = self._open.pop()
            self.figs[key] = (value, " ".join(self._text.pop().split()))
        self.depth -= 1

    def handle_data(self, data):
        for i in range(len(self._text)):
            self._text[i] += data


def test_self_contained_and_bounded(folder, report):
    text = (folder / "report.html").read_text()
    assert not re.search(r"https?://", text), "no URL of any kind: nothing to fetch"
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"(?!data:)", text)
    assert text.count("data:image/png;base64,") == 4  # the four PNG charts, inlined
    data = timeline_data(report, max_intervals=50)
    assert sum(s["kept"] for s in data["steps"]) <= 50 + 3 * 20  # at least one per lane survives the cut
    assert all(s["kept"] < s["intervals"] for s in data["steps"])


def test_breakdown_band_sums_to_the_step(report):
    data = timeline_data(report)
    for s in data["steps"]:
        band = next(ln for ln in s["lanes"] if ln["kind"] == "breakdown")
        assert sum(band["d"]) == s["dur_ns"]


def test_works_without_the_new_tables(report):
    bare = type(report)(input=report.input, settings=report.settings,
                        tables={k: v for k, v in report.tables.items() if k not in ("copies", "sync_calls", "breakdown", "kernels_summary", "threads", "gpus")},
                        summary={k: v for k, v in report.summary.items() if k != "breakdown"}, notes=[])
    page = render_html(bare)
    assert 'id="timeline-data"' in page and 'id="breakdown"' not in page and 'id="kernels"' not in page


@needs_chromium
def test_loads_clean_and_shows_summary_figures(folder, report):
    res = _chromium("--dump-dom", (folder / "report.html").as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    p = _Figures()
    p.feed(res.stdout)
    assert p.root.get("data-ready") == "1", "the timeline script ran to its end"
    assert p.root.get("data-errors") is None, p.root.get("data-errors")
    assert p.root.get("data-blocked") is None, f"a request was attempted: {p.root.get('data-blocked')}"
    assert not re.search(r"CONSOLE.*(Uncaught|Error)", res.stderr), res.stderr[-2000:]
    assert p.canvas.get("data-lanes") and int(p.canvas["data-lanes"]) >= 8
    s = json.loads((folder / "summary.json").read_text())
    for key, kind in (("step_ms_p50", "ms"), ("step_ms_p95", "ms"), ("step_ms_mean", "ms"), ("bubble_ratio", "pct"),
                      ("gpu_idle_ratio", "pct"), ("sync_share", "pct"), ("io_floor_share", "pct")):
        value, shown = p.figs[key]
        assert json.loads(value) == s[key]
        assert shown.startswith(fmt_ms(s[key]) if kind == "ms" else fmt_pct(s[key]))
    for cat, ms in s["breakdown"].items():
        if ms > 0:
            assert json.loads(p.figs[f"breakdown.{cat}"][0]) == ms
    for i, t in enumerate(s["targets"]):
        assert json.loads(p.figs[f"targets.{i}.ms_per_step"][0]) == t["ms_per_step"]
        assert p.figs[f"targets.{i}.share"][1] == fmt_pct(t["share"])
    assert json.loads(p.figs["steps"][0]) == s["steps"] and json.loads(p.figs["warmup"][0]) == s["warmup"]


@needs_chromium
def test_screenshot_is_not_blank(folder):
    shot = folder / "shot.png"
    res = _chromium("--window-size=1280,800", f"--screenshot={shot}", (folder / "report.html").as_uri())
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (800, 1280)
    colours = np.unique(img.reshape(-1, 3), axis=0)
    assert len(colours) > 50
    assert (img.reshape(-1, 3) != 255).any(axis=1).mean() > 0.05  # more than a white page with a line of text


@needs_chromium
def test_print_layout_renders(folder):
    pdf = folder / "report.pdf"
    res = _chromium(f"--print-to-pdf={pdf}", "--no-pdf-header-footer", (folder / "report.html").as_uri())
    assert res.returncode == 0 and pdf.is_file() and pdf.stat().st_size > 20_000, res.stderr[-2000:]


def test_max_intervals_default_is_stated_on_the_page(folder):
    assert f"{MAX_INTERVALS}" in (folder / "report.html").read_text()


@needs_chromium
def test_zoom_pan_and_hover_work(folder, report):
    res = _chromium("--window-size=1280,800", "--dump-dom", (folder / "report.html").as_uri() + "#selftest")
    p = _Figures()
    p.feed(res.stdout)
    assert p.root.get("data-errors") is None, p.root.get("data-errors")
    got = json.loads(p.root["data-selftest"])
    assert got["zoom"] == pytest.approx(0.8)  # one wheel notch in
    assert 0 <= got["v0_after_pan"] < got["v0_before_pan"]  # dragging right shows earlier time
    segs = report.tables["breakdown_segments"]
    step = timeline_data(report)["steps"][0]["step"]
    mine = segs[segs["step"] == step]
    label, when, _ = got["tip"].split("\n", 2)
    assert got["tip"].endswith("where the step goes")  # the band: one of the step's parts, where it fell
    start = float(re.match(r"starts \+([0-9.]+) ms", when).group(1))
    t0 = int(report.tables["steps"].set_index("step").loc[step, "start_ns"])
    near = mine[((mine["start_ns"] - t0) / 1e6 - start).abs() < 0.0006]
    assert label in {CATEGORY[c][0] for c in near["category"]}
