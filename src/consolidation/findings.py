"""The report's sections on the study's findings, from an Analysis: scoreboard, variance with demo counts, economics."""

from __future__ import annotations

from typing import Any

from src.consolidation.analysis import Analysis
from src.consolidation.arms import ArmStat, Paired
from src.consolidation.format import ci_txt, is_missing, mde_txt, money, num, pct, pts, pval
from src.consolidation.programs import DemoCounts
from src.report import Cell, Plot, Section, Table


def comparison_text(d: Paired, verdict: bool = True) -> str:
    if d.n_shared == 0:
        return "not paired (no shared example ids)"
    return (f"{pts(d.delta)} pts, 95% CI {ci_txt(d.lo, d.hi, True)}, p={pval(d.p)} ({d.test}), "
            f"n={d.n_shared} shared" + (f" — {d.verdict}" if verdict else ""))


def _arm_text(a: ArmStat | None) -> str:
    return f"{pct(a.score)} {ci_txt(a.lo, a.hi)}" if a else "–"


def _vs_cell(d: Paired | None) -> Cell:
    if d is None:
        return Cell("–", "muted")
    if d.n_shared == 0:
        return Cell("not paired (no shared ids)", "muted")
    cls = ("pos" if d.delta > 0 else "neg") if d.significant else "ns"
    return Cell(f"{pts(d.delta)} {ci_txt(d.lo, d.hi, True)} p={pval(d.p)} Holm p={pval(d.holm_p)} "
                f"n={d.n_shared} MDE {mde_txt(d.mde)}" + ("" if d.significant else " (n.s.)"), cls,
                strong=d.significant)


def sec_scoreboard(an: Analysis) -> Section:
    s = Section("Arbitrage scoreboard")
    fam = next((d.family for r in an.scoreboard for d in r.vs.values() if d is not None), "none")
    s.blocks.append("Per task: the best optimized local model against each API model's baseline and optimized "
                    "scores. Where several local models compete, the best is chosen on a seeded half of the "
                    "examples they share and everything in its row (its score, the differences) is measured on the "
                    "other half only, so the winner is not tested on the examples that picked it. Differences are "
                    "local − API in points, paired on shared example ids, with the minimum detectable effect (MDE, "
                    f"80% power). Correction family: {fam}; n.s. = CI spans 0 or uncorrected p ≥ 0.05.")
    table = []
    for r in an.scoreboard:
        best = r.local
        if r.api_model is None:
            table.append([r.task, "(no API model)", "–", "–",
                          f"{best.unit.model} {pct(best.score)}" if best else "–", "–", "–"])
            continue
        table.append([r.task, r.api_model, _arm_text(r.api["baseline"]), _arm_text(r.api["optimized"]),
                      f"{best.unit.model} {pct(best.score)} {ci_txt(best.lo, best.hi)} n={best.n}" if best
                      else "no optimized local model",
                      r.choice.text if r.choice else "–",
                      _vs_cell(r.vs.get("baseline")), _vs_cell(r.vs.get("optimized"))])
    s.blocks.append(Table(["task", "API model", "API baseline", "API optimized", "best optimized local",
                           "chosen on", "local − API baseline", "local − API optimized"], table, text_cols=2,
                          left=(5,)))
    if any(r.api_model is None for r in an.scoreboard):
        s.blocks.append("**No API model to compare with** on some tasks. Offline, install the frontier stand-in "
                        "(`./setup_models.sh --with-qwen`: Qwen2.5-Coder-1.5B, the embedded preset's reference) and "
                        "run again; for the real study, set up Ollama and API keys and run "
                        "`./run_experiment.sh --preset full`.")
    if an.inversions:
        lines = ["**Rank inversions** (optimized local > optimized API; all examples, each p uncorrected — "
                 "correction family: none):"]
        for inv in an.inversions:
            sig = ("**significant**" if inv.cmp.significant else
                   "**not significant**: no detectable difference, the ranking may be noise")
            lines.append(f"- {inv.task}: {inv.local.unit.model} optimized {pct(inv.local.score)} > "
                         f"{inv.api.unit.model} optimized {pct(inv.api.score)}: "
                         f"{comparison_text(inv.cmp, verdict=False)} — {sig}")
        s.blocks.append("\n".join(lines))
    else:
        s.blocks.append("**Rank inversions** (optimized local > optimized API): none.")
    rate = an.options.local_cost_per_hour
    s.blocks.append(Plot("cost_frontier", "The arbitrage frontier: score vs $ per 1,000 examples per task "
                         "(API at list price; local at " + (f"${rate:g}/h of wall time" if rate is not None else
                         "$0 — pass --local-cost-per-hour to price local compute") + "). Circles local, squares "
                         "API; the line is the cost-accuracy frontier."))
    return s


def sec_variance(an: Analysis) -> Section:
    s = Section("Variance analysis (phase 2)")
    v = an.variance
    if is_missing(v.ratio):
        reading = "not computable (needs ≥2 models per task and ≥2 tasks per model with deltas)"
    elif v.ratio > 1:
        reading = ("deltas differ more between models on the same task than between tasks for the same model: "
                   "the model, more than the task, decides whether optimization helps")
    else:
        reading = ("deltas differ more between tasks for the same model than between models on the same task: "
                   "the task, more than the model, decides whether optimization helps")

    def sq(x: float) -> str:
        return "–" if is_missing(x) else f"{x * 1e4:.1f}"

    s.blocks.append(Table(["measure", "value"], [
        ["pooled variance of deltas within tasks (across models), points²", f"{sq(v.within_task)} (df={v.df_task})"],
        ["pooled variance of deltas within models (across tasks), points²",
         f"{sq(v.within_model)} (df={v.df_model})"],
        ["ratio within-task ÷ within-model", num(v.ratio, ".2f")],
        ["mean pairwise Pearson r of models' delta vectors",
         f"{num(v.mean_r, '.2f')} over {v.n_pairs} model pair(s)" if v.n_pairs
         else "n/a (needs model pairs sharing ≥3 tasks)"],
    ], numeric=False))
    s.blocks.append(f"Reading: {reading}.")
    tiers = [[x.task, str(x.n_models), str(x.improved), str(x.hurt), str(x.no_effect),
              f"{x.positive} of {x.n_models}", pts(x.mean_delta), x.tier] for x in v.tiers]
    if tiers:
        s.blocks.append(Table(["task", "models", "improved", "hurt", "no detectable effect", "positive point "
                               "estimates", "mean delta", "consistency tier"], tiers,
                              caption="Consistency per task (improved/hurt = CI excludes 0 and p < 0.05, "
                                      "uncorrected — correction family: none).", left=(-1,)))
    s.blocks += _demo_blocks(an.demo_counts)
    return s


def _demo_blocks(dc: DemoCounts) -> list[Any]:
    if not dc.rows:
        return ["Demo counts: no optimization sidecars in `optimized_programs/`."]
    rows = []
    for r in dc.rows:
        meta = r.program.meta
        dev_txt = num(meta.dev_score * 100 if meta.dev_score is not None else None)
        if meta.baseline_dev_score is not None:
            dev_txt = f"{meta.baseline_dev_score * 100:.1f} → {dev_txt}"
        cost = meta.optimization_cost
        rows.append([r.model, r.task, str(r.program.optimizer or "?"),
                     str(meta.teacher or "–") + (" (self)" if meta.teacher_is_student else ""),
                     str(meta.status or "?"), str(r.n_demos if r.n_demos is not None else "?"),
                     str(r.max_demos) if r.max_demos is not None else "?",
                     ", ".join(f"{x.seed}:{'?' if x.n_demos is None else x.n_demos}" for x in meta.seeds) or "–",
                     str(meta.chosen_seed if meta.chosen_seed is not None else "–"), dev_txt,
                     f"{r.seeds_ok}/{len(meta.seeds)}", money(cost.cost_usd), num(cost.wall_s, ".0f"),
                     "yes" if r.evaluated else ""])
    blocks: list[Any] = [Table(
        ["model", "task", "optimizer", "teacher", "status", "demos (chosen)", "max possible", "demos per seed",
         "chosen seed", "dev score % (baseline → chosen)", "seeds ok", "optimization $", "optimization s",
         "evaluated"], rows,
        caption="Demo counts chosen per program (optimization sidecars); max possible = (max bootstrapped + max "
                "labeled demos) × predictors, from the preset's budget.", text_cols=5)]
    if dc.programs:
        n = len(dc.programs)
        if dc.n_between == 0 and dc.n_zero and dc.n_full:
            blocks.append(f"**Demo-count pattern: 0 or max, never in between** — of {n} programs, {dc.n_zero} kept "
                          f"0 demos and {dc.n_full} kept the maximum their budget allows (or the largest count seen "
                          f"where the budget is unknown).")
        else:
            blocks.append(f"Demo-count pattern: of {n} programs, {dc.n_zero} kept 0 demos, {dc.n_full} the maximum, "
                          f"{dc.n_between} a count in between"
                          + (" — not the '0 or max' pattern." if dc.n_between else "."))
    return blocks


def sec_economics(an: Analysis) -> Section:
    s = Section("Economics")
    rate = an.options.local_cost_per_hour
    s.blocks.append("Tokens and $ per example are measured on non-cached rows (cache hits carry no usage); "
                    "latency p50/p95 excludes cache hits. API $ = the CSV's cost_usd, recomputed from tokens × "
                    "registry price where it is 0. $/correct = projected cost of the whole set ÷ correct answers. "
                    "Local wall time = sum of latencies ÷ the run's concurrency (else the sidecar's wall_s); "
                    + (f"local $ = wall time × ${rate:g}/h." if rate is not None else
                       "local $ is not priced (pass --local-cost-per-hour USD)."))
    rows = []
    for k in sorted(an.economics, key=an.order):
        e = an.economics[k]
        rows.append([e.model, e.task, e.arm, f"{e.n} ({e.n_cached} cached)",
                     f"{e.input_tokens:,} ({num(e.input_per_example, '.0f')})",
                     f"{e.output_tokens:,} ({num(e.output_per_example, '.0f')})",
                     f"{num(e.latency_p50_ms, '.0f')} / {num(e.latency_p95_ms, '.0f')}",
                     money(e.spend_usd), money(e.usd_per_example), money(e.usd_per_1k), money(e.usd_per_correct),
                     f"{num(e.wall_s, '.1f')} s" if e.kind == "local" else "–"])
    s.blocks.append(Table(["model", "task", "arm", "n", "input tokens (per ex.)", "output tokens (per ex.)",
                           "latency p50 / p95 ms", "$ spent", "$ / example", "$ / 1k examples", "$ / correct",
                           "local wall"], rows, text_cols=3))
    s.blocks.append("**Break-even of optimization** (optimized local model × task). Assumptions: future traffic "
                    "costs what this eval set cost per example; API at list price; local at "
                    + (f"${rate:g}/h of wall time" if rate is not None else "$0 per call (no "
                       "--local-cost-per-hour given)") + "; optimization is a one-off cost; the reference is "
                    "the best API arm (baseline or optimized) whose score the optimized local model matches or "
                    "beats (point estimates — see the scoreboard for whether the difference is significant).")
    if an.break_even:
        s.blocks.append("\n".join(f"- {r.statement}" for r in an.break_even))
    else:
        s.blocks.append("No optimized local model in the results.")
    return s
