"""Routing and cascades from recorded results (no new LM calls): for a local arm and an API arm evaluated on the
same examples, what each routing policy would have scored, cost and taken, had it been deployed.

Policies: always API; always local; cascades that answer locally and escalate to the API when a signal says the
local answer is unreliable. Signals, each read from the local record: `error` (the backend failed), `parse` (the
adapter could not read the answer), `check` (a task-independent format check: an empty answer, or — where every
gold answer of the task is a number — an answer holding no number), and, where the local arm was recorded with
--repeats k, `agree<τ` (the share of the k attempts giving the most common answer is below τ; τ swept over the
levels k attempts allow). The cascades form a ladder of escalation rules from the narrowest to the widest, each
agreement threshold added to the widest rule. With repeats, a local answer scores the mean of its attempts (what
one deployed attempt is expected to score).

Honest selection: the shared examples are split by a seeded permutation of their ids (stats.selection) into a
selection half, where the recommended policy is chosen, and a test half, where every reported number comes from.
Recommended = the cheapest policy (at $ per 1,000 requests on the selection half) whose quality is not worse than
always-API by more than the margin (the paired 95% CI's lower bound of policy − API above −margin) on the selection
half; on the test half it is reported with its own CI and whether the margin still holds there.

Cost per request: API = the record's cost_usd, else its tokens at registry prices (a local stand-in for the API is
priced as local compute); local = latency ÷ the unit's concurrency × the --local-cost-per-hour rate (0 without
one). A cascade pays the local attempt on every request and the API on escalated ones, and adds the local latency
to escalated requests. Cache hits carry no usage or real latency: they are charged the mean of the unit's live
rows.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from src.consolidation.inputs import ArmKey, Inputs, ModelInfo, TaskInfo, Unit
from src.results.record import Record, record_score
from src.stats.comparison import Metric, paired_delta, score_interval
from src.stats.selection import SELECTION_SEED, selection_split

MARGIN = 0.01  # default non-inferiority margin: 1 point
LADDER = (("error",), ("error", "parse"), ("error", "parse", "check"))
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
NAN = float("nan")


@dataclass
class PolicyResult:
    """One policy on one set of examples (the test half unless said otherwise)."""

    policy: str  # always_api | always_local | cascade
    signals: tuple[str, ...]
    n: int
    share_local: float  # requests answered locally
    quality: float
    q_lo: float
    q_hi: float
    delta: float  # quality − always-API, paired
    d_lo: float
    d_hi: float
    p: float
    usd_per_1k: float
    latency_ms: float  # mean per request
    added_latency_ms: float  # vs always-API
    non_inferior: bool = False  # delta's CI lower bound > −margin
    frontier: bool = False  # no other policy is cheaper-or-equal and better

    @property
    def name(self) -> str:
        return self.policy if self.policy != "cascade" else "cascade on " + "+".join(self.signals)


@dataclass
class RoutingPair:
    """A (local arm, API arm) pair on one task: every policy on the test half and the recommended one."""

    task: str
    local: ArmKey
    api: ArmKey
    n_shared: int
    n_selection: int
    n_test: int
    margin: float
    local_rate: float | None
    local_repeats: int = 1
    policies: list[PolicyResult] = field(default_factory=list)  # on the test half
    recommended: str | None = None  # the policy name chosen on the selection half
    selection: list[PolicyResult] = field(default_factory=list)

    @property
    def api_result(self) -> PolicyResult | None:
        return next((p for p in self.policies if p.policy == "always_api"), None)

    @property
    def chosen(self) -> PolicyResult | None:
        return next((p for p in self.policies if p.name == self.recommended), None)

    @property
    def savings_per_1k(self) -> float:
        c, a = self.chosen, self.api_result
        return a.usd_per_1k - c.usd_per_1k if c and a else NAN


class _Costs:
    """Per-example $ and latency of one unit, cache hits charged the mean of the live rows."""

    def __init__(self, u: Unit, mi: ModelInfo, rate: float | None):
        live = [r for r in u.records if not r.cache_hit] or u.records
        self.conc = float(u.meta.concurrency or 1)
        local_priced = mi.kind == "local" or mi.stand_in
        self.usd = {r.example_id: self._usd(r, mi, rate, local_priced) for r in u.records}
        self.lat = {r.example_id: r.latency_ms for r in u.records}
        mean_usd = sum(self.usd[r.example_id] for r in live) / len(live) if live else 0.0
        mean_lat = sum(self.lat[r.example_id] for r in live) / len(live) if live else 0.0
        for r in u.records:
            if r.cache_hit:
                self.usd[r.example_id], self.lat[r.example_id] = mean_usd, mean_lat

    def _usd(self, r: Record, mi: ModelInfo, rate: float | None, local_priced: bool) -> float:
        if local_priced:
            return (r.latency_ms / 1000 / self.conc) / 3600 * rate if rate is not None else 0.0
        if r.cost_usd > 0:
            return r.cost_usd
        return (r.input_tokens * mi.price_in + r.output_tokens * mi.price_out) / 1e6


def numeric_task(units: list[Unit]) -> bool:
    """Every gold answer of the task is a number (GSM8K-like): a local answer without a number fails the check."""
    golds = [r.ground_truth.strip() for u in units for r in u.records]
    return bool(golds) and all(_NUMBER.fullmatch(g.replace("$", "").strip()) for g in golds)


def agreement(u: Unit) -> dict[str, float]:
    """Per example: the share of its attempts that give its most common answer (1.0 with a single attempt)."""
    out = {}
    for e, attempts in u.by_attempts.items():
        answers = [" ".join((a.prediction or "").split()).lower() for a in attempts]
        out[e] = max(answers.count(x) for x in set(answers)) / len(answers)
    return out


def fires(r: Record, signal: str, numeric: bool, agree: dict[str, float] | None = None) -> bool:
    if signal.startswith("agree<"):
        return (agree or {}).get(r.example_id, 1.0) < float(signal[len("agree<"):])
    if signal == "error":
        return bool(r.error)
    if signal == "parse":
        return bool(r.parse_failure)
    if signal == "check":
        pred = (r.prediction or "").strip()
        return not pred or (numeric and not _NUMBER.search(pred))
    raise ValueError(f"unknown routing signal {signal!r}")


def _ladder(lo: Unit) -> list[tuple[str, ...]]:
    """The escalation rules for this local arm: the fixed ladder, then agreement thresholds where it has repeats."""
    rules = list(LADDER)
    if lo.repeats > 1:
        levels = sorted({round(j / lo.repeats, 4) for j in range(2, lo.repeats + 1)})  # agreement values above 1/k
        rules += [LADDER[-1] + (f"agree<{t:g}",) for t in levels]
    return rules


def _evaluate(ids: list[str], lo: Unit, api: Unit, lc: _Costs, ac: _Costs, metric: Metric, numeric: bool,
              n_boot: int, seed: int, margin: float) -> list[PolicyResult]:
    api_scores = [record_score(api.by_id[e]) for e in ids]
    api_lat = sum(ac.lat[e] for e in ids) / len(ids)
    agree = agreement(lo)
    rules: list[tuple[str, tuple[str, ...]]] = [("always_api", ()), ("always_local", ())]
    rules += [("cascade", s) for s in _ladder(lo)]
    out = []
    for policy, signals in rules:
        if policy == "always_api":
            escalate = {e: True for e in ids}
        elif policy == "always_local":
            escalate = {e: False for e in ids}
        else:
            escalate = {e: any(fires(lo.by_id[e], s, numeric, agree) for s in signals) for e in ids}
        scores = [record_score(api.by_id[e] if escalate[e] else lo.by_id[e]) for e in ids]
        usd = [(ac.usd[e] if escalate[e] else 0.0) + (0.0 if policy == "always_api" else lc.usd[e]) for e in ids]
        lat = [(ac.lat[e] if escalate[e] else 0.0) + (0.0 if policy == "always_api" else lc.lat[e]) for e in ids]
        iv = score_interval(scores, metric, n_boot=n_boot, seed=seed)
        d = paired_delta(api_scores, scores, metric, n_boot=n_boot, seed=seed, words=("API-only right",
                                                                                       "policy-only right"))
        mean_lat = sum(lat) / len(ids)
        res = PolicyResult(policy, signals, len(ids), sum(1 for e in ids if not escalate[e]) / len(ids), iv.value,
                           iv.lo, iv.hi, d.delta, d.lo, d.hi, d.p, 1000 * sum(usd) / len(ids), mean_lat,
                           mean_lat - api_lat)
        if policy == "always_api":
            res.delta, res.d_lo, res.d_hi, res.p = 0.0, 0.0, 0.0, 1.0
        res.non_inferior = policy == "always_api" or (not math.isnan(res.d_lo) and res.d_lo > -margin)
        out.append(res)
    mark_frontier(out)
    return out


def mark_frontier(results: list[PolicyResult]) -> None:
    """On the cost–quality frontier: no other policy is cheaper-or-equal and better, or cheaper and as good."""
    for r in results:
        r.frontier = not any(o is not r and ((o.usd_per_1k <= r.usd_per_1k and o.quality > r.quality)
                                             or (o.usd_per_1k < r.usd_per_1k and o.quality >= r.quality))
                             for o in results)


def _recommend(results: list[PolicyResult]) -> str | None:
    ok = [r for r in results if r.non_inferior]
    return min(ok, key=lambda r: (r.usd_per_1k, -r.quality, r.share_local)).name if ok else None


def routing(inputs: Inputs, local_rate: float | None, n_boot: int, seed: int,
            margin: float = MARGIN) -> list[RoutingPair]:
    """Every (local arm, API arm) pair per task: each local model's baseline and optimized arms against each API
    model's optimized arm (its baseline where it has none)."""
    out: list[RoutingPair] = []
    for t in inputs.tasks:
        ti: TaskInfo = inputs.tinfo[t]
        task_units = [u for k, u in inputs.unit.items() if k[2] == t]
        numeric = numeric_task(task_units)
        api_units = []
        for m in inputs.models:
            if inputs.minfo[m].kind == "api":
                u = inputs.unit.get(("optimized", m, t)) or inputs.unit.get(("baseline", m, t))
                if u is not None:
                    api_units.append(u)
        local_units = [inputs.unit[(a, m, t)] for m in inputs.models if inputs.minfo[m].kind == "local"
                       for a in ("baseline", "optimized") if (a, m, t) in inputs.unit]
        for api in api_units:
            ac = _Costs(api, inputs.minfo[api.model], local_rate)
            for lo in local_units:
                metric = Metric(ti.binary, ti.aggregate, ti.mean_aggregate)
                if lo.repeats > 1 or api.repeats > 1:  # per-example means: a mean metric, as in the arm statistics
                    metric = Metric(False, lambda sc: sum(s.score for s in sc) / len(sc), True)
                shared = [e for e in lo.ids if e in api.by_id]
                sel, test = selection_split(shared, SELECTION_SEED)
                pair = RoutingPair(t, (lo.arm, lo.model, t), (api.arm, api.model, t), len(shared), len(sel),
                                   len(test), margin, local_rate, lo.repeats)
                if len(sel) < 2 or len(test) < 2:
                    out.append(pair)
                    continue
                lc = _Costs(lo, inputs.minfo[lo.model], local_rate)
                pair.selection = _evaluate(sel, lo, api, lc, ac, metric, numeric, n_boot, seed, margin)
                pair.recommended = _recommend(pair.selection)
                pair.policies = _evaluate(test, lo, api, lc, ac, metric, numeric, n_boot, seed + 1, margin)
                out.append(pair)
    return out
