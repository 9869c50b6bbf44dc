"""report.html: the report's document rendered as one self-contained page (inline CSS, plots as base64 PNG, no
network resource of any kind)."""

from __future__ import annotations

import html
import re
from pathlib import Path

from src.report import explorer
from src.report.model import REHEARSAL_BANNER, SMOKE_BANNER, Cell, Plot, ReportDoc, Table
from src.report.plots import make_figures


def table_html(table: Table) -> str:
    """A table as HTML inside a scrolling wrapper."""
    def td(c: str | Cell, tag: str = "td", first: bool = False) -> str:  # first: a leading text column
        text = c.text if isinstance(c, Cell) else str(c)
        classes = []
        if isinstance(c, Cell) and c.cls:
            classes.append(c.cls)
        if table.numeric and not first and tag == "td":
            classes.append("num")
        cls = f' class="{" ".join(classes)}"' if classes else ""
        body = html.escape(text)
        if isinstance(c, Cell) and c.strong:
            body = f"<strong>{body}</strong>"
        return f"<{tag}{cls}>{body}</{tag}>"

    head = "".join(td(h, "th") for h in table.headers)
    body = "\n".join("<tr>" + "".join(td(c, first=table.is_text_column(i)) for i, c in enumerate(row)) + "</tr>"
                     for row in table.rows)
    cap = f"<caption>{_inline(table.caption)}</caption>" if table.caption else ""
    return (f'<div class="tablewrap"><table>{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>\n{body}\n</tbody></table></div>")


_CSS = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --bg:#ffffff; --soft:#f6f8fa; --accent:#0b5cad;
        --pos:#dafbe1; --posfg:#116329; --neg:#ffebe9; --negfg:#a40e26; --warn:#fff8c5; --warnline:#d4a72c; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.5 -apple-system,"Segoe UI",Helvetica,Arial,"Liberation Sans",sans-serif;
       color:var(--fg); background:var(--bg); }
main { max-width:1240px; margin:0 auto; padding:24px 32px 64px; }
h1 { font-size:26px; margin:0 0 4px; }
h2 { font-size:20px; margin:36px 0 10px; padding-bottom:6px; border-bottom:1px solid var(--line); }
p, li { max-width:100ch; }
code { font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;
       background:var(--soft); padding:1px 4px; border-radius:4px; }
.header { color:var(--muted); margin-bottom:14px; }
.header div { margin:2px 0; }
.banner { border:1px solid; border-radius:8px; padding:10px 16px; margin:14px 0; }
.banner.smoke { background:var(--warn); border-color:var(--warnline); padding:6px 14px; }
.banner.smoke summary { cursor:pointer; }
.banner.warn { background:var(--neg); border-color:#ff818266; color:var(--negfg); }
.banner.notes { background:var(--soft); border-color:var(--line); }
.banner strong.big { font-size:15px; }
.banner ul { margin:6px 0 2px; padding-left:22px; }
nav { background:var(--soft); border:1px solid var(--line); border-radius:8px; padding:8px 14px; margin:14px 0;
      display:flex; flex-wrap:wrap; gap:4px 16px; }
nav a { color:var(--accent); text-decoration:none; white-space:nowrap; }
.tablewrap { overflow-x:auto; margin:10px 0 18px; }
table { border-collapse:collapse; font-size:12.5px; max-width:100%; }
caption { text-align:left; color:var(--muted); padding:4px 0; caption-side:top; }
th, td { border:1px solid var(--line); padding:3px 7px; vertical-align:top; overflow-wrap:anywhere; }
th { overflow-wrap:normal; }
th { background:var(--soft); text-align:left; font-weight:600; }
tbody tr:nth-child(even) td { background:#fbfcfd; }
td:first-child { min-width:12ch; }
td.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
td.pos { background:var(--pos) !important; color:var(--posfg); }
td.neg { background:var(--neg) !important; color:var(--negfg); }
td.ns { color:var(--muted); }
td.muted { color:var(--muted); }
td.warn { background:var(--warn) !important; }
figure { margin:12px 0 24px; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); border-radius:6px; }
figcaption { color:var(--muted); font-size:12.5px; margin-top:4px; max-width:110ch; }
footer { color:var(--muted); font-size:12px; margin-top:48px; }
"""


def _inline(text: str) -> str:
    """Escape, then a tiny Markdown subset: **bold**, `code`, [text](#anchor)."""
    codes: list[str] = []

    def keep(m: re.Match) -> str:
        codes.append(m.group(1))
        return f"\x00{len(codes) - 1}\x00"

    s = re.sub(r"`(.+?)`", keep, html.escape(text))
    s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
    s = re.sub(r"\[([^\]]+)\]\((#[\w-]+)\)", r'<a href="\2">\1</a>', s)
    return re.sub(r"\x00(\d+)\x00", lambda m: f"<code>{codes[int(m.group(1))]}</code>", s)


def _text_block(text: str) -> str:
    lines = text.split("\n")
    out, items = [], []
    for line in lines:
        if line.startswith("- "):
            items.append(f"<li>{_inline(line[2:])}</li>")
            continue
        if items:
            out.append("<ul>" + "".join(items) + "</ul>")
            items = []
        if line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    if items:
        out.append("<ul>" + "".join(items) + "</ul>")
    return "\n".join(out)


def render_html(doc: ReportDoc) -> str:
    """The whole report as one HTML string: no external resource of any kind."""
    figures = make_figures(doc.plot_data, [b.key for s in doc.sections for b in s.blocks if isinstance(b, Plot)])
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{html.escape(doc.title)}</title><style>{_CSS}{explorer.CSS}</style></head><body><main>",
             f"<h1>{html.escape(doc.title)}</h1>",
             '<div class="header">' + "".join(f"<div>{_inline(h)}</div>" for h in doc.header if h.strip()) + "</div>"]
    if doc.smoke:  # one line; which files, in a toggle
        parts.append(f'<details class="banner smoke" id="smoke-banner"><summary><strong>SMOKE DATA — '
                     f"{html.escape(SMOKE_BANNER)}</strong> ({len(doc.smoke)} result file(s); details)</summary><ul>"
                     + "".join(f"<li>{_inline(s)}</li>" for s in doc.smoke) + "</ul></details>")
    if doc.rehearsal:
        parts.append(f'<details class="banner smoke" id="rehearsal-banner"><summary><strong>REHEARSAL — '
                     f"{html.escape(REHEARSAL_BANNER)}</strong> (details)</summary><ul>"
                     + "".join(f"<li>{_inline(s)}</li>" for s in doc.rehearsal) + "</ul></details>")
    if doc.warnings:
        parts.append('<div class="banner warn" id="comparability-warnings"><strong class="big">WARNING — NOT '
                     "COMPARABLE: results made under different conditions are compared below.</strong><ul>"
                     + "".join(f"<li>{_inline(w)}</li>" for w in doc.warnings) + "</ul></div>")
    if doc.notes:
        parts.append('<div class="banner notes"><strong>Notes</strong><ul>'
                     + "".join(f"<li>{_inline(n)}</li>" for n in doc.notes) + "</ul></div>")
    explorable = explorer.sections(doc.explorer)
    parts.append("<nav>" + " ".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in doc.sections)
                 + "".join(f' <a href="#{a}">{html.escape(t)}</a>' for a, t, _ in explorable) + "</nav>")
    for s in doc.sections:
        parts.append(f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>')
        for b in s.blocks:
            if isinstance(b, Table):
                parts.append(table_html(b))
            elif isinstance(b, Plot):
                png = figures.get(b.key)
                if png:
                    parts.append(f'<figure><img alt="{html.escape(b.caption or b.key)}" '
                                 f'src="data:image/png;base64,{png}"><figcaption>{_inline(b.caption)}</figcaption>'
                                 "</figure>")
            else:
                parts.append(_text_block(b))
        parts.append("</section>")
    for anchor, title, body in explorable:
        parts.append(f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{body}</section>')
    if explorable:
        parts.append(explorer.script(doc.explorer))
    parts.append("<footer>Generated by <code>python -m src.consolidate_results</code>; the same tables are in "
                 "SUMMARY.md beside this file.</footer></main></body></html>")
    return "\n".join(parts)


def write_report(doc: ReportDoc, path: Path) -> None:
    path.write_text(render_html(doc), encoding="utf-8")
