"""Consolidate per-(model, task) result CSVs into honest statistics, cost accounting and a visual report.

Reads the top level of --results-dir (baseline, optimized and any other phase's CSVs with their .meta.json
sidecars), results/optimized_programs/*.meta.json, and the optional phase-3 demo curves and phase-5 tipping-point
tables. Writes --out (default <results-dir>/golden): summary_scores.csv, summary_counts.csv, optimized_scores.csv,
delta_scores.csv, delta_mde.csv, details/{model}_{task}.csv, long-form CSVs (arms, deltas, economics, break_even,
scoreboard, routing),
SUMMARY.md and report.html. Everything is built in a temporary folder beside --out and swapped in at the end: an
error leaves the previous golden files untouched.

Statistics: Wilson intervals (binary tasks) or percentile bootstrap (continuous; the task's own corpus aggregate is
recomputed on each resample); deltas paired on shared example ids with a paired bootstrap CI and an exact McNemar
(binary) or paired permutation (continuous) p-value; Holm correction across the delta matrix.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from src.commands import common
from src.consolidation import golden
from src.consolidation.analysis import Options
from src.consolidation.golden import Consolidation
from src.consolidation.inputs import TaskResolver
from src.errors import UserError
from src.results.files import writable_dir
from src.results.ledger import ledger_append
from src.tasks import get_task

if TYPE_CHECKING:
    from src.registry import Config

__all__ = ["Consolidation", "Options", "consolidate", "main"]


def consolidate(opts: Options, config: Config | None = None, resolver: TaskResolver | None = None,
                log: TextIO | None = None) -> Consolidation:
    """src.consolidation.golden.consolidate with the registry's tasks (for their metrics) unless told otherwise."""
    if resolver is None and config is not None:
        resolver = lambda key: get_task(key, config)  # noqa: E731 - the registry's tasks, for their metrics
    return golden.consolidate(opts, config, resolver, log)


# ---- CLI -----------------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    import argparse

    p = common.Parser(prog="python -m src.consolidate_results", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results-dir", default=None, help="folder of result CSVs (default: ./results)")
    p.add_argument("--out", default=None, help="output folder (default: <results-dir>/golden); replaced as a whole")
    p.add_argument("--strict", action="store_true", help="refuse (exit non-zero, write nothing) when results from "
                   "different DSPy versions, datasets or eval example sets would be compared")
    p.add_argument("--local-cost-per-hour", type=common.real_number(), default=None, metavar="USD",
                   help="price local compute at this many $ per hour of wall time (default: not priced)")
    p.add_argument("--bootstrap", type=common.whole_number(100), default=2000, metavar="N",
                   help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of every resampling procedure (default 0)")
    p.add_argument("--routing-margin", type=common.real_number(), default=1.0, metavar="POINTS",
                   help="routing: a policy may be this many points below always-API (its paired 95%% CI's lower "
                        "bound) and still be recommended (default 1)")
    args = p.parse_args(argv)
    from src.registry import load_config

    config = load_config()
    results_dir = Path(args.results_dir) if args.results_dir else config.results_dir
    if not results_dir.is_dir():
        raise UserError(f"--results-dir {results_dir}: " + ("is a file, not a folder" if results_dir.exists() else
                                                            "no such folder (run the stages first)"))
    out = Path(args.out) if args.out else results_dir / "golden"
    writable_dir(out.parent, "--out's folder")
    res = consolidate(Options(results_dir, out, args.strict, args.local_cost_per_hour, args.bootstrap, args.seed,
                              args.routing_margin / 100), config)
    print(f"wrote {out / 'SUMMARY.md'} and {out / 'report.html'} ({len(res.arms)} arms, {len(res.deltas)} deltas"
          + (f", {len(res.warnings)} comparability warning(s)" if res.warnings else "") + ")")
    ledger_append("golden summaries + report", "ran")
    return 0
