"""python -m src.run_baseline_v2: the baseline stage, every selected model on every selected task with the unoptimized program -> per-model CSVs."""

from __future__ import annotations

import math
from pathlib import Path

from src.backends.session import Sessions, SessionOptions
from src.commands import budget, common
from src.errors import UserError
from src.evaluation.matrix import MatrixRequest, evaluate_matrix, print_table
from src.evaluation.unit import UnitSummary
from src.registry import load_config
from src.registry.protocol import DEFAULT_EVAL_LIMIT
from src.results.files import write_json
from src.results.record import now_iso
from src.tasks import resolve_task_keys

MODES = ("api", "local", "embedded")


def select_models(mode: str | None, models: str | None, sessions: Sessions) -> list[str]:
    """--models wins; else every registered model of --mode (embedded: only those installed, naming the rest)."""
    config = sessions.config
    if models:
        keys = common.split_list(models)
        for k in keys:
            sessions.spec(k)
        return keys
    if not mode:
        raise UserError("give --mode api|local|embedded or --models a,b")
    if mode == "api":
        return [k for k, s in config.models.items() if s.kind == "api"]
    if mode == "local":
        return [k for k, s in config.models.items() if s.kind == "local" and s.provider != "embedded"]
    keys = []
    for k, s in config.models.items():
        if s.provider != "embedded":
            continue
        if sessions.backend(k).problems():
            print(f"note: skipping embedded model {k} (not installed: ./setup_models.sh)")
        else:
            keys.append(k)
    if not keys:
        raise UserError("no embedded model is installed: run ./setup_models.sh --embedded")
    return keys


def write_experiment_summary(summaries: list[UnitSummary], out_dir: Path) -> None:
    """experiments/baseline_v2/raw_scores.json and summary_table.md for the run just made (as the study did)."""
    ok = [s for s in summaries if s.status != "failed"]
    if not ok:
        return
    raw = {}
    for s in ok:
        model, task = s.extra["model"], s.extra["task"]
        raw.setdefault(model, {})[task] = {"score": None if math.isnan(s.score) else round(s.score, 4), "n": s.n,
                                           "parse_failures": s.parse_failures, "errors": s.errors,
                                           "csv": str(s.csv)}
    write_json(out_dir / "raw_scores.json", {"created": now_iso(), "scores": raw})
    tasks = sorted({t for m in raw.values() for t in m})
    lines = ["# Baseline v2 summary", "", f"Generated {now_iso()} from the run's per-model CSVs.", "",
             "| model | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for model, row in raw.items():
        cells = [f"{row[t]['score']:.3f} (n={row[t]['n']})" if t in row and row[t]["score"] is not None else "-"
                 for t in tasks]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    (out_dir / "summary_table.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> int:
    p = common.parser(__doc__, limit_default=DEFAULT_EVAL_LIMIT)
    p.add_argument("--mode", choices=MODES, default=None, help="which registered models: api, local (Ollama) or "
                   "embedded (installed in-process models)")
    common.add_repeats(p)
    common.add_mlflow(p)
    args = p.parse_args()
    config = load_config()
    sessions = Sessions(config, SessionOptions(adapter=args.adapter, concurrency=args.concurrency or None,
                                               cache=not args.no_cache, **budget.session_options(args)))
    models = select_models(args.mode, args.models, sessions)
    req = MatrixRequest(
        arm="baseline", model_keys=models, task_keys=resolve_task_keys(args.tasks, config),
        data_mode=args.data, results_dir=common.results_dir(args, config),
        limit=args.limit or None, concurrency=args.concurrency or None, adapter=args.adapter, force=args.force,
        dry_run=args.dry_run, cache=not args.no_cache, repeats=args.repeats,
    )

    def baseline_program(task, spec):
        return task.program(), {"kind": "baseline", "module": "ChainOfThought" if task.chain_of_thought else "Predict"}

    summaries = evaluate_matrix(req, config, baseline_program, sessions,
                                check_spend=budget.matrix_check(args, req.results_dir),
                                on_unit=None if args.dry_run else common.unit_logger(args, req.results_dir))
    if args.dry_run:
        return 0
    print_table(summaries)
    write_experiment_summary(summaries, config.workdir / "experiments" / "baseline_v2")
    return 1 if any(s.status == "failed" for s in summaries) else 0
