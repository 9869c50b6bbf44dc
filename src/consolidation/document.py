"""The report's document (SUMMARY.md and report.html) built from an Analysis; it computes nothing new."""

from __future__ import annotations

from typing import Any

from src.consolidation.analysis import Analysis
from src.consolidation.arms import Paired
from src.consolidation.explorer import explorer_data
from src.consolidation.findings import sec_economics, sec_scoreboard, sec_variance
from src.consolidation.format import ci_txt, is_missing, mde_txt, num, pct, pts, pval
from src.consolidation.inputs import MAIN_ARMS
from src.consolidation.routing_doc import routing_plot_data, sec_routing
from src.consolidation.stability_doc import sec_stability
from src.report import Cell, Plot, ReportDoc, Section, Table
from src.results.record import now_iso

TITLE = "Intelligence Arbitrage — consolidated results"
MDE_NOTE = ("MDE = minimum detectable effect: the smallest true difference (points) the paired test detects with "
            "80% power at α = 0.05, for its n and observed discordance (binary: exact McNemar) or sd of the "
            "per-example differences (continuous: paired t); a non-significant delta says nothing about effects "
            "below it. 'none reachable': too few discordant pairs for any effect to reach 80% power.")


def build_document(an: Analysis) -> ReportDoc:
    """Header, banners, notes and every section, in the report's order."""
    inp, o = an.inputs, an.options
    local = [m for m in an.models if inp.minfo[m].kind == "local"]
    api = [m + (" (local model standing in for a frontier API)" if inp.minfo[m].stand_in else "")
           for m in an.models if inp.minfo[m].kind == "api"]
    dspy_versions = sorted({u.meta.dspy_version for u in inp.units if u.meta.dspy_version})
    sources = sorted({u.meta.data_source for u in inp.units if u.meta.data_source})
    header = [
        f"Generated {now_iso()} from {len(inp.units)} result file(s) in `{o.results_dir}` (top level).",
        f"Models: {len(an.models)} — local: {', '.join(local) or 'none'}; API: {', '.join(api) or 'none'}. "
        f"Tasks: {', '.join(f'{t} ({inp.tinfo[t].metric})' for t in an.tasks)}. "
        f"Arms: {', '.join(inp.arm_names)}.",
        f"Data source(s): {', '.join(sources) or 'unknown'}; DSPy: {', '.join(dspy_versions) or 'unknown'}.",
        f"Statistics: scores in % with 95% intervals — Wilson for binary tasks, percentile bootstrap "
        f"({o.n_boot} resamples, seed {o.seed}) for continuous ones, recomputing the task's corpus metric on "
        f"each resample where it is not a mean (e.g. micro-F1). Deltas are paired on the example ids both arms "
        f"share: paired bootstrap 95% CI; p from the exact McNemar test (binary) or a paired permutation test "
        f"(continuous; exact when ≤16 pairs differ). A delta is called improved/hurt only when its CI excludes 0 "
        f"and p < 0.05, otherwise 'no detectable effect'; Holm correction runs across the whole delta matrix. "
        f"Every delta carries its minimum detectable effect (MDE, 80% power) and every table names the family its "
        f"p-values are corrected over.",
    ]
    smoke_units = an.smoke_units
    smoke = []
    if smoke_units:
        smoke.append(f"{len(smoke_units)} of {len(inp.units)} result file(s) were made on built-in smoke "
                     f"samples: " + ", ".join(f"`{u.name}`" for u in smoke_units))
    rehearsal = rehearsal_lines(an)
    sections = [sec_scores(an), sec_deltas(an)]
    if inp.extra_arms:
        sections.append(sec_other_arms(an))
    stable = sec_stability(an)
    sections += ([stable] if stable else []) + [sec_scoreboard(an), sec_variance(an), sec_economics(an),
                                                 sec_routing(an), sec_failures(an), sec_reasoning(an)]
    sections += an.studies.sections()
    sections.append(sec_files(an))
    return ReportDoc(TITLE, header, smoke, an.warnings, an.notes, sections, plot_data(an), explorer_data(an),
                     rehearsal=rehearsal)


def rehearsal_lines(an: Analysis) -> list[str]:
    """The rehearsal banner's details: which stand-in answered for which models, in how many result files."""
    units = an.rehearsal_units
    if not units:
        return []
    stand_ins: dict[str, set[str]] = {}
    for u in units:
        r = u.meta.run.rehearsal
        stand_ins.setdefault(str(r.get("stand_in", "?")), set()).add(u.model)
    lines = [f"{len(units)} of {len(an.inputs.units)} result file(s) were made in a rehearsal."]
    lines += [f"stand-in `{s}` answered for: " + ", ".join(f"`{m}`" for m in sorted(models))
              for s, models in sorted(stand_ins.items())]
    return lines


# ---- cells ---------------------------------------------------------------------------------------------------------

def model_label(an: Analysis, m: str) -> str:
    mi = an.inputs.minfo[m]
    tag = "local, frontier stand-in" if mi.stand_in else ("API" if mi.kind == "api" else "local")
    return f"{m} ({tag}{', reasoning' if mi.supports_thinking else ''})"


def arm_cell(an: Analysis, arm: str, m: str, t: str) -> Cell:
    a = an.arms.get((arm, m, t))
    if a is None:
        return Cell("–", "muted")
    return Cell(f"{pct(a.score)} {ci_txt(a.lo, a.hi)} n={a.n}")


def delta_cell(d: Paired | None) -> Cell:
    if d is None:
        return Cell("–", "muted")
    if d.n_shared == 0:
        return Cell("no shared ids", "muted")
    mark = ("*†" if d.holm_reject else "*") if d.significant else ""
    cls = ("pos" if d.delta > 0 else "neg") if d.significant else "ns"
    return Cell(f"{pts(d.delta)}{mark} {ci_txt(d.lo, d.hi, True)}", cls)


def matrix(an: Analysis, arm: str) -> Table:
    return Table(["model"] + an.tasks,
                 [[model_label(an, m)] + [arm_cell(an, arm, m, t) for t in an.tasks] for m in an.models])


# ---- sections ------------------------------------------------------------------------------------------------------

def sec_scores(an: Analysis) -> Section:
    s = Section("Scores")
    s.blocks.append("Each cell: corpus score in % [95% interval] and n examples. Binary tasks use the Wilson "
                    "interval; continuous ones the percentile bootstrap.")
    if "baseline" in an.inputs.arm_names:
        s.blocks += ["**Baseline** (unoptimized program):", matrix(an, "baseline")]
    if "optimized" in an.inputs.arm_names:
        s.blocks += ["**Optimized** (DSPy-compiled program):", matrix(an, "optimized")]
    s.blocks.append(Plot("scores", "Baseline vs optimized per task, with 95% interval bars."))
    return s


def sec_deltas(an: Analysis) -> Section:
    s = Section("Delta (optimized − baseline)")
    ds = list(an.deltas.values())
    if not ds:
        s.blocks.append("No model × task has both a baseline and an optimized result: no deltas.")
        return s
    m_tested = sum(1 for d in ds if not is_missing(d.p))
    n_holm = sum(1 for d in ds if d.holm_reject)
    s.blocks.append(f"Percentage points with the paired 95% CI. `*` = CI excludes 0 and p < 0.05 (uncorrected); "
                    f"`†` = also survives Holm correction across all {m_tested} deltas. "
                    f"**{n_holm} of {m_tested} delta(s) survive Holm.** A cell without a mark is no detectable "
                    f"effect, whatever the sign of its point estimate: its CI spans 0, or the paired test gives "
                    f"p ≥ 0.05 (at small n the percentile bootstrap is optimistic; the exact test is the safer "
                    f"guide).")
    s.blocks.append(Table(["model"] + an.tasks,
                          [[model_label(an, m)] + [delta_cell(an.deltas.get((m, t))) for t in an.tasks]
                           for m in an.models]))
    s.blocks.append(Plot("delta_heatmap", "Delta heatmap (points); * = CI excludes 0 and p < 0.05, † = also "
                                          "survives Holm."))
    rows = []
    for (m, t), d in sorted(an.deltas.items(), key=lambda kv: (an.tasks.index(kv[0][1]), an.models.index(kv[0][0]))):
        rows.append([m, t, str(d.n_shared), pct(d.a_score), pct(d.b_score), delta_cell(d),
                     pval(d.p), d.test, pval(d.holm_p), "yes" if d.holm_reject else "no",
                     Cell(d.verdict, "pos" if d.verdict == "improved" else "neg" if d.verdict == "hurt" else "ns"),
                     mde_txt(d.mde)])
    s.blocks.append(Table(["model", "task", "n shared", "baseline", "optimized", "delta [95% CI]", "p", "test",
                           "Holm p", "survives Holm", "verdict", "MDE (pts)"], rows,
                          caption=f"Every comparison, on the examples both arms share. Correction family: "
                                  f"{ds[0].family}. {MDE_NOTE}", text_cols=2, left=(7, 10)))
    return s


def sec_other_arms(an: Analysis) -> Section:
    s = Section("Other arms")
    s.blocks.append(f"Phases besides baseline/optimized found in the results: {', '.join(an.inputs.extra_arms)}. "
                    f"Scores with 95% intervals, and their paired delta vs the baseline (not part of the Holm "
                    f"family).")
    for arm in an.inputs.extra_arms:
        s.blocks += [f"**{arm}**:", matrix(an, arm)]
        rows = [[m, t, str(d.n_shared), delta_cell(d), pval(d.p), d.test, d.verdict, mde_txt(d.mde)]
                for (a2, m, t), d in an.other_deltas.items() if a2 == arm]
        if rows:
            s.blocks.append(Table(["model", "task", "n shared", f"{arm} − baseline [95% CI]", "p", "test",
                                   "verdict", "MDE (pts)"], rows, text_cols=2, left=(5, 6),
                                  caption="Correction family: none — each p is uncorrected (these arms are outside "
                                          "the Holm family of optimized − baseline). " + MDE_NOTE))
    return s


def sec_failures(an: Analysis) -> Section:
    s = Section("Parse failures and errors")
    s.blocks.append("Separate from accuracy: a parse failure is an answer the adapter could not read; an error "
                    "is a backend failure (both score 0 in the tables above).")
    rows = []
    for k in sorted(an.failures, key=an.order):
        f = an.failures[k]
        rows.append([k[1], k[2], k[0], str(f.n), str(f.parse_failures), f"{100 * f.parse_failures / f.n:.1f}%",
                     str(f.errors), f"{100 * f.errors / f.n:.1f}%",
                     f"{f.top_error[0]} (×{f.top_error[1]})" if f.top_error else "–"])
    s.blocks.append(Table(["model", "task", "arm", "n", "parse failures", "rate", "errors", "rate",
                           "most common error"], rows, text_cols=3, left=(-1,)))
    return s


def sec_reasoning(an: Analysis) -> Section:
    s = Section("Reasoning models")
    inp = an.inputs
    ms = [m for m in an.models if inp.minfo[m].supports_thinking]
    if not ms:
        s.blocks.append("No reasoning model (registry supports_thinking) in the results.")
        return s
    s.blocks.append(f"Models that think before answering: {', '.join(ms)}. Thinking tokens are estimated from "
                    f"the removed <think> text and are included in output tokens.")
    rows = []
    for k in sorted(inp.unit, key=lambda k: (an.models.index(k[1]), an.tasks.index(k[2]),
                                             inp.arm_names.index(k[0]))):
        if k[1] not in ms:
            continue
        e = an.economics[k]
        rows.append([e.model, e.task, e.arm, f"{e.n} ({e.n_cached} cached)", num(e.latency_p50_ms, ".0f"),
                     num(e.latency_p95_ms, ".0f"), num(e.thinking_tokens / e.n, ".1f"),
                     num(e.output_tokens / e.n, ".1f"),
                     f"{100 * e.thinking_tokens / e.output_tokens:.0f}%" if e.output_tokens else "–"])
    s.blocks.append(Table(["model", "task", "arm", "n", "latency p50 ms", "latency p95 ms",
                           "mean thinking tokens", "mean output tokens", "thinking share"], rows, text_cols=3))
    return s


def sec_files(an: Analysis) -> Section:
    s = Section("Inputs")
    rows = []
    for u in sorted(an.inputs.units, key=lambda u: u.name):
        rows.append([u.name, u.arm, u.model, u.task, str(len(u.records)), str(u.meta.status or "?"),
                     u.meta.dspy_version or "?", u.meta.data_source or "?", "yes" if u.meta.smoke else "no"])
    s.blocks.append(Table(["file", "arm", "model", "task", "n", "status", "DSPy", "data source", "smoke"], rows,
                          numeric=False))
    return s


# ---- plots ---------------------------------------------------------------------------------------------------------

def plot_data(an: Analysis) -> dict[str, Any]:
    """The figures' data (report.html draws them; the keys and the 'phase' field are the plots' format)."""
    inp = an.inputs
    arms = [{"task": k[2], "model": k[1], "phase": k[0], "score": a.score, "lo": a.lo, "hi": a.hi}
            for k, a in an.arms.items() if k[0] in MAIN_ARMS]
    kinds = {m: ("API" if inp.minfo[m].kind == "api" else "local") for m in an.models}
    data: dict[str, Any] = {
        "scores": {"tasks": an.tasks, "models": an.models, "arms": arms, "kinds": kinds,
                   "phases": [a for a in MAIN_ARMS if a in inp.arm_names]} if arms else None,
        "delta_heatmap": {"models": [m for m in an.models if any(k[0] == m for k in an.deltas)],
                          "tasks": [t for t in an.tasks if any(k[1] == t for k in an.deltas)],
                          "cells": [{"model": m, "task": t, "delta": d.delta, "significant": d.significant,
                                     "holm": d.holm_reject} for (m, t), d in an.deltas.items()
                                    if not is_missing(d.delta)]} if an.deltas else None,
    }
    points = []
    for k, e in an.economics.items():
        if k[0] not in MAIN_ARMS:
            continue
        per1k = e.usd_per_1k
        if e.kind == "local" and an.options.local_cost_per_hour is None:
            per1k = 0.0
        points.append({"task": k[2], "model": k[1], "phase": k[0], "kind": e.kind,
                       "score": an.arms[k].score, "cost_per_1k": None if is_missing(per1k) else per1k})
    data["cost_frontier"] = {"tasks": an.tasks, "points": points} if points else None
    data["routing"] = routing_plot_data(an)
    data.update(an.studies.plot_data())
    return data
