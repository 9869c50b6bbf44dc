"""The report's document model, shared by SUMMARY.md and report.html: a header, banners, and sections made of text,
tables and plot references. Consolidation builds it; markdown.py and html.py render it; nothing here renders."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any



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

    def is_text_column(self, i: int) -> bool:
        """Left-aligned (text) rather than a right-aligned number column?"""
        return i < self.text_cols or i in self.left or (i - len(self.headers)) in self.left


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
    # The explorable part of report.html (src.consolidation.explorer): examples, programs, delta grid, cost/quality
    explorer: dict[str, Any] = field(default_factory=dict)
    # non-empty: the results were answered by rehearsal stand-ins (python -m src.rehearse); banner details
    rehearsal: list[str] = field(default_factory=list)


SMOKE_BANNER = "built-in smoke samples: these numbers prove the pipeline, not model quality"
REHEARSAL_BANNER = ("a rehearsal: every model named here was answered by a small local stand-in through its own "
                    "protocol; these numbers prove the study's path, not any model's quality")
