"""The report owns presentation: the document model (model.py), its Markdown rendering (markdown.py, SUMMARY.md),
its HTML rendering (html.py, report.html) and the figures (plots.py). It computes nothing."""

from src.report.html import render_html, write_report
from src.report.markdown import to_markdown
from src.report.model import SMOKE_BANNER, Cell, Plot, ReportDoc, Section, Table

__all__ = ["SMOKE_BANNER", "Cell", "Plot", "ReportDoc", "Section", "Table", "render_html", "to_markdown",
           "write_report"]
