"""python -m src.rehearse: the full study's own configuration — its students, teacher and reasoning models under
their real registry keys — run end to end against local stand-ins (src.rehearsal), every stage as its own command."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from src import PROJECT_ROOT
from src.commands import common
from src.errors import UserError
from src.registry import load_config
from src.registry.models import DEFAULT_EMBEDDED_MODEL
from src.results import naming

STEPS = ("study", "reasoning", "demo_curves", "tipping_point", "consolidate")
DEFAULT_RESULTS = "results/rehearsal"  # never ./results: a rehearsal's numbers must not mix with a real study's


@dataclass
class Step:
    name: str
    argv: list[str]
    rc: int | None = None
    seconds: float = 0.0


def _derived_study(src: Path, out: Path, overrides: dict[str, object], per_key: int) -> Path:
    """The study file as given, with the rehearsal's size overrides (tasks, limit, preset, seeds), kept beside the
    results so the run can be repeated exactly. Every model gets `per_key` requests in flight: the study's budgets
    are sized for separate services, and here one stand-in on a few cores answers for all of them (an unbounded
    queue there would turn into request timeouts, not into a faster rehearsal)."""
    import yaml

    raw = yaml.safe_load(src.read_text(encoding="utf-8")) or {}
    raw.update({k: v for k, v in overrides.items() if v is not None})
    keys = [*(raw.get("students") or []), *(raw.get("references") or [])]
    budgets = {k: per_key for k in keys}
    if raw.get("teacher"):  # the teacher serves every student's optimization: it would be the queue everyone waits on
        budgets[raw["teacher"]] = 2 * per_key
    raw["endpoint_concurrency"] = {**budgets, **(raw.get("endpoint_concurrency") or {})}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# {src} for a rehearsal (python -m src.rehearse), sizes overridden\n"
                   + yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return out


def _passthrough(args: argparse.Namespace, *, limit: bool = True) -> list[str]:
    out = ["--results-dir", str(args.results_dir)]
    for flag, value in (("--data", args.data if args.data != "auto" else None),
                        ("--concurrency", args.concurrency), ("--adapter", args.adapter),
                        ("--max-cost", args.max_cost)):
        if value is not None:
            out += [flag, str(value)]
    if limit and args.limit is not None:
        out += ["--limit", str(args.limit)]
    if args.repeats > 1:  # every evaluating step repeats, so stability and the repeats' agreement reach routing
        out += ["--repeats", str(args.repeats)]
    if args.mlflow is not None:  # every step logs; without a URI each defaults to the same store (its --results-dir)
        out += ["--mlflow"] + ([args.mlflow] if args.mlflow else [])
    for flag in ("force", "no_cache", "verbose"):
        if getattr(args, flag, False):
            out.append("--" + flag.replace("_", "-"))
    return out


def _steps(args: argparse.Namespace, config) -> list[Step]:
    results = Path(args.results_dir)
    derived = results / "rehearsal"
    size = {"tasks": args.tasks if args.tasks != "all" else None, "limit": args.limit,
            "preset": args.optimizer_preset, "seeds": common.distinct_ints(args.seeds, "--seeds") if args.seeds else None}
    py = [sys.executable, "-m"]
    steps: list[Step] = []
    wanted = common.split_list(args.steps)
    if "study" in wanted:
        study = _derived_study(Path(args.study), derived / Path(args.study).name, size, args.per_key)
        steps.append(Step("study", py + ["src.experiment", "--config", str(study), "--phases", args.study_phases]
                          + _passthrough(args, limit=False)))
    if "reasoning" in wanted:
        reasoning = _derived_study(Path(args.reasoning), derived / Path(args.reasoning).name,
                                   {"tasks": size["tasks"], "limit": args.limit}, args.per_key)
        steps.append(Step("reasoning", py + ["src.experiment", "--config", str(reasoning), "--phases", "baseline"]
                          + _passthrough(args, limit=False)))
    if "demo_curves" in wanted:  # without --models: the programs the study produced choose themselves
        steps.append(Step("demo_curves", py + ["src.demo_curve_eval", "--tasks", args.tasks]
                          + (["--max-demos", str(args.max_demos)] if args.max_demos is not None else [])
                          + _passthrough(args)))
    if "tipping_point" in wanted:
        steps.append(Step("tipping_point", py + ["src.tipping_point.runner", "--models", args.tipping_model,
                                                 "--tasks", args.tipping_task or _first_task(args, config),
                                                 "--n", args.tipping_n, "--seeds", args.tipping_seeds]
                          + _passthrough(args)))
    if "consolidate" in wanted:
        steps.append(Step("consolidate", py + ["src.consolidate_results", "--results-dir", str(results)]))
    return steps


def _first_task(args: argparse.Namespace, config) -> str:
    from src.tasks import resolve_task_keys

    return resolve_task_keys(args.tasks, config)[0]


def _run(step: Step, env: dict[str, str]) -> None:
    print(f"\n=== rehearsal: {step.name}: python -m {' '.join(step.argv[2:])}", flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(step.argv, cwd=PROJECT_ROOT, env={**os.environ, **env})
    try:
        step.rc = proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        step.rc = proc.wait()
        raise
    finally:
        step.seconds = time.monotonic() - start


def _keys_with_results(results: Path, config) -> set[str]:
    names = [naming.parse_result_name(p.name, tasks=config.tasks, models=config.models)
             for folder in (results, naming.demo_curves_dir(results) / "units", naming.tipping_dir(results) / "units")
             if folder.is_dir() for p in folder.glob("*.csv")]
    return {n.model for n in names if n is not None}


def _expected_keys(args: argparse.Namespace, config) -> set[str]:
    from src.commands.experiment import load_experiment  # the study command's own validation

    keys: set[str] = set()
    for name, path in (("study", args.study), ("reasoning", args.reasoning)):
        if name in common.split_list(args.steps):
            exp = load_experiment(Path(path), config)
            keys |= set(exp.students) | set(exp.references)
    return keys


def main() -> int:
    """Rehearse the full study on this machine: experiments/full.yaml's students and teacher and the reasoning
study's models, under their real keys, answered by an embedded stand-in through their own protocols (OpenAI: the
embedded llama.cpp server; Ollama and Anthropic: protocol fronts over it). Runs the study (baseline, optimize,
optimized eval), the reasoning baselines, demo curves without --models, the tipping point on a reasoning model and
the consolidation, each as the command users run, into results/rehearsal/ (never ./results). A rehearsal proves the
path: the numbers are a 135M stand-in's.

  python -m src.rehearse --tasks analysis,math --limit 4 --seeds 10 --optimizer-preset quick   # a few minutes
  python -m src.rehearse                                                  # the whole file (hours on 2 cores)
  python -m src.rehearse --serve          # only start the stand-ins and print the environment to reach them
"""
    p = common.parser(main.__doc__)
    p.add_argument("--study", default="experiments/full.yaml", help="the study file to rehearse")
    p.add_argument("--reasoning", default="experiments/reasoning.yaml", help="the reasoning study (baselines)")
    p.add_argument("--steps", default=",".join(STEPS), help=f"a comma-separated subset of {','.join(STEPS)}")
    p.add_argument("--stand-in", default=DEFAULT_EMBEDDED_MODEL, help="the embedded model that answers for all")
    p.add_argument("--study-phases", default="baseline,optimize,eval",
                   help="the study step's stages (default baseline,optimize,eval; consolidation is its own step)")
    p.add_argument("--optimizer-preset", default=None, help="override the study's optimizer preset (e.g. quick)")
    p.add_argument("--seeds", default=None, help="override the study's optimizer seeds (e.g. 10)")
    p.add_argument("--max-demos", type=common.whole_number(), default=None, help="demo curves: largest n")
    p.add_argument("--tipping-model", default="qwen3_4b", help="the tipping point's model (a reasoning model)")
    p.add_argument("--tipping-task", default=None, help="the tipping point's task (default: the first task)")
    p.add_argument("--tipping-n", default="0,1", help="the tipping point's demo counts (default 0,1)")
    p.add_argument("--tipping-seeds", default="10", help="the tipping point's seeds (default 10)")
    p.add_argument("--per-key", type=common.whole_number(1), default=2,
                   help="requests in flight per model key, twice that for the teacher (endpoint_concurrency of the "
                        "derived study files; default 2)")
    p.add_argument("--stand-in-cap", type=common.whole_number(16), default=None, metavar="TOKENS",
                   help="most tokens the stand-in writes per reply whatever a request allows (default 512)")
    common.add_repeats(p)
    common.add_mlflow(p)
    p.add_argument("--serve", action="store_true", help="start the stand-ins, print the environment, wait")
    args = p.parse_args()
    config = load_config()
    from src.rehearsal.stand_ins import StandIns

    args.results_dir = args.results_dir or str(PROJECT_ROOT / DEFAULT_RESULTS)
    bad = [s for s in common.split_list(args.steps) if s not in STEPS]
    if bad or not common.split_list(args.steps):
        raise UserError(f"--steps takes a comma-separated subset of {','.join(STEPS)}, not '{args.steps}'")
    for path in (args.study, args.reasoning):
        if not Path(path).is_file():
            raise UserError(f"study file not found: {path}")
    expected = _expected_keys(args, config)
    steps = _steps(args, config)
    sizing = {"cap": args.stand_in_cap} if args.stand_in_cap else {}
    with StandIns(config, args.stand_in, **sizing) as stand_ins:
        print(f"rehearsal: {stand_ins.describe()}")
        if stand_ins.pinned:
            print(f"not rehearsed (their models.json api_base points elsewhere): {', '.join(stand_ins.pinned)}")
        if args.serve:
            print("the stand-ins are up; in another shell:")
            for k, v in stand_ins.env.items():
                print(f"  export {k}='{v}'")
            print("Ctrl-C stops them.")
            try:
                signal.pause()
            except KeyboardInterrupt:
                return 0
        try:
            for step in steps:
                _run(step, stand_ins.env)
        except KeyboardInterrupt:
            print("\nrehearsal interrupted: rerun the same command to resume (every step resumes)")
            return 130
        overflows = list(stand_ins.ollama.overflows)
        traffic = {"ollama": sum(r["path"] == "/api/chat" for r in stand_ins.ollama.requests),
                   "anthropic": sum(r["path"].startswith("/v1/messages") for r in stand_ins.anthropic.requests),
                   "openai": sum(r["path"].startswith("/v1/chat") for r in stand_ins.openai.requests)}
    print("\n=== rehearsal summary")
    for step in steps:
        print(f"  {step.name:<14} {'ok' if step.rc == 0 else f'FAILED (exit {step.rc})':<16} {step.seconds:7.0f} s")
    print(f"  requests answered: Ollama /api/chat {traffic['ollama']}, OpenAI /v1/chat/completions "
          f"{traffic['openai']}, Anthropic /v1/messages {traffic['anthropic']}")
    problems = [f"{s.name} exited {s.rc}" for s in steps if s.rc != 0]
    if overflows:
        worst = max(overflows, key=lambda o: o["prompt_tokens"] - o["num_ctx"])
        problems.append(f"{len(overflows)} Ollama prompt(s) longer than the num_ctx sent (Ollama truncates them "
                        f"silently), e.g. {worst['tag']}: {worst['prompt_tokens']} tokens > num_ctx {worst['num_ctx']}")
    missing = sorted(expected - _keys_with_results(Path(args.results_dir), config))
    if missing and "study" in common.split_list(args.steps):
        problems.append(f"no result file for: {', '.join(missing)}")
    for line in problems:
        print(f"  problem: {line}")
    report = Path(args.results_dir) / "golden" / "report.html"
    if report.exists():
        print(f"  report: {report}")
    print("  rehearsal " + ("passed: every key ran through every step" if not problems else "FAILED"))
    return 1 if problems else 0
