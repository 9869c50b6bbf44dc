"""report.html rendered in headless Chromium: tables and plots present, every image decoded, nothing fetched."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_consolidate import build_fixture, run_inprocess

from src.report import Cell, Plot, ReportDoc, Section, Table, render_html, to_markdown

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package "
                                                              "'chromium': apt-get install -y chromium)")

# Injected first in <head> of a test copy: record every element whose resource failed to load (capture phase).
PROBE_HEAD = """<script>
window.__failed = [];
window.addEventListener('error', e => {
  const t = e.target;
  if (t && t !== window) window.__failed.push(t.tagName + ' ' + (t.src || t.href || ''));
}, true);
</script>"""
# Appended to the body: after load, each <img>'s decode state, resources fetched and the failures seen.
PROBE = """<script>
window.addEventListener('load', () => {
  const out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = JSON.stringify({
    images: [...document.images].map(i => ({complete: i.complete, w: i.naturalWidth, h: i.naturalHeight})),
    resources: performance.getEntriesByType('resource').map(e => e.name),
    failed: window.__failed,
  });
  document.body.appendChild(out);
});
</script>"""


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


def _probe(page: Path, tmp: Path) -> tuple[str, dict]:
    copy = tmp / f"probe-{page.name}"
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"<head>|<body>", lambda m: m.group(0) + PROBE_HEAD, text, count=1)
    copy.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    proc = _chromium(["--virtual-time-budget=10000", "--dump-dom", copy.as_uri()], tmp / "profile-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.DOTALL)
    assert m, "the probe script did not run: " + proc.stdout[-500:]
    return proc.stdout, json.loads(html.unescape(m.group(1)))


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    rd = build_fixture(tmp_path_factory.mktemp("rep"))
    run_inprocess(rd, n_boot=500)
    return rd / "golden" / "report.html"


def test_report_is_self_contained(report):
    text = report.read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text, re.IGNORECASE)
    assert not re.search(r"url\(\s*['\"]?\s*(?:https?:)?//", text, re.IGNORECASE)
    assert "<link" not in text and "@import" not in text
    # scripts are inline only: the example browser's code and its data (an inert JSON block)
    assert not re.search(r"<script[^>]*\bsrc\s*=", text, re.IGNORECASE)
    assert re.findall(r"<script[^>]*>", text) == ['<script type="application/json" id="ia-explorer-data">',
                                                  "<script>"]
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', text)) == 6  # + the routing figure


@needs_chromium
def test_report_renders_in_chromium(report, tmp_path):
    dom, probe = _probe(report, tmp_path)
    # every plot decoded: scores, delta heatmap, cost frontier, demo curves, routing, tipping-point curve
    assert len(probe["images"]) == 6
    assert all(i["complete"] and i["w"] > 100 and i["h"] > 100 for i in probe["images"]), probe["images"]
    assert [r for r in probe["resources"] if not r.startswith("data:")] == []
    assert probe["failed"] == []
    # the tables and sections are in the rendered DOM
    assert dom.count("<table") >= 12
    for anchor in ("scores", "delta-optimized-baseline", "other-arms", "arbitrage-scoreboard",
                   "variance-analysis-phase-2", "economics", "parse-failures-and-errors", "reasoning-models",
                   "demo-count-curves-phase-3", "tipping-point-phase-5"):
        assert f'<section id="{anchor}">' in dom, anchor
    assert "qwen3_4b optimized 100.0 &gt; gpt-4o optimized 90.0" in dom
    assert "too_hard" in dom  # tipping-point table
    # and a screenshot that is not blank
    shot = tmp_path / "report.png"
    proc = _chromium([f"--screenshot={shot}", "--window-size=1280,2000", report.as_uri()], tmp_path / "profile-shot")
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1280, 2000)
        colours = im.convert("RGB").resize((160, 250)).getcolors(maxcolors=1 << 16)
        assert colours is not None and len(colours) > 50  # text, tables and plots, not an empty page


@needs_chromium
def test_probe_detects_a_broken_image(tmp_path):
    """Negative control: the same probe reports an image that failed to load (so the check above can fail)."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><img src="missing.png"></body></html>')
    _, probe = _probe(page, tmp_path)
    assert probe["images"] == [{"complete": True, "w": 0, "h": 0}]
    assert len(probe["failed"]) == 1 and probe["failed"][0].startswith("IMG ") and \
        probe["failed"][0].endswith("missing.png")


def test_markdown_and_html_share_the_document():
    doc = ReportDoc("T", ["covers `x` and **y**"], ["smoke files: a.csv"], ["DSPy versions differ — a | b"], [],
                    [Section("One thing", ["- item **bold** `code`", Table(["m", "v"], [["a", Cell("1|2", "pos",
                                                                                                      True)]]),
                                           Plot("nothing", "no data: omitted")])])
    md = to_markdown(doc)
    assert "> **SMOKE DATA — built-in smoke samples: these numbers prove the pipeline, not model quality.**" in md
    assert "> - DSPy versions differ — a | b" in md
    assert "| a | **1\\|2** |" in md and "## One thing" in md
    page = render_html(doc)
    assert '<td class="pos num"><strong>1|2</strong></td>' in page
    assert "<li>item <strong>bold</strong> <code>code</code></li>" in page
    assert 'id="smoke-banner"' in page and 'id="comparability-warnings"' in page
    assert "<img" not in page  # a plot without data is left out, not broken
