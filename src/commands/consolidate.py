"""Consolidate per-(model, task) result CSVs into honest statistics, cost accounting and a visual report.

Reads the top level of --results-dir (baseline, optimized and any other phase's CSVs with their .meta.json
sidecars), results/optimized_programs/*.meta.json, and the optional phase-3 demo curves and phase-5 tipping-point
tables. Writes --out (default <results-dir>/golden): summary_scores.csv, summary_counts.csv, optimized_scores.csv,
delta_scores.csv, details/{model}_{task}.csv, long-form CSVs (arms, deltas, economics, break_even, scoreboard),
SUMMARY.md and report.html. Everything is built in a temporary folder beside --out and swapped in at the end: an
error leaves the previous golden files untouched.

Statistics: Wilson intervals (binary tasks) or percentile bootstrap (continuous; the task's own corpus aggregate is
recomputed on each resample); deltas paired on shared example ids with a paired bootstrap CI and an exact McNemar
(binary) or paired permutation (continuous) p-value; Holm correction across the delta matrix.
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from src.commands import common
from src.results.files import writable_dir
from src.consolidation.consolidator import MARKER, Consolidation, Consolidator, Options
from src.consolidation.inputs import TaskResolver
from src.errors import UserError
from src.report import SMOKE_BANNER
from src.results.ledger import ledger_append
from src.tasks import get_task

if TYPE_CHECKING:
    from src.registry import Config


# ---- output folder swap ------------------------------------------------------------------------------------------

def _check_out(out: Path, results_dir: Path) -> None:
    o, r = out.resolve(), results_dir.resolve()
    if o == r or r.is_relative_to(o):
        raise UserError(f"--out {out}: must not be the results folder or contain it (it is replaced as a whole)")
    if out.exists():
        if not out.is_dir():
            raise UserError(f"--out {out}: exists and is not a folder")
        if any(out.iterdir()) and not (out / MARKER).is_file():
            raise UserError(f"--out {out}: exists and was not made by this tool (no {MARKER} marker); refusing to "
                            f"replace it — choose another --out or empty it")


def _swap_in(tmp: Path, out: Path) -> None:
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


def consolidate(opts: Options, config: Config | None = None, resolver: TaskResolver | None = None,
                log: Any = None) -> Consolidation:
    """Read, check, analyse, and write the golden folder (built aside and swapped in only when complete)."""
    log = log or sys.stderr
    csv.field_size_limit(2**31 - 1)  # long predictions (code, summaries) must not look corrupt
    _check_out(opts.out, opts.results_dir)
    if resolver is None and config is not None:
        resolver = lambda key: get_task(key, config)  # noqa: E731 - the registry's tasks, for their metrics
    c = Consolidator(opts, config, resolver)
    c.load()
    warnings = c.comparability()
    if warnings and opts.strict:
        raise UserError("comparability check failed (--strict; nothing written): " + " | ".join(warnings))
    if warnings:
        print("WARNING — results that are not comparable will be compared (see the top of SUMMARY.md):", file=log)
        for w in warnings:
            print(f"  - {w}", file=log)
    c.analyse()
    doc = c.build_doc(warnings)
    if any(u.smoke for u in c.units):
        print(f"note: {SMOKE_BANNER}", file=log)
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = opts.out.parent / f".{opts.out.name}.building-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        c.write(tmp, doc)
        _swap_in(tmp, opts.out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return Consolidation(opts.out, warnings, c.notes, doc.smoke, c.arms, c.deltas)


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
    args = p.parse_args(argv)
    from src.registry import load_config

    config = load_config()
    results_dir = Path(args.results_dir) if args.results_dir else config.results_dir
    if not results_dir.is_dir():
        raise UserError(f"--results-dir {results_dir}: " + ("is a file, not a folder" if results_dir.exists() else
                                                            "no such folder (run the stages first)"))
    out = Path(args.out) if args.out else results_dir / "golden"
    writable_dir(out.parent, "--out's folder")
    res = consolidate(Options(results_dir, out, args.strict, args.local_cost_per_hour, args.bootstrap, args.seed),
                      config)
    print(f"wrote {out / 'SUMMARY.md'} and {out / 'report.html'} ({len(res.arms)} arms, {len(res.deltas)} deltas"
          + (f", {len(res.warnings)} comparability warning(s)" if res.warnings else "") + ")")
    ledger_append("golden summaries + report", "ran")
    return 0
