"""The explorable sections of report.html, from ReportDoc.explorer: a per-example browser (vanilla JS over embedded
JSON) and each optimized program beside its baseline (instruction diff, demos, every seed's dev score). The delta
heatmap and the cost-quality plot are figures (src.report.plots). Offline: nothing is fetched from anywhere."""

from __future__ import annotations

import difflib
import html
import json
from typing import Any

STATUS_LABEL = {"correct": "correct", "wrong": "wrong", "parse": "parse failure", "error": "error"}
PAGE = 50  # examples drawn at a time: the page stays fast with thousands of them

CSS = """
.ex-filters { display:flex; flex-wrap:wrap; gap:8px 14px; align-items:center; background:var(--soft);
              border:1px solid var(--line); border-radius:8px; padding:8px 12px; margin:8px 0; }
.ex-filters label { font-size:12.5px; color:var(--muted); }
.ex-filters select, .ex-filters input { font:inherit; font-size:13px; padding:2px 4px; max-width:220px; }
#ex-count { font-weight:600; }
.ex { border:1px solid var(--line); border-radius:6px; margin:6px 0; }
.ex > summary { cursor:pointer; padding:5px 10px; display:flex; flex-wrap:wrap; gap:4px 12px; font-size:13px; }
.ex > summary .id { font-family:ui-monospace,Menlo,Consolas,monospace; }
.ex .body { padding:4px 12px 10px; border-top:1px solid var(--line); }
.ex .body dt { font-weight:600; margin-top:6px; font-size:12.5px; color:var(--muted); }
.ex .body dd { margin:2px 0 0; white-space:pre-wrap; overflow-wrap:anywhere; font-size:13px; }
.badge { border-radius:10px; padding:0 8px; font-size:12px; }
.badge.correct { background:var(--pos); color:var(--posfg); } .badge.wrong { background:var(--soft); }
.badge.parse { background:var(--warn); } .badge.error { background:var(--neg); color:var(--negfg); }
.prog { border:1px solid var(--line); border-radius:8px; padding:8px 14px; margin:10px 0; }
.prog h3 { font-size:15px; margin:4px 0; }
.diff { white-space:pre-wrap; overflow-wrap:anywhere; background:var(--soft); padding:6px 8px; border-radius:6px;
        font-size:13px; }
.diff del { background:var(--neg); color:var(--negfg); } .diff ins { background:var(--pos); color:var(--posfg);
        text-decoration:none; }
.demo { font-size:12.5px; border-left:3px solid var(--line); padding-left:8px; margin:4px 0;
        white-space:pre-wrap; overflow-wrap:anywhere; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


# ---- per-example browser ----------------------------------------------------------------------------------------

def browser_html(examples: list[dict[str, Any]]) -> str:
    """The filter bar and an empty list; the script fills it from the embedded JSON."""
    def options(key: str, label: str) -> str:
        values = list(dict.fromkeys(r[key] for r in examples))
        opts = "".join(f'<option value="{_e(v)}">{_e(v)}</option>' for v in values)
        return (f'<label>{label} <select id="ex-f-{key}" data-key="{key}"><option value="">all</option>{opts}'
                f"</select></label>")
    statuses = "".join(f'<option value="{k}">{v}</option>' for k, v in STATUS_LABEL.items())
    counts = {k: sum(1 for r in examples if r["st"] == k) for k in STATUS_LABEL}
    summary = ", ".join(f"{counts[k]} {v}" for k, v in STATUS_LABEL.items())
    return (f"<p>Every evaluated example ({len(examples)}: {summary}). Filter, then open one to see its inputs, the "
            "prediction (for a parse failure: the raw reply), the gold answer, the score and secondary metrics, "
            "latency and tokens.</p>"
            '<div class="ex-filters">' + options("m", "model") + options("t", "task") + options("a", "arm")
            + f'<label>outcome <select id="ex-f-st" data-key="st"><option value="">all</option>{statuses}</select>'
              "</label>"
            '<label>text <input id="ex-f-q" type="search" placeholder="id, input, prediction ..."></label>'
            '<span id="ex-count"></span></div><div id="ex-list"></div>'
            '<button id="ex-more" type="button" hidden>show more</button>')


SCRIPT = """
(function () {
  const data = JSON.parse(document.getElementById('ia-explorer-data').textContent);
  const rows = data.examples, PAGE = %(page)d;
  const label = %(labels)s;
  const list = document.getElementById('ex-list'), more = document.getElementById('ex-more');
  const count = document.getElementById('ex-count');
  if (!list) return;
  const selects = Array.from(document.querySelectorAll('.ex-filters select'));
  const query = document.getElementById('ex-f-q');
  rows.forEach(r => { r._text = (r.id + ' ' + Object.values(r.in).join(' ') + ' ' + r.p + ' ' + r.g).toLowerCase(); });
  let matches = rows, shown = 0;
  function esc(s) { return String(s).replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c])); }
  function num(x, d) { return x === null || x === undefined ? '\\u2013' : Number(x).toFixed(d); }
  function item(r) {
    const el = document.createElement('details');
    el.className = 'ex';
    el.dataset.status = r.st;
    el.innerHTML = '<summary><span class="id">' + esc(r.id) + '</span><span>' + esc(r.m) + ' / ' + esc(r.t) + ' / '
      + esc(r.a) + '</span><span class="badge ' + r.st + '">' + label[r.st] + '</span><span>score ' + num(r.s, 3)
      + '</span><span>' + num(r.ms / 1000, 1) + ' s</span><span>' + r.ti + ' in / ' + r.to + ' out tokens'
      + (r.ch ? ' (cached reply)' : '') + '</span>'
      + '</summary>';
    el.addEventListener('toggle', function fill() {
      if (!el.open || el.querySelector('.body')) return;
      let body = '<dl class="body">';
      for (const [k, v] of Object.entries(r.in)) body += '<dt>input: ' + esc(k) + '</dt><dd>' + esc(v) + '</dd>';
      body += '<dt>' + (r.st === 'parse' ? 'raw reply (unparseable)' : 'prediction') + '</dt><dd>' + esc(r.p) + '</dd>';
      body += '<dt>gold</dt><dd>' + esc(r.g) + '</dd>';
      const extras = Object.entries(r.x).map(([k, v]) => k + ' ' + num(v, 3)).join(', ');
      body += '<dt>score</dt><dd>' + num(r.s, 4) + (extras ? ' (' + esc(extras) + ')' : '') + '</dd>';
      if (r.e) body += '<dt>error</dt><dd>' + esc(r.e) + '</dd>';
      body += '<dt>cost</dt><dd>' + num(r.ms, 0) + ' ms, ' + r.c + ' LM call(s), ' + r.ti + ' input / ' + r.to
        + ' output tokens</dd></dl>';
      el.insertAdjacentHTML('beforeend', body);
    });
    return el;
  }
  function draw(reset) {
    if (reset) { list.textContent = ''; shown = 0; }
    const frag = document.createDocumentFragment();
    for (const r of matches.slice(shown, shown + PAGE)) frag.appendChild(item(r));
    list.appendChild(frag);
    shown = Math.min(matches.length, shown + PAGE);
    count.textContent = matches.length + ' of ' + rows.length + ' examples' + (shown < matches.length ? ' (first ' + shown + ' shown)' : '');
    more.hidden = shown >= matches.length;
  }
  function apply() {
    const t0 = performance.now();
    const want = selects.filter(s => s.value).map(s => [s.dataset.key, s.value]);
    const q = query.value.trim().toLowerCase();
    matches = rows.filter(r => want.every(([k, v]) => r[k] === v) && (!q || r._text.includes(q)));
    draw(true);
    document.body.dataset.filterMs = (performance.now() - t0).toFixed(1);
  }
  selects.forEach(s => s.addEventListener('change', apply));
  query.addEventListener('input', apply);
  more.addEventListener('click', () => draw(false));
  apply();
  document.body.dataset.explorerReady = '1';
})();
"""


def script(data: dict[str, Any]) -> str:
    """The embedded data (a JSON script block, inert) and the browser's code."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    return (f'<script type="application/json" id="ia-explorer-data">{payload}</script>'
            f"<script>{SCRIPT % {'page': PAGE, 'labels': json.dumps(STATUS_LABEL)}}</script>")


# ---- programs ---------------------------------------------------------------------------------------------------

def word_diff(before: str, after: str) -> str:
    """HTML of `after` against `before`, word by word: removed words struck, added ones marked."""
    a, b = before.split(" "), after.split(" ")
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(_e(" ".join(a[i1:i2])))
        if op in ("delete", "replace"):
            out.append(f"<del>{_e(' '.join(a[i1:i2]))}</del>")
        if op in ("insert", "replace"):
            out.append(f"<ins>{_e(' '.join(b[j1:j2]))}</ins>")
    return " ".join(out)


def programs_html(programs: list[dict[str, Any]]) -> str:
    if not programs:
        return "<p>No optimized programs in these results.</p>"
    parts = []
    for p in programs:
        seeds = "".join(
            f"<tr><td>{_e(s['seed'])}{' ✓' if s['seed'] == p['chosen_seed'] else ''}</td><td>{_e(s['status'])}</td>"
            f"<td class=\"num\">{_fmt(s['dev'])}</td><td class=\"num\">{_e(s['n_demos'] if s['n_demos'] is not None else '–')}"
            f"</td><td>{_e(s['error'])}</td></tr>" for s in p["seeds"])
        head = (f"<h3>{_e(p['m'])} / {_e(p['t'])} — {_e(p['opt'])}</h3><p>dev score {_fmt(p['base_dev'])} (baseline) → "
                f"<strong>{_fmt(p['dev'])}</strong> (seed {_e(p['chosen_seed'])} chosen on dev); teacher "
                f"{_e(p['teacher'])}, preset {_e(p['preset'])}"
                + (f"; <strong>failed</strong>: {_e(p['reason'])}" if p["status"] == "failed" else "") + "</p>")
        table = ('<div class="tablewrap"><table><thead><tr><th>seed</th><th>status</th><th>dev score</th>'
                 f"<th>demos</th><th>error</th></tr></thead><tbody>{seeds}</tbody></table></div>")
        preds = []
        for pr in p["predictors"]:
            before, after = pr["before"], pr["after"] or ""
            if before is None:
                instr = f'<div class="diff">{_e(after)}</div><p class="muted">(the baseline instruction was not recorded)</p>'
            elif before == after:
                instr = f'<div class="diff">{_e(after)}</div><p>instruction unchanged</p>'
            else:
                instr = f'<div class="diff">{word_diff(before, after)}</div>'
            demos = "".join('<div class="demo">' + "<br>".join(f"<strong>{_e(k)}</strong>: {_e(v)}"
                                                              for k, v in d.items()) + "</div>" for d in pr["demos"])
            preds.append(f"<h4>predictor <code>{_e(pr['name'])}</code>: instruction (baseline → optimized)</h4>{instr}"
                         f"<p>{_e(pr['n_demos'] if pr['n_demos'] is not None else 0)} demo(s)</p>{demos}")
        parts.append(f'<div class="prog">{head}{table}{"".join(preds)}</div>')
    return "".join(parts)


def sections(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(anchor, title, HTML) of each explorable section, in page order."""
    if not data:
        return []
    return [
        ("programs", "Optimized programs", programs_html(data["programs"])),
        ("examples", "Examples", browser_html(data["examples"])),
    ]
