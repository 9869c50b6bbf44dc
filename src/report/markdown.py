"""SUMMARY.md: the report's document rendered as Markdown (plots are in report.html only)."""

from __future__ import annotations

from src.report.model import REHEARSAL_BANNER, SMOKE_BANNER, Cell, Plot, ReportDoc, Table


def table_markdown(table: Table) -> str:
    """A table as GitHub Markdown (numbers right-aligned, strong cells in bold)."""
    def cell(c: str | Cell) -> str:
        text = c.text if isinstance(c, Cell) else str(c)
        text = text.replace("|", "\\|").replace("\n", " ")
        return f"**{text}**" if isinstance(c, Cell) and c.strong and text.strip() else text

    out = []
    if table.caption:
        out += [f"*{table.caption}*", ""]
    out.append("| " + " | ".join(cell(h) for h in table.headers) + " |")
    align = ["---" if table.is_text_column(i) or not table.numeric else "---:" for i in range(len(table.headers))]
    out.append("|" + "|".join(align) + "|")
    for row in table.rows:
        out.append("| " + " | ".join(cell(c) for c in row) + " |")
    return "\n".join(out)


def to_markdown(doc: ReportDoc) -> str:
    """SUMMARY.md: the banner and warnings first, then every section (plots are in report.html only)."""
    out = [f"# {doc.title}", ""]
    if doc.smoke:
        out += [f"> **SMOKE DATA — {SMOKE_BANNER}.**", ">"] + [f"> - {s}" for s in doc.smoke] + [""]
    if doc.rehearsal:
        out += [f"> **REHEARSAL — {REHEARSAL_BANNER}.**", ">"] + [f"> - {s}" for s in doc.rehearsal] + [""]
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
                out += [table_markdown(b), ""]
            elif isinstance(b, Plot):
                continue
            else:
                out += [b, ""]
    return "\n".join(out).rstrip() + "\n"
