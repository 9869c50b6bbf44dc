"""What each arm cost (tokens, latency, $, local wall time) and when an optimization pays for itself."""

from __future__ import annotations

import math
from dataclasses import dataclass

from src.consolidation.arms import ArmStat
from src.consolidation.format import is_missing, money, pct
from src.consolidation.inputs import MAIN_ARMS, ArmKey, Inputs, ModelInfo, Unit
from src.results.record import Record
from src.stats import core as stats

NAN = float("nan")


@dataclass
class UnitEconomics:
    """One arm's costs (the columns of economics.csv, whose `phase` column is `arm` here)."""

    model: str
    task: str
    arm: str
    kind: str
    n: int
    n_cached: int
    n_correct: int
    input_tokens: int
    output_tokens: int
    thinking_tokens: int
    lm_calls: int
    input_per_example: float
    output_per_example: float
    latency_p50_ms: float
    latency_p95_ms: float
    spend_usd: float = NAN
    rows_recomputed: int = 0
    usd_per_example: float = NAN
    usd_per_1k: float = NAN
    usd_per_correct: float = NAN
    cost_basis: str = ""
    wall_s: float = NAN
    wall_basis: str = ""


def economics(u: Unit, mi: ModelInfo, rate: float | None) -> UnitEconomics:
    """Tokens and $ per example on non-cached rows (a cache hit carries no usage); API $ from the CSV or tokens x
    registry price; local $ from wall time x `rate` ($/h) when one is given."""
    recs = u.records
    live = [r for r in recs if not r.cache_hit]
    n, n_live = len(recs), len(live)
    lat = [r.latency_ms for r in live]
    e = UnitEconomics(
        u.model, u.task, u.arm, mi.kind, n, n - n_live, sum(r.is_correct for r in recs),
        sum(r.input_tokens for r in recs), sum(r.output_tokens for r in recs), sum(r.thinking_tokens for r in recs),
        sum(r.lm_calls for r in recs),
        (sum(r.input_tokens for r in live) / n_live) if n_live else NAN,
        (sum(r.output_tokens for r in live) / n_live) if n_live else NAN,
        stats.quantile(lat, 0.5), stats.quantile(lat, 0.95))
    if mi.kind == "api":
        def row_cost(r: Record) -> tuple[float, bool]:
            if r.cost_usd > 0:
                return r.cost_usd, False
            if mi.has_prices and (r.input_tokens or r.output_tokens):
                return (r.input_tokens * mi.price_in + r.output_tokens * mi.price_out) / 1e6, True
            return 0.0, False

        costs = [row_cost(r) for r in recs]
        e.spend_usd = sum(c for c, _ in costs)
        e.rows_recomputed = sum(1 for _, rc in costs if rc)
        live_cost = sum(c for (c, _), r in zip(costs, recs) if not r.cache_hit)
        if n_live and (live_cost > 0 or mi.has_prices):
            e.usd_per_example = live_cost / n_live
        basis = "cost_usd from the CSV"
        if e.rows_recomputed:
            basis += f"; {e.rows_recomputed} row(s) recomputed from tokens × registry price"
        if not mi.has_prices and live_cost == 0:
            basis = "no cost recorded and no registry price"
        e.cost_basis = basis
    else:
        conc, wall = u.meta.concurrency, u.meta.wall_s
        live_lat_s = sum(lat) / 1000
        if conc is not None and conc > 0 and n_live:
            e.wall_s, e.wall_basis = live_lat_s / conc, f"sum of latencies / concurrency {conc:g}"
        elif wall is not None and wall > 0:
            e.wall_s, e.wall_basis = wall, "sidecar wall_s"
        else:
            e.wall_s, e.wall_basis = live_lat_s, "sum of latencies (concurrency unknown)"
        if rate is not None:
            e.spend_usd = e.wall_s / 3600 * rate
            e.usd_per_example = e.spend_usd / n_live if n_live else NAN
            e.cost_basis = f"local wall time × ${rate:g}/h"
        else:
            e.cost_basis = "local: no $ figure (pass --local-cost-per-hour)"
    pe = e.usd_per_example
    e.usd_per_1k = pe * 1000 if not is_missing(pe) else NAN
    e.usd_per_correct = (pe * n / e.n_correct if e.n_correct else math.inf) if not is_missing(pe) else NAN
    return e


# ---- break-even ----------------------------------------------------------------------------------------------------

@dataclass
class BreakEven:
    """An optimized local model x task: the one-off optimization cost against the per-call saving vs an API arm
    it matches (the columns of break_even.csv, whose `reference_phase` column is `reference_arm` here)."""

    model: str
    task: str
    local_score: float
    optimization_cost_usd: float = NAN
    opt_basis: str = ""
    reference: str | None = None
    reference_arm: str | None = None
    reference_score: float | None = None
    api_per_call_usd: float | None = None
    local_per_call_usd: float | None = None
    saving_per_call_usd: float | None = None
    payback_calls: int | float = NAN
    statement: str = ""


def _optimization_cost(inputs: Inputs, m: str, t: str, rate: float | None) -> tuple[float, str]:
    """The recorded optimization cost (teacher included), plus local compute when a rate is given."""
    ps = inputs.program_for(m, t)
    cost = ps.meta.optimization_cost.cost_usd if ps else None
    if cost is None:
        return NAN, "no optimization sidecar with a cost"
    total, basis = cost, f"sidecar optimization_cost ${cost:.4g} (API calls, teacher included)"
    wall = ps.meta.optimization_cost.wall_s
    if rate is not None and wall is not None and wall > 0:
        total += wall / 3600 * rate
        basis += f" + {wall / 3600:.2f} h local compute at ${rate:g}/h"
    return total, basis


def break_even(inputs: Inputs, arms: dict[ArmKey, ArmStat], econ: dict[ArmKey, UnitEconomics],
               rate: float | None) -> list[BreakEven]:
    """Per optimized local arm: the best API arm (baseline or optimized) whose score it matches or beats, the
    per-call saving against it, and the calls after which the optimization has paid for itself."""
    out = []
    for (arm_name, m, t), arm in arms.items():
        if arm_name != "optimized" or inputs.minfo[m].kind != "local":
            continue
        row = BreakEven(m, t, arm.score, *_optimization_cost(inputs, m, t, rate))
        # A local arm's $ per example for projections: measured when a rate is given, else taken as $0.
        local_pe = econ[(arm_name, m, t)].usd_per_example if rate is not None else 0.0
        row.local_per_call_usd = local_pe
        cands = []
        for (a2, m2, t2), st2 in arms.items():
            if t2 != t or inputs.minfo[m2].kind != "api" or a2 not in MAIN_ARMS:
                continue
            if st2.score <= arm.score + 1e-12:
                pe = econ[(a2, m2, t2)].usd_per_example
                cands.append((st2.score, -math.inf if is_missing(pe) else -pe, a2, m2))
        if not cands:
            row.statement = (f"{m} × {t}: the optimized local model ({pct(arm.score)}) matches no API arm on this "
                             f"task: no break-even")
            out.append(row)
            continue
        score, _, a2, m2 = max(cands, key=lambda c: (c[0], c[1]))
        api_pe = econ[(a2, m2, t)].usd_per_example
        row.reference, row.reference_arm, row.reference_score, row.api_per_call_usd = m2, a2, score, api_pe
        ref = f"{m2} ({a2}, {pct(score)} ≤ {pct(arm.score)})"
        if is_missing(api_pe):
            row.statement = f"{m} × {t}: matches or beats {ref}, whose cost per call is unknown: no break-even"
        else:
            saving = api_pe - local_pe
            row.saving_per_call_usd = saving
            if saving <= 0:
                row.statement = (f"{m} × {t}: matches or beats {ref}, but saves nothing per call "
                                 f"({money(local_pe)} local vs {money(api_pe)} API): never pays back")
            elif is_missing(row.optimization_cost_usd):
                row.statement = (f"{m} × {t}: saves {money(saving)} per call vs {ref}; optimization cost unknown "
                                 f"({row.opt_basis}), so no break-even")
            else:
                n_calls = math.ceil(round(row.optimization_cost_usd / saving, 6))
                row.payback_calls = n_calls
                row.statement = (f"{m} × {t}: optimizing cost {money(row.optimization_cost_usd)} once "
                                 f"({row.opt_basis}); at the per-call saving of {money(saving)} vs {ref} it pays "
                                 f"back after {n_calls:,} calls")
        out.append(row)
    return sorted(out, key=lambda r: (inputs.tasks.index(r.task), inputs.models.index(r.model)))
