"""Tipping-point analysis: per (model, task), the score at each n (seed-averaged, paired against the baseline) and
the regime; writes results/tipping_point/curve.csv and summary.csv (which the consolidator's report shows).

Multiplicity: a pair is tested at every n > 0, so its p-values are Holm-corrected within the pair (the family is the
pair's n values; column `correction` says so); a verdict, the smallest significant n and the regime all use the
corrected p. Selection: the best n is chosen on a seeded half of the eval examples (stats.selection) and its
score, lift, CI and p are measured on the other half only (columns best_n_selected_on / best_tested_on).

Repeats: cells evaluated with --repeats k hold k attempts per example; an example's score is then the mean over its
attempts (and over seeds), every interval a bootstrap over examples carrying all their attempts (a cluster
bootstrap) and every test a permutation test of per-example means (src.studies.attempts, consolidation's rule).
Each point reports its run-to-run spread (repeats, run_sd pooled over the point's seeds, agreement)."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path

from src.errors import UserError
from src.registry import Config
from src.registry.protocol import ALREADY_SOLVED_ABOVE, TOO_HARD_BELOW
from src.results.files import atomic_write_text, csv_float
from src.results.naming import tipping_arm, tipping_dir
from src.results.schema import TippingCheckpoint
from src.stats.comparison import Metric, paired_delta, score_interval
from src.stats.selection import choose_best, holm_within, selection_split
from src.studies.attempts import SPREAD_COLUMNS, Point, load_point, point_metric, spread_cells
from src.studies.tipping_point.regimes import classify_regime
from src.tasks import get_task
from src.tasks.example import Score

CURVE_COLUMNS = ["model", "task", "n", "seeds", "score", "ci_low", "ci_high", "delta", "delta_ci_low",
                 "delta_ci_high", "p", "verdict", "n_examples", "optimization_calls", "p_holm", "correction",
                *SPREAD_COLUMNS]
SUMMARY_COLUMNS = ["model", "task", "regime", "baseline", "baseline_ci_low", "baseline_ci_high", "best_n",
                   "best_score", "smallest_significant_n", "lift_at_best", "lift_ci_low", "lift_ci_high",
                   "p_at_best", "n_values", "seeds", "n_examples", "too_hard_below", "already_solved_above",
                   "correction", "best_n_selected_on", "best_tested_on", "repeats"]


def _seed_mean(per_seed: list[dict[str, Score]], ids: list[str]) -> list[Score]:
    """Each example's score (and counts) averaged over seeds: the seeds are repeated measurements of one example,
    so the paired test runs over examples, never over example x seed."""
    out = []
    for i in ids:
        scores = [s[i] for s in per_seed]
        extras: dict[str, float] = defaultdict(float)
        for s in scores:
            for k, v in s.extras.items():
                if isinstance(v, (int, float)):
                    extras[k] += v / len(scores)
        value = sum(s.score for s in scores) / len(scores)
        out.append(Score(value, value >= 0.5, "", dict(extras)))
    return out


def analyze(results_dir: Path, config: Config) -> Path:
    """Read every checkpoint under results/tipping_point and write curve.csv + summary.csv."""
    root = tipping_dir(results_dir)
    cells: dict[tuple[str, str], list[TippingCheckpoint]] = defaultdict(list)
    for path in sorted((root / "checkpoints").glob("*.json")):
        ck = TippingCheckpoint.read(path)
        if "model" not in ck.header or "task" not in ck.header:
            raise UserError(f"{path}: not a tipping-point checkpoint")
        cells[(ck.header["model"], ck.header["task"])].append(ck)
    if not cells:
        raise UserError(f"no tipping-point checkpoints under {root}: run python -m src.tipping_point.runner first")
    curve_rows, summary_rows = [], []
    for (model, task_key), cks in sorted(cells.items()):
        task = get_task(task_key, config)
        by_n: dict[int, list[dict[str, Score]]] = defaultdict(list)
        cells_at: dict[int, list[Point]] = defaultdict(list)
        calls: dict[int, int] = defaultdict(int)
        for ck in cks:
            point = load_point(Path(ck.csv), tipping_arm(ck.n, ck.seed), model, task)
            by_n[ck.n].append(point.scores)
            cells_at[ck.n].append(point)
            calls[ck.n] += int(ck.compile_cost.get("lm_calls") or 0)
        # The task's metric; with repeats in any cell, the per-example-mean rule for the whole pair.
        metric = point_metric(task, *(p for ps in cells_at.values() for p in ps))
        # Seed-averaged per-example scores are no longer 0/1: test them as continuous values.
        averaged = Metric(False, metric.aggregate, metric.mean_aggregate)
        if 0 not in by_n:
            continue  # no baseline yet (run interrupted before n = 0)
        base = by_n[0][0]
        ids = [i for i in base if all(i in s for runs in by_n.values() for s in runs)]
        base_scores = [base[i] for i in ids]
        biv = score_interval(base_scores, metric)
        deltas, averages, metrics, rows = {}, {}, {}, []
        for n in sorted(by_n):
            runs = by_n[n]
            avg = _seed_mean(runs, ids)
            m_n = metric if len(runs) == 1 else averaged
            averages[n], metrics[n] = dict(zip(ids, avg)), m_n
            iv = score_interval(avg, m_n)
            if n:
                deltas[n] = paired_delta(base_scores, avg, m_n)
            rows.append((n, len(runs), iv))
        reps = {n: max(p.repeats for p in ps) for n, ps in cells_at.items()}
        family = f"Holm over this pair's {len(deltas)} n value(s)" if deltas else ""
        corrected = holm_within({n: (d.delta, d.lo, d.hi, d.p) for n, d in deltas.items()})
        for n, seeds, iv in rows:
            d, c = deltas.get(n), corrected.get(n)
            d_cells = [d.delta, d.lo, d.hi, d.p] if d else [None] * 4
            curve_rows.append([model, task_key, n, seeds, *map(csv_float, [iv.value, iv.lo, iv.hi, *d_cells]),
                               c.verdict if c else "", len(ids), calls[n], csv_float(c.p_adjusted if c else None),
                               family if c else "", *spread_cells([p.stability for p in cells_at[n]], reps[n])])
        regime, smallest = classify_regime(biv.value, {n: c.verdict for n, c in corrected.items()})
        # Best n: chosen on one half of the examples, reported on the other (no winner's curse).
        select_ids, test_ids = selection_split(ids)
        best_n = choose_best({n: averages[n] for n in deltas}, select_ids, task.aggregate)
        best = None
        if best_n is not None and test_ids:
            best = paired_delta([base[i] for i in test_ids], [averages[best_n][i] for i in test_ids],
                                metrics[best_n])
        best_cells = [best.b_score, best.delta, best.lo, best.hi, best.p] if best else [None] * 5
        b_score, lift, lift_lo, lift_hi, p_best = map(csv_float, best_cells)
        selected_on = f"eval half A ({len(select_ids)} examples)" if best_n is not None else ""
        tested_on = f"eval half B ({len(test_ids)} examples)" if best is not None else ""
        summary_rows.append([model, task_key, regime, *map(csv_float, [biv.value, biv.lo, biv.hi]),
                             "" if best_n is None else best_n, b_score, "" if smallest is None else smallest,
                             lift, lift_lo, lift_hi, p_best, json.dumps(sorted(by_n)),
                             max(len(v) for k, v in by_n.items() if k) if len(by_n) > 1 else 0, len(ids),
                             TOO_HARD_BELOW, ALREADY_SOLVED_ABOVE, family, selected_on, tested_on,
                             max(reps.values())])
    _write(root / "curve.csv", CURVE_COLUMNS, curve_rows)
    _write(root / "summary.csv", SUMMARY_COLUMNS, summary_rows)
    for r in summary_rows:
        print(f"  {r[0]} x {r[1]}: {r[2]} (baseline {float(r[3]):.3f}; best n {r[6] or '-'}; "
              f"smallest significant n {r[8] if r[8] != '' else '-'})")
    print(f"wrote {root / 'summary.csv'} and {root / 'curve.csv'}")
    return root / "summary.csv"


def _write(path: Path, columns: list[str], rows: list[list]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(columns)
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())
