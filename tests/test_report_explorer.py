"""The explorable report: per-example browser and program view, from real result files through consolidation, checked
in headless Chromium (the filters driven by DOM events, their speed with a few hundred examples)."""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_consolidate import _meta, build_fixture, run_inprocess
from test_report import _chromium, needs_chromium

from src.report.explorer import word_diff
from src.results.files import write_csv, write_json
from src.results.naming import result_csv
from src.results.record import Record, inputs_json

N_QA = 400  # a unit big enough that the page must stay fast


def _qa_records() -> list[Record]:
    out = []
    for i in range(N_QA):
        kind = i % 10
        pf, err = int(kind == 7), ("timed out after 600 s" if kind == 8 else "")
        correct = kind < 4
        out.append(Record(
            "baseline-llama3.2-qa", "llama3.2", "qa", "baseline", f"q{i:03d}",
            "{not json at all" if pf else ("" if err else (f"Paris {i}" if correct else f"Lyon {i}")),
            f"Paris {i}", 1.0 if correct else 0.0, int(correct), pf, err, 800.0 + i, 120, 7, 0, 1, 0.0, 0,
            json.dumps({"f1": 0.5}), "2026-01-01T00:00:00Z",
            inputs=inputs_json({"question": f"Which city is number {i}? <b>bold</b> & more"})))
    return out


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    rd = build_fixture(tmp_path_factory.mktemp("explore"), extras=False)
    recs = _qa_records()
    path = result_csv(rd, "local", "baseline", "qa", "llama3.2")
    write_csv(path, recs)
    write_json(path.with_suffix(".meta.json"), _meta(recs, "local", "baseline"))
    side = rd / "optimized_programs" / "qwen3_4b_analysis_mipro_v2.meta.json"
    meta = json.loads(side.read_text())
    meta["predictors"] = {"self": {"n_demos": 1, "instructions": "Read the passage, then answer yes or no only."}}
    meta["baseline_predictors"] = {"self": {"n_demos": 0, "instructions": "Read the passage and answer yes or no."}}
    write_json(side, meta)
    write_json(side.with_name("qwen3_4b_analysis_mipro_v2.json"), {
        "traces": [], "train": [], "signature": {"instructions": "x", "fields": []}, "lm": None,
        "demos": [{"augmented": True, "passage": "Water boils at 100 C at sea level.", "question": "does water boil",
                   "answer": "yes"}], "metadata": {"dependency_versions": {}}})
    run_inprocess(rd, n_boot=200)
    return rd


def _doc_data(report: Path) -> dict:
    m = re.search(r'<script type="application/json" id="ia-explorer-data">(.*?)</script>', report.read_text(),
                  re.DOTALL)
    assert m
    return json.loads(m.group(1).replace("<\\/", "</"))


def test_every_recorded_example_is_in_the_page(results):
    data = _doc_data(results / "golden" / "report.html")
    qa = [r for r in data["examples"] if r["t"] == "qa"]
    assert len(qa) == N_QA
    counts = {s: sum(1 for r in qa if r["st"] == s) for s in ("correct", "wrong", "parse", "error")}
    assert counts == {"correct": 160, "wrong": 160, "parse": 40, "error": 40}
    first = next(r for r in qa if r["id"] == "q007")
    assert first["st"] == "parse" and first["p"] == "{not json at all" and first["g"] == "Paris 7"
    assert first["in"] == {"question": "Which city is number 7? <b>bold</b> & more"}
    assert first["ms"] == 807.0 and first["ti"] == 120 and first["to"] == 7 and first["x"] == {"f1": 0.5}
    # the fixture's older records have no inputs column: they are shown without inputs, not dropped
    assert any(r["t"] == "analysis" and r["in"] == {} for r in data["examples"])


def test_program_view_shows_the_instruction_diff_demos_and_seeds(results):
    data = _doc_data(results / "golden" / "report.html")
    view = next(p for p in data["programs"] if p["m"] == "qwen3_4b")
    assert view["chosen_seed"] == 10 and [s["dev"] for s in view["seeds"]] == [0.9, 0.85, None]
    pred = view["predictors"][0]
    assert pred["before"] == "Read the passage and answer yes or no."
    assert pred["demos"] == [{"passage": "Water boils at 100 C at sea level.", "question": "does water boil",
                              "answer": "yes"}]
    page = (results / "golden" / "report.html").read_text()
    assert "<del>passage and</del> <ins>passage, then</ins>" in page and "boom" in page


def test_word_diff_marks_removed_and_added_words():
    assert word_diff("a b c", "a x c") == "a <del>b</del> <ins>x</ins> c"
    assert word_diff("same", "same") == "same"
    assert word_diff("", "new <words>") == "<del></del> <ins>new &lt;words&gt;</ins>"


# Drives the page as a user would: change events on the selects, input events on the search box, a click on an example.
PROBE = """<script>
window.addEventListener('load', () => {
  const t0 = performance.now();
  const set = (id, v) => { const el = document.getElementById(id); el.value = v;
                           el.dispatchEvent(new Event(el.tagName === 'INPUT' ? 'input' : 'change')); };
  const count = () => document.querySelectorAll('#ex-list details').length;
  const out = {ready: document.body.dataset.explorerReady, all: document.getElementById('ex-count').textContent,
               drawn: count()};
  set('ex-f-m', 'llama3.2'); set('ex-f-t', 'qa'); out.qa = document.getElementById('ex-count').textContent;
  set('ex-f-st', 'parse'); out.parse = document.getElementById('ex-count').textContent;
  out.parseStatuses = [...document.querySelectorAll('#ex-list details')].map(d => d.dataset.status);
  out.filterMs = parseFloat(document.body.dataset.filterMs);
  const first = document.querySelector('#ex-list details');
  first.open = true;
  setTimeout(() => {
    out.opened = first.querySelector('.body') ? first.querySelector('.body').textContent : null;
    set('ex-f-st', ''); set('ex-f-q', 'number 123?'); out.search = document.getElementById('ex-count').textContent;
    set('ex-f-q', ''); set('ex-f-m', ''); set('ex-f-t', '');
    document.getElementById('ex-more').click(); out.more = count();
    out.totalMs = performance.now() - t0;
    out.loadMs = performance.getEntriesByType('navigation')[0].loadEventStart;
    const pre = document.createElement('pre'); pre.id = 'probe-ex'; pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }, 50);
});
</script>"""


@needs_chromium
def test_the_browser_filters_in_chromium_and_stays_fast(results, tmp_path):
    report = results / "golden" / "report.html"
    copy = tmp_path / "probe-report.html"
    copy.write_text(report.read_text().replace("</body>", PROBE + "</body>"), encoding="utf-8")
    proc = _chromium(["--virtual-time-budget=10000", "--dump-dom", copy.as_uri()], tmp_path / "profile")
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = re.search(r'<pre id="probe-ex">(.*?)</pre>', proc.stdout, re.DOTALL)
    assert m, proc.stdout[-800:]
    out = json.loads(html.unescape(m.group(1)))
    print(f"browser timings: filter {out['filterMs']} ms, probe {out['totalMs']:.0f} ms, load {out['loadMs']:.0f} ms")
    total = len(_doc_data(report)["examples"])
    assert out["ready"] == "1"
    assert out["all"] == f"{total} of {total} examples (first 50 shown)" and out["drawn"] == 50
    assert out["qa"] == f"{N_QA} of {total} examples (first 50 shown)"
    assert out["parse"] == f"40 of {total} examples"
    assert out["parseStatuses"] == ["parse"] * 40
    assert "raw reply (unparseable)" in out["opened"] and "{not json at all" in out["opened"]
    assert "Which city is number" in out["opened"] and "<b>bold</b> & more" in out["opened"]  # text, not markup
    assert out["search"] == f"1 of {total} examples"
    assert out["more"] == 100
    # speed with a few hundred examples (headless, shared CI cores: generous bounds, far above what it takes)
    assert out["filterMs"] < 200, out
    assert out["totalMs"] < 3000 and out["loadMs"] < 5000, out


def test_a_scoreboard_without_an_api_model_says_how_to_get_one(results):
    summary = (results / "golden" / "SUMMARY.md").read_text()
    assert "| qa | (no API model) |" in summary
    assert "./setup_models.sh --with-qwen" in summary and "--preset full" in summary


def test_score_charts_give_ten_models_the_full_width():
    import base64
    import io

    from PIL import Image

    from src.report.plots import make_figures

    models = [f"model-{i}" for i in range(10)]
    arms = [{"task": t, "model": m, "phase": p, "score": 0.5, "lo": 0.4, "hi": 0.6}
            for t in ("qa", "rag") for m in models for p in ("baseline", "optimized")]
    data = {"scores": {"tasks": ["qa", "rag"], "models": models, "arms": arms, "phases": ["baseline", "optimized"],
                       "kinds": {m: "local" for m in models}}}
    png = make_figures(data, ["scores"])["scores"]
    with Image.open(io.BytesIO(base64.b64decode(png))) as im:
        width, height = im.size
    assert height > width / 2  # two tasks stacked one per row, not side by side
