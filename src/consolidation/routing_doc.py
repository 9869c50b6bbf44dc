"""The routing analysis as the report shows it: routing.csv's rows, the SUMMARY.md section and the plot's data."""

from __future__ import annotations

from typing import Any

from src.consolidation.analysis import Analysis
from src.consolidation.format import ci_txt, is_missing, money, num, pct, pts, pval
from src.consolidation.routing import PolicyResult, RoutingPair
from src.report import Cell, Plot, Section, Table

ROUTING_COLUMNS = ["task", "local_model", "local_phase", "api_model", "api_phase", "policy", "signals", "n_shared",
                   "n_selection", "n_test", "share_local", "quality", "quality_ci_low", "quality_ci_high",
                   "delta_vs_api", "delta_ci_low", "delta_ci_high", "p", "usd_per_1k", "savings_usd_per_1k",
                   "latency_ms", "added_latency_ms", "non_inferior", "frontier", "recommended", "margin",
                   "local_usd_per_hour"]


def routing_rows(an: Analysis) -> list[list[Any]]:
    """routing.csv: one row per pair x policy, measured on the pair's test half."""
    rows = []
    for pair in an.routing:
        api = pair.api_result
        for r in pair.policies:
            rows.append([pair.task, pair.local[1], pair.local[0], pair.api[1], pair.api[0], r.name,
                         "+".join(r.signals), pair.n_shared, pair.n_selection, pair.n_test, r.share_local, r.quality,
                         r.q_lo, r.q_hi, r.delta, r.d_lo, r.d_hi, r.p, r.usd_per_1k,
                         api.usd_per_1k - r.usd_per_1k if api else None, r.latency_ms, r.added_latency_ms,
                         int(r.non_inferior), int(r.frontier), int(r.name == pair.recommended), pair.margin,
                         pair.local_rate])
    return rows


def _statement(pair: RoutingPair) -> str:
    lo, api = f"{pair.local[1]} ({pair.local[0]})", f"{pair.api[1]} ({pair.api[0]})"
    head = f"- **{pair.task}**, {lo} → {api}, n={pair.n_shared} shared ({pair.n_selection} to choose, " \
           f"{pair.n_test} to test): "
    if not pair.policies:
        return head + "too few shared examples to choose on one half and test on the other."
    c, a = pair.chosen, pair.api_result
    if c is None or a is None:
        return head + (f"no policy was within {100 * pair.margin:g} point(s) of always-API on the selection half: "
                       f"keep always-API.")
    held = "still within the margin" if c.non_inferior else "**not** within the margin on the test half"
    saving = a.usd_per_1k - c.usd_per_1k
    pct_saved = f" ({100 * saving / a.usd_per_1k:.0f}%)" if a.usd_per_1k > 0 else ""
    return head + (f"recommended **{c.name}** — on the test half {pct(c.quality)} vs always-API {pct(a.quality)} "
                   f"({pts(c.delta)} pts {ci_txt(c.d_lo, c.d_hi, True)}, {held}), {100 * c.share_local:.0f}% of "
                   f"requests kept local, {money(c.usd_per_1k)} vs {money(a.usd_per_1k)} per 1,000 requests: saves "
                   f"{money(saving)}{pct_saved} per 1,000, {num(c.added_latency_ms, '+.0f')} ms mean latency.")


def _cell(r: PolicyResult, pair: RoutingPair) -> list[Any]:
    cls = "pos" if r.name == pair.recommended else ("ns" if r.non_inferior else "neg")
    return [r.name + (" ★" if r.name == pair.recommended else "") + (" ◆" if r.frontier else ""),
            f"{100 * r.share_local:.0f}%", f"{pct(r.quality)} {ci_txt(r.q_lo, r.q_hi)}",
            Cell(f"{pts(r.delta)} {ci_txt(r.d_lo, r.d_hi, True)}" if r.policy != "always_api" else "–", cls),
            pval(r.p) if r.policy != "always_api" else "–", money(r.usd_per_1k),
            num(r.added_latency_ms, "+.0f"), "yes" if r.non_inferior else "no"]


def sec_routing(an: Analysis) -> Section:
    s = Section("Routing and cascades")
    rate = an.options.local_cost_per_hour
    margin = an.options.routing_margin
    s.blocks.append(
        "What routing policies would have done had they been deployed, computed from the recorded answers of a "
        "local arm and an API arm on the same examples (no new LM calls). Policies: always API, always local, and "
        "cascades that answer locally and escalate to the API when a signal fires on the local answer — `error` "
        "(backend failure), `parse` (unreadable answer), `check` (empty answer, or no number where every gold "
        "answer is one); the cascades are the escalation ladder from the narrowest rule to the widest. **Held-out "
        f"check:** the shared examples are split by a seeded permutation of their ids; the recommended policy — "
        f"the cheapest whose quality is within {100 * margin:g} point(s) of always-API (paired 95% CI of policy − "
        "API above the margin) — is chosen on one half, and every number below is measured on the other half. "
        "Cost per request: API tokens at registry prices (or the recorded cost); local compute at "
        + (f"${rate:g}/h of measured latency ÷ concurrency" if rate is not None else
           "$0 (no --local-cost-per-hour given, so local answers look free)")
        + "; a cascade pays the local attempt on every request. Correction family: none — each p is uncorrected.")
    s.blocks.append(
        "What this can and cannot tell: it replays answers already recorded, so it says what these policies would "
        "have scored on these examples; it assumes a deployed local model answers as it did here and that the "
        "signals are available at request time (they are: all come from the local answer alone). It cannot "
        "price what a router does not see — queueing, rate limits, a cold local server — nor promise the same "
        "mix of requests in production; with a small test half the intervals are wide and 'within the margin' "
        "usually means 'not shown to be worse', not 'shown equivalent' (a policy that matches the API on every "
        "test example gets the degenerate interval [0, 0] whatever n is). "
        + ("Agreement among repeats (`agree<τ`) is swept where a local arm was run with --repeats; at temperature 0 "
           "its attempts agree unless the server is nondeterministic." if any(p.local_repeats > 1 for p in an.routing)
           else "No agreement-among-repeats signal: these local arms record one attempt per example (run them with "
                "--repeats k to add it)."))
    if not an.routing:
        s.blocks.append("No task has both a local arm and an API arm on shared examples: nothing to route.")
        return s
    s.blocks.append("\n".join(_statement(p) for p in an.routing))
    for pair in an.routing:
        if not pair.policies:
            continue
        s.blocks.append(Table(["policy", "kept local", "quality [95% CI]", "− always-API [95% CI]", "p",
                               "$ / 1k requests", "added latency ms", f"within {100 * margin:g} pt"],
                              [_cell(r, pair) for r in pair.policies],
                              caption=f"{pair.task}: {pair.local[1]} ({pair.local[0]}) → {pair.api[1]} "
                                      f"({pair.api[0]}), test half n={pair.n_test}. ★ recommended (chosen on the "
                                      f"selection half), ◆ on the cost–quality frontier.", left=(0,)))
    s.blocks.append(Plot("routing", "Routing policies per task on the test half: quality vs $ per 1,000 requests; "
                                    "the line is the cost–quality frontier, the star the recommended policy."))
    return s


def routing_plot_data(an: Analysis) -> dict[str, Any] | None:
    points = [{"task": p.task, "pair": f"{p.local[1]} ({p.local[0]}) → {p.api[1]}", "policy": r.name,
               "usd_per_1k": r.usd_per_1k, "quality": r.quality, "frontier": r.frontier,
               "recommended": r.name == p.recommended}
              for p in an.routing for r in p.policies if not is_missing(r.usd_per_1k)]
    return {"tasks": [t for t in an.tasks if any(x["task"] == t for x in points)], "points": points} if points \
        else None
