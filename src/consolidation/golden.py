"""The golden folder: its CSVs written from an Analysis alone, SUMMARY.md and report.html from the document, and
the whole folder built aside and swapped in only when complete."""

from __future__ import annotations

import csv
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from src.consolidation.analysis import Analysis, Options, analyse
from src.consolidation.arms import ArmStat, Paired
from src.consolidation.comparability import comparability
from src.consolidation.document import build_document
from src.consolidation.format import csv_text, is_missing, pct, safe_name
from src.consolidation.inputs import MAIN_ARMS, ArmKey, TaskResolver, load_inputs
from src.consolidation.routing_doc import ROUTING_COLUMNS, routing_rows
from src.consolidation.stability_doc import STABILITY_COLUMNS, stability_rows
from src.errors import UserError
from src.report import SMOKE_BANNER, ReportDoc, to_markdown, write_report

if TYPE_CHECKING:
    from src.registry import Config

MARKER = ".golden"  # identifies an output folder this tool made (and may therefore replace)

# economics.csv / break_even.csv columns; where a column's name is not the field's, the field is given.
ECONOMICS_COLUMNS = ["model", "task", "phase", "kind", "n", "n_cached", "n_correct", "input_tokens", "output_tokens",
                     "thinking_tokens", "lm_calls", "input_per_example", "output_per_example", "latency_p50_ms",
                     "latency_p95_ms", "spend_usd", "rows_recomputed", "usd_per_example", "usd_per_1k",
                     "usd_per_correct", "cost_basis", "wall_s", "wall_basis"]
BREAK_EVEN_COLUMNS = ["model", "task", "local_score", "optimization_cost_usd", "opt_basis", "reference",
                      "reference_phase", "reference_score", "api_per_call_usd", "local_per_call_usd",
                      "saving_per_call_usd", "payback_calls", "statement"]
FIELD_OF_COLUMN = {"phase": "arm", "reference_phase": "reference_arm"}


def _fields(obj: Any, columns: list[str]) -> list[Any]:
    return [getattr(obj, FIELD_OF_COLUMN.get(c, c)) for c in columns]


def write_tables(an: Analysis, folder: Path) -> None:
    """Every golden CSV, from the Analysis alone (no document needed)."""
    (folder / "details").mkdir(parents=True, exist_ok=True)
    models, tasks = an.models, an.tasks

    def put(name: str, header: list[str], rows: list[list[Any]]) -> None:
        (folder / name).write_text(csv_text(header, rows), encoding="utf-8")

    def matrix(name: str, value: Callable[[str, str], str]) -> None:
        put(name, ["model"] + tasks, [[m] + [value(m, t) for t in tasks] for m in models])

    def score(arm: str) -> Callable[[str, str], str]:
        return lambda m, t: pct(an.arms[(arm, m, t)].score).replace("–", "") if (arm, m, t) in an.arms else ""

    matrix("summary_scores.csv", score("baseline"))
    matrix("summary_counts.csv", lambda m, t: str(an.arms[("baseline", m, t)].n) if ("baseline", m, t) in an.arms
           else "")
    matrix("optimized_scores.csv", score("optimized"))
    matrix("delta_scores.csv", lambda m, t: f"{100 * an.deltas[(m, t)].delta:.1f}" if (m, t) in an.deltas
           and not is_missing(an.deltas[(m, t)].delta) else "")
    # the MDE as a sibling matrix (points at 80% power): delta_scores.csv keeps its documented shape, and a reader
    # of the delta matrix finds, cell for cell, the smallest effect each test could have detected ("inf": none)
    matrix("delta_mde.csv", lambda m, t: _points(an.deltas[(m, t)].mde) if (m, t) in an.deltas else "")
    put("arms.csv", ["model", "task", "phase", "kind", "n", "n_correct", "score", "ci_low", "ci_high", "interval",
                     "file"],
        [[k[1], k[2], k[0], an.inputs.minfo[k[1]].kind, a.n, a.n_correct, round(a.score, 6), round(a.lo, 6),
          round(a.hi, 6), a.method, a.unit.name] for k, a in an.arms.items()])
    all_deltas: list[tuple[str, str, str, Paired]] = [("optimized", m, t, d) for (m, t), d in an.deltas.items()]
    all_deltas += [(arm, m, t, d) for (arm, m, t), d in an.other_deltas.items()]
    put("deltas.csv", ["model", "task", "arm", "n_shared", "baseline", "arm_score", "delta", "ci_low", "ci_high", "p",
                       "test", "holm_p", "holm_reject", "verdict", "family", "mde", "mde_basis"],
        [[m, t, arm, d.n_shared, d.a_score, d.b_score, d.delta, d.lo, d.hi, d.p, d.test,
          d.holm_p if arm == "optimized" else float("nan"), int(d.holm_reject), d.verdict, d.family, d.mde,
          d.mde_basis] for arm, m, t, d in all_deltas])
    put("routing.csv", ROUTING_COLUMNS, routing_rows(an))
    put("stability.csv", STABILITY_COLUMNS, stability_rows(an))
    put("economics.csv", ECONOMICS_COLUMNS, [_fields(e, ECONOMICS_COLUMNS) for e in an.economics.values()])
    put("break_even.csv", BREAK_EVEN_COLUMNS, [_fields(r, BREAK_EVEN_COLUMNS) for r in an.break_even])
    sb = []
    for r in an.scoreboard:
        if r.api_model is None:
            continue
        best = r.local
        for arm in MAIN_ARMS:
            d, ref = r.vs.get(arm), r.api[arm]
            sb.append([r.task, r.api_model, arm, ref.score if ref else None, best.unit.model if best else None,
                       best.score if best else None, d.n_shared if d else None, d.delta if d else None,
                       d.lo if d else None, d.hi if d else None, d.p if d else None, d.verdict if d else None,
                       d.holm_p if d else None, int(d.holm_reject) if d else None, d.family if d else None,
                       d.mde if d else None, r.choice.text if r.choice else None])
    # the local score and the comparisons are on the test half when the best local model was chosen (chosen_on)
    put("scoreboard.csv", ["task", "api_model", "api_phase", "api_score", "best_local_optimized", "local_score",
                           "n_shared", "delta", "ci_low", "ci_high", "p", "verdict", "holm_p", "holm_reject",
                           "family", "mde", "chosen_on"], sb)
    for m in models:
        for t in tasks:
            _write_details(an, folder, m, t)


def _points(x: float) -> str:
    """A 0..1 effect as points with one decimal; "inf" when no effect the data allow is detectable."""
    if is_missing(x):
        return ""
    return "inf" if x == float("inf") else f"{100 * x:.1f}"


def _write_details(an: Analysis, folder: Path, m: str, t: str) -> None:
    """details/{model}_{task}.csv: every example once, each arm's prediction and score side by side."""
    units = [an.inputs.unit[(a, m, t)] for a in an.inputs.arm_names if (a, m, t) in an.inputs.unit]
    if not units:
        return
    ids = list(dict.fromkeys(e for u in units for e in u.ids))  # first-seen order across the arms
    header = ["example_id", "ground_truth"]
    for u in units:
        header += [f"{u.arm}_prediction", f"{u.arm}_score"]
    rows = []
    for e in ids:
        recs = [u.by_id.get(e) for u in units]
        row: list[Any] = [e, next((r.ground_truth for r in recs if r is not None), "")]
        for r in recs:
            row += [r.prediction, r.score] if r is not None else ["", ""]
        rows.append(row)
    (folder / "details" / f"{safe_name(m)}_{safe_name(t)}.csv").write_text(csv_text(header, rows), encoding="utf-8")


def write(an: Analysis, doc: ReportDoc, folder: Path) -> None:
    """The whole golden folder's content: the CSVs, SUMMARY.md, report.html and the marker."""
    write_tables(an, folder)
    (folder / "SUMMARY.md").write_text(to_markdown(doc), encoding="utf-8")
    write_report(doc, folder / "report.html")
    (folder / MARKER).write_text("made by python -m src.consolidate_results; this whole folder is replaced on each "
                                 "run\n", encoding="utf-8")


# ---- the output folder, replaced as a whole ------------------------------------------------------------------------

def check_out(out: Path, results_dir: Path) -> None:
    """Refuse an --out that is (or holds) the results, or a folder this tool did not make."""
    o, r = out.resolve(), results_dir.resolve()
    if o == r or r.is_relative_to(o):
        raise UserError(f"--out {out}: must not be the results folder or contain it (it is replaced as a whole)")
    if out.exists():
        if not out.is_dir():
            raise UserError(f"--out {out}: exists and is not a folder")
        if any(out.iterdir()) and not (out / MARKER).is_file():
            raise UserError(f"--out {out}: exists and was not made by this tool (no {MARKER} marker); refusing to "
                            f"replace it — choose another --out or empty it")


def swap_in(tmp: Path, out: Path) -> None:
    """Replace `out` by `tmp`; if that fails, the previous `out` is put back."""
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        try:
            os.replace(tmp, out)
        except OSError:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


@dataclass
class Consolidation:
    out: Path
    warnings: list[str]
    notes: list[str]
    smoke: list[str]
    arms: dict[ArmKey, ArmStat] = field(default_factory=dict)
    deltas: dict[tuple[str, str], Paired] = field(default_factory=dict)


def consolidate(opts: Options, config: Config | None = None, resolver: TaskResolver | None = None,
                log: TextIO | None = None) -> Consolidation:
    """Read, check, analyse, and write the golden folder (built aside and swapped in only when complete).

    `resolver` gives each task key its Task (for the corpus metric); without one every task falls back to the
    mean of its per-example scores, with a note."""
    log = log or sys.stderr
    csv.field_size_limit(2**31 - 1)  # long predictions (code, summaries) must not look corrupt
    check_out(opts.out, opts.results_dir)
    inputs = load_inputs(opts.results_dir, config, resolver)
    warnings = comparability(inputs)
    if warnings and opts.strict:
        raise UserError("comparability check failed (--strict; nothing written): " + " | ".join(warnings))
    if warnings:
        print("WARNING — results that are not comparable will be compared (see the top of SUMMARY.md):", file=log)
        for w in warnings:
            print(f"  - {w}", file=log)
    an = analyse(inputs, opts, warnings)
    doc = build_document(an)
    if an.smoke_units:
        print(f"note: {SMOKE_BANNER}", file=log)
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = opts.out.parent / f".{opts.out.name}.building-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        write(an, doc, tmp)
        swap_in(tmp, opts.out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return Consolidation(opts.out, warnings, an.notes, doc.smoke, an.arms, an.deltas)
