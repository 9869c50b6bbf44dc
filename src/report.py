"""Rendering of consolidated results: the document model shared by SUMMARY.md and report.html, and the plots.

The consolidator (src/consolidate_results.py) builds a ReportDoc: a header, the smoke-data banner, comparability
warnings and sections made of text, tables and plot references. `to_markdown` turns it into SUMMARY.md;
`render_html` into one self-contained page (inline CSS, plots as base64 PNG from matplotlib's Agg backend, no
network resources).
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# ---- document model ----------------------------------------------------------------------------------------------


@dataclass
class Cell:
    """A table cell with an optional CSS class (pos / neg / ns / muted / warn); bold in Markdown when strong."""

    text: str
    cls: str = ""
    strong: bool = False


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str | Cell]]
    caption: str = ""
    numeric: bool = True  # right-align every column after the first `text_cols`
    text_cols: int = 1
    left: tuple[int, ...] = ()  # further text columns (left-aligned) by index

    def _is_text(self, i: int) -> bool:
        return i < self.text_cols or i in self.left or (i - len(self.headers)) in self.left

    def markdown(self) -> str:
        def cell(c: str | Cell) -> str:
            text = c.text if isinstance(c, Cell) else str(c)
            text = text.replace("|", "\\|").replace("\n", " ")
            return f"**{text}**" if isinstance(c, Cell) and c.strong and text.strip() else text

        out = []
        if self.caption:
            out += [f"*{self.caption}*", ""]
        out.append("| " + " | ".join(cell(h) for h in self.headers) + " |")
        align = ["---" if self._is_text(i) or not self.numeric else "---:" for i in range(len(self.headers))]
        out.append("|" + "|".join(align) + "|")
        for row in self.rows:
            out.append("| " + " | ".join(cell(c) for c in row) + " |")
        return "\n".join(out)

    def html(self) -> str:
        def td(c: str | Cell, tag: str = "td", first: bool = False) -> str:  # first: a leading text column
            text = c.text if isinstance(c, Cell) else str(c)
            classes = []
            if isinstance(c, Cell) and c.cls:
                classes.append(c.cls)
            if self.numeric and not first and tag == "td":
                classes.append("num")
            cls = f' class="{" ".join(classes)}"' if classes else ""
            body = html.escape(text)
            if isinstance(c, Cell) and c.strong:
                body = f"<strong>{body}</strong>"
            return f"<{tag}{cls}>{body}</{tag}>"

        head = "".join(td(h, "th") for h in self.headers)
        body = "\n".join("<tr>" + "".join(td(c, first=self._is_text(i)) for i, c in enumerate(row)) + "</tr>"
                         for row in self.rows)
        cap = f"<caption>{_inline(self.caption)}</caption>" if self.caption else ""
        return (f'<div class="tablewrap"><table>{cap}<thead><tr>{head}</tr></thead>'
                f"<tbody>\n{body}\n</tbody></table></div>")


@dataclass
class Plot:
    """A reference to a figure the HTML report draws from ReportDoc.plot_data (SUMMARY.md omits it)."""

    key: str
    caption: str = ""


@dataclass
class Section:
    title: str
    blocks: list[str | Table | Plot] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")


@dataclass
class ReportDoc:
    title: str
    header: list[str]  # what the results cover (text lines)
    smoke: list[str]  # non-empty: smoke-data banner details
    warnings: list[str]  # comparability warnings (each one line)
    notes: list[str]  # other loud notes (partial units, missing sidecars, unknown task modules)
    sections: list[Section]
    plot_data: dict[str, Any] = field(default_factory=dict)


SMOKE_BANNER = "built-in smoke samples: these numbers prove the pipeline, not model quality"


# ---- Markdown ------------------------------------------------------------------------------------------------------

def to_markdown(doc: ReportDoc) -> str:
    """SUMMARY.md: the banner and warnings first, then every section (plots are in report.html only)."""
    out = [f"# {doc.title}", ""]
    if doc.smoke:
        out += [f"> **SMOKE DATA — {SMOKE_BANNER}.**", ">"] + [f"> - {s}" for s in doc.smoke] + [""]
    if doc.warnings:
        out += ["> **WARNING — NOT COMPARABLE: results made under different conditions are compared below.** "
                "Read every comparison involving these files with care (`--strict` refuses to consolidate them):",
                ">"] + [f"> - {w}" for w in doc.warnings] + [""]
    out += doc.header + [""]
    if doc.notes:
        out += ["**Notes:**", ""] + [f"- {n}" for n in doc.notes] + [""]
    out += ["Contents: " + " · ".join(f"[{s.title}](#{s.anchor})" for s in doc.sections), ""]
    for s in doc.sections:
        out += [f"## {s.title}", ""]
        for b in s.blocks:
            if isinstance(b, Table):
                out += [b.markdown(), ""]
            elif isinstance(b, Plot):
                continue
            else:
                out += [b, ""]
    return "\n".join(out).rstrip() + "\n"


# ---- HTML ----------------------------------------------------------------------------------------------------------

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
.banner.smoke { background:var(--warn); border-color:var(--warnline); }
.banner.warn { background:var(--neg); border-color:#ff818266; color:var(--negfg); }
.banner.notes { background:var(--soft); border-color:var(--line); }
.banner strong.big { font-size:15px; }
.banner ul { margin:6px 0 2px; padding-left:22px; }
nav { background:var(--soft); border:1px solid var(--line); border-radius:8px; padding:8px 14px; margin:14px 0;
      display:flex; flex-wrap:wrap; gap:4px 16px; }
nav a { color:var(--accent); text-decoration:none; white-space:nowrap; }
.tablewrap { overflow-x:auto; margin:10px 0 18px; }
table { border-collapse:collapse; font-size:13px; }
caption { text-align:left; color:var(--muted); padding:4px 0; caption-side:top; }
th, td { border:1px solid var(--line); padding:4px 9px; vertical-align:top; }
th { background:var(--soft); text-align:left; font-weight:600; }
tbody tr:nth-child(even) td { background:#fbfcfd; }
td:first-child { white-space:nowrap; }
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
             f"<title>{html.escape(doc.title)}</title><style>{_CSS}</style></head><body><main>",
             f"<h1>{html.escape(doc.title)}</h1>",
             '<div class="header">' + "".join(f"<div>{_inline(h)}</div>" for h in doc.header if h.strip()) + "</div>"]
    if doc.smoke:
        parts.append(f'<div class="banner smoke" id="smoke-banner"><strong class="big">SMOKE DATA — '
                     f"{html.escape(SMOKE_BANNER)}.</strong><ul>"
                     + "".join(f"<li>{_inline(s)}</li>" for s in doc.smoke) + "</ul></div>")
    if doc.warnings:
        parts.append('<div class="banner warn" id="comparability-warnings"><strong class="big">WARNING — NOT '
                     "COMPARABLE: results made under different conditions are compared below.</strong><ul>"
                     + "".join(f"<li>{_inline(w)}</li>" for w in doc.warnings) + "</ul></div>")
    if doc.notes:
        parts.append('<div class="banner notes"><strong>Notes</strong><ul>'
                     + "".join(f"<li>{_inline(n)}</li>" for n in doc.notes) + "</ul></div>")
    parts.append("<nav>" + " ".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in doc.sections)
                 + "</nav>")
    for s in doc.sections:
        parts.append(f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>')
        for b in s.blocks:
            if isinstance(b, Table):
                parts.append(b.html())
            elif isinstance(b, Plot):
                png = figures.get(b.key)
                if png:
                    parts.append(f'<figure><img alt="{html.escape(b.caption or b.key)}" '
                                 f'src="data:image/png;base64,{png}"><figcaption>{_inline(b.caption)}</figcaption>'
                                 "</figure>")
            else:
                parts.append(_text_block(b))
        parts.append("</section>")
    parts.append("<footer>Generated by <code>python -m src.consolidate_results</code>; the same tables are in "
                 "SUMMARY.md beside this file.</footer></main></body></html>")
    return "\n".join(parts)


def write_report(doc: ReportDoc, path: Path) -> None:
    path.write_text(render_html(doc), encoding="utf-8")


# ---- plots ---------------------------------------------------------------------------------------------------------

_PHASE_COLORS = {"baseline": "#8c959f", "optimized": "#d9731a"}
_EXTRA_COLORS = ["#4c72b0", "#55a868", "#8172b2", "#c44e52", "#64b5cd"]


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _top_legend(fig: Any, handles: list[Any], labels: list[str] | None = None) -> None:
    """A one-row legend in a fixed 0.4-inch strip above the axes, whatever the figure's height."""
    height = fig.get_size_inches()[1]
    top = 1 - 0.4 / height
    kwargs = {"handles": handles} if labels is None else {"handles": handles, "labels": labels}
    fig.legend(**kwargs, loc="upper center", ncol=len(handles), frameon=False, bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, top))


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = max(1, min(max_cols, n))
    return math.ceil(n / cols), cols


def make_figures(data: dict[str, Any], keys: Iterable[str]) -> dict[str, str]:
    """Base64 PNGs for the requested plot keys that have data; a key without data is simply absent."""
    import matplotlib

    matplotlib.use("Agg")
    makers = {"scores": _plot_scores, "delta_heatmap": _plot_delta_heatmap, "cost_frontier": _plot_cost_frontier,
              "demo_curves": _plot_curves, "tipping_curves": _plot_curves}
    out = {}
    for key in keys:
        maker = makers.get(key)
        if maker and data.get(key):
            fig = maker(data[key])
            if fig is not None:
                out[key] = _png(fig)
    return out


def _plot_scores(data: dict[str, Any]) -> Any:
    """Per task: each model's arms as bars with their 95% intervals."""
    import matplotlib.pyplot as plt
    import numpy as np

    tasks, models, arms = data["tasks"], data["models"], data["arms"]  # arms: list of dicts
    phases = data["phases"]
    rows, cols = _grid(len(tasks), 2)
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 3.4 * rows), squeeze=False)
    width = 0.8 / max(1, len(phases))
    colors = {p: _PHASE_COLORS.get(p, _EXTRA_COLORS[i % len(_EXTRA_COLORS)]) for i, p in enumerate(phases)}
    for ax, task in zip(axes.flat, tasks):
        present = [m for m in models if any(a["task"] == task and a["model"] == m for a in arms)]
        x = np.arange(len(present))
        for j, phase in enumerate(phases):
            vals, lo, hi = [], [], []
            for m in present:
                a = next((a for a in arms if a["task"] == task and a["model"] == m and a["phase"] == phase), None)
                v = a["score"] * 100 if a else np.nan
                vals.append(v)
                lo.append(v - a["lo"] * 100 if a and not math.isnan(a["lo"]) else 0)
                hi.append(a["hi"] * 100 - v if a and not math.isnan(a["hi"]) else 0)
            ax.bar(x + (j - (len(phases) - 1) / 2) * width, vals, width, yerr=[lo, hi], capsize=3,
                   color=colors[phase], label=phase, error_kw={"elinewidth": 1, "ecolor": "#333333"})
        ax.set_title(task, fontsize=11)
        ax.set_xticks(x)
        if len(present) > 4:  # many models: one rotated line each, so the labels never overlap
            ax.set_xticklabels([f"{m} ({data['kinds'].get(m, '?')})" for m in present], fontsize=8, rotation=35,
                               ha="right", rotation_mode="anchor")
        else:
            ax.set_xticklabels([f"{m}\n({data['kinds'].get(m, '?')})" for m in present], fontsize=8)
        ax.set_ylim(0, 105)
        ax.set_ylabel("score (%)")
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    _top_legend(fig, handles, labels)
    return fig


def _plot_delta_heatmap(data: dict[str, Any]) -> Any:
    """Models x tasks, colour = delta in points; * = CI excludes 0 and p < .05; † = also survives Holm."""
    import matplotlib.pyplot as plt
    import numpy as np

    models, tasks, cells = data["models"], data["tasks"], data["cells"]
    grid = np.full((len(models), len(tasks)), np.nan)
    marks = {}
    for c in cells:
        i, j = models.index(c["model"]), tasks.index(c["task"])
        grid[i, j] = c["delta"] * 100
        marks[(i, j)] = "*†" if c["holm"] else ("*" if c["significant"] else "")
    vmax = max(10.0, float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 10.0)
    fig, ax = plt.subplots(figsize=(1.5 + 1.25 * len(tasks), 1.0 + 0.5 * len(models)))
    cmap = plt.get_cmap("RdBu").with_extremes(bad="#eeeeee")
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-vmax, vmax=vmax, aspect="auto")
    for (i, j), mark in marks.items():
        v = grid[i, j]
        ax.text(j, i, f"{v:+.1f}{mark}", ha="center", va="center", fontsize=9,
                color="white" if abs(v) > 0.6 * vmax else "#111111")
    for i in range(len(models)):
        for j in range(len(tasks)):
            if np.isnan(grid[i, j]):
                ax.text(j, i, "–", ha="center", va="center", fontsize=9, color="#888888")
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels(tasks, rotation=30, ha="right")
    ax.set_yticks(range(len(models)))
    ax.set_yticklabels(models)
    fig.colorbar(im, ax=ax, label="optimized − baseline (points)", shrink=0.8)
    fig.tight_layout()
    return fig


def _pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The cost-accuracy frontier: points no other point beats on both (cheaper-or-equal and better)."""
    best, out = -1.0, []
    for cost, score in sorted(points, key=lambda p: (p[0], -p[1])):
        if score > best:
            out.append((cost, score))
            best = score
    return out


def _plot_cost_frontier(data: dict[str, Any]) -> Any:
    """Per task: score vs $ per 1,000 examples (symlog x: $0 local points stay visible), with the frontier."""
    import matplotlib.pyplot as plt

    points = [p for p in data["points"] if p["cost_per_1k"] is not None and not math.isnan(p["cost_per_1k"])]
    tasks = [t for t in data["tasks"] if any(p["task"] == t for p in points)]
    if not tasks:
        return None
    rows, cols = _grid(len(tasks), 2)
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 3.8 * rows), squeeze=False)
    positive = [p["cost_per_1k"] for p in points if p["cost_per_1k"] > 0]
    linthresh = min(positive) / 2 if positive else 0.01
    for ax, task in zip(axes.flat, tasks):
        pts = [p for p in points if p["task"] == task]
        for p in pts:
            color = _PHASE_COLORS.get(p["phase"], _EXTRA_COLORS[0])
            marker = "o" if p["kind"] == "local" else "s"
            ax.scatter(p["cost_per_1k"], p["score"] * 100, c=color, marker=marker, s=46, edgecolors="#222222",
                       linewidths=0.6, zorder=3)
            ax.annotate(f"{p['model']}", (p["cost_per_1k"], p["score"] * 100), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
        front = _pareto([(p["cost_per_1k"], p["score"] * 100) for p in pts])
        if len(front) > 1:
            ax.step([c for c, _ in front], [s for _, s in front], where="post", color="#0b5cad", lw=1, alpha=0.6,
                    zorder=2)
        ax.set_xscale("symlog", linthresh=linthresh)
        ax.set_title(task, fontsize=11)
        ax.set_xlabel("$ per 1,000 examples (symlog)")
        ax.set_ylabel("score (%)")
        ax.set_ylim(-3, 105)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    from matplotlib.lines import Line2D

    legend = [Line2D([], [], marker="o", ls="", color="#cccccc", markeredgecolor="#222222", label="local"),
              Line2D([], [], marker="s", ls="", color="#cccccc", markeredgecolor="#222222", label="API"),
              Line2D([], [], marker="o", ls="", color=_PHASE_COLORS["baseline"], label="baseline"),
              Line2D([], [], marker="o", ls="", color=_PHASE_COLORS["optimized"], label="optimized"),
              Line2D([], [], color="#0b5cad", label="frontier")]
    _top_legend(fig, legend)
    return fig


def _plot_curves(data: dict[str, Any]) -> Any:
    """One small plot per (model, task): score vs a count (demos, optimization examples) per condition, with the
    CI band."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    pairs = data["pairs"]  # list of {model, task, conditions: {name: [(n, score, lo, hi)]}, percent: bool}
    if not pairs:
        return None
    rows, cols = _grid(len(pairs), 4)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.6 * rows), squeeze=False)
    for ax, pair in zip(axes.flat, pairs):
        scale = 100 if pair["percent"] else 1
        for k, (cond, pts) in enumerate(sorted(pair["conditions"].items())):
            pts = sorted(pts)
            xs = [p[0] for p in pts]
            color = _EXTRA_COLORS[k % len(_EXTRA_COLORS)]
            ax.plot(xs, [p[1] * scale for p in pts], marker="o", ms=3, lw=1.2, color=color, label=cond)
            lo = [p[2] * scale if p[2] is not None else p[1] * scale for p in pts]
            hi = [p[3] * scale if p[3] is not None else p[1] * scale for p in pts]
            ax.fill_between(xs, lo, hi, color=color, alpha=0.15, lw=0)
        ax.set_title(f"{pair['model']} / {pair['task']}", fontsize=9)
        ax.set_xlabel(data.get("xlabel", "demos"), fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 0.2-demo ticks
        ax.set_ylabel("score (%)" if pair["percent"] else "score", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, frameon=False)
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    fig.tight_layout()
    return fig
