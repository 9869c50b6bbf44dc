"""./run_experiment.sh: the whole study as one command — load a study file, preflight, run it: by default as one graph
of units under the study scheduler (src.commands.study_run), or (--executor stages) as the stage commands one after
another."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from src.backends.session import Sessions
from src.commands import budget as spend
from src.commands import common, study_run
from src.commands.console import CONSOLE
from src.errors import UserError
from src.optimization.arms import ARMS
from src.optimization.presets import PRESETS
from src.registry import Config, load_config
from src.registry import experiments as study_files
from src.registry.experiments import EXPERIMENTS_DIR, Experiment
from src.scheduling.local import DEFAULT_MAX_UNITS
from src.scheduling.settings import CORE_STAGES, LATER_STUDIES, STAGES
from src.tasks import resolve_task_keys
from src.tasks.sources import DATA_MODES

EXECUTORS = ("local", "ray", "stages")


def load_experiment(path: Path, config: Config) -> Experiment:
    """A study file, validated against the optimizers, presets and data modes this product has."""
    return study_files.load_experiment(path, config, optimizers=ARMS, presets=tuple(PRESETS), data_modes=DATA_MODES)


def choose_auto(config: Config) -> tuple[str, str]:
    """The full study when Ollama serves its models and an OpenAI key is set; otherwise embedded, saying why."""
    full = load_experiment(study_files.preset_file("full"), config)
    sessions = Sessions(config)
    tipping = full.tipping_point
    keys = full.students + ([full.teacher] if full.teacher else []) \
        + ((tipping.models + ([tipping.teacher] if tipping.teacher else [])) if tipping else [])
    reasons = [p for key in dict.fromkeys(keys) for p in sessions.backend(key).problems()]
    if not reasons:
        return "full", "Ollama serves the study's models and OPENAI_API_KEY is set"
    seen, short = set(), []
    for r in reasons:  # "Ollama is not reachable" repeats per model: say it once
        key = r.split(":", 1)[1].strip() if r.startswith("model ") and "Ollama is not reachable" in r else r
        if key not in seen:
            seen.add(key)
            short.append(key)
    return "embedded", "the full study cannot run here: " + "; ".join(short)


def narrow_tasks(exp: Experiment, tasks: str, config: Config) -> None:
    """--tasks: the study's tasks, and the tipping point's own task list within them (dropped, with a note, when
    none of its tasks is left)."""
    keys = resolve_task_keys(tasks, config)
    exp.tasks = tasks
    tp = exp.tipping_point
    if tp is not None and tp.tasks:
        kept = [k for k in resolve_task_keys(tp.tasks, config) if k in keys]
        if kept:
            tp.tasks = ",".join(kept)
        else:
            exp.notes.append(f"tipping point not run: none of its tasks ({tp.tasks}) is among --tasks {tasks}")
            exp.tipping_point = None


def default_stages(exp: Experiment) -> list[str]:
    """--phases by default: baseline, optimize, eval, the later studies the study file configures, consolidate."""
    configured = {"demo_curves": exp.demo_curves is not None, "tipping_point": exp.tipping_point is not None}
    return [x for x in STAGES if configured.get(x, True)]


@dataclass
class Stage:
    """One stage of the study as the command that runs it."""

    name: str
    argv: list[str]
    expected_units: int


def resolve_models(exp: Experiment, sessions: Sessions, override: str | None) -> list[str]:
    """Drop optional models that are not ready when the experiment says when_missing: skip."""
    if override:
        keys = common.split_list(override)
        for k in keys:
            sessions.spec(k)
        exp.students = [k for k in keys if k not in exp.references]
        exp.references = [k for k in exp.references if k in keys]
    if exp.when_missing == "skip":
        for group in ("students", "references"):
            kept = []
            for key in getattr(exp, group):
                problems = sessions.backend(key).problems()
                if problems:
                    exp.notes.append(f"skipping {key} ({problems[0]})")
                else:
                    kept.append(key)
            setattr(exp, group, kept)
        if exp.teacher and sessions.backend(exp.teacher).problems():
            exp.notes.append(f"teacher {exp.teacher} is not available: each student teaches itself")
            exp.teacher = None
        tp = exp.tipping_point
        if tp is not None:  # the tipping point's own models, likewise
            for key in [k for k in tp.models if sessions.backend(k).problems()]:
                exp.notes.append(f"tipping point: skipping {key} ({sessions.backend(key).problems()[0]})")
                tp.models.remove(key)
            if tp.teacher and sessions.backend(tp.teacher).problems():
                exp.notes.append(f"tipping point: teacher {tp.teacher} is not available: each model teaches itself")
                tp.teacher = None
            if not tp.models:
                exp.tipping_point = None
    if not exp.students and not exp.references:
        raise UserError(f"{exp.path.name}: no model of this experiment is available")
    return exp.students + exp.references


def plan(exp: Experiment, args: Any, results_dir: Path, stages: list[str], config: Config | None = None) -> list[Stage]:
    py = [sys.executable, "-m"]
    common = ["--tasks", exp.tasks, "--data", args.data or exp.data, "--results-dir", str(results_dir)]
    if args.adapter or exp.adapter:
        common += ["--adapter", args.adapter or exp.adapter]
    if args.concurrency or exp.concurrency:
        common += ["--concurrency", str(args.concurrency or exp.concurrency)]
    if args.force:
        common.append("--force")
    if getattr(args, "unsafe_exec", False):  # the sandbox opt-in applies to every stage that scores code
        common.append("--unsafe-exec")
    cap = args.max_cost if getattr(args, "max_cost", None) is not None else exp.max_cost
    if cap is not None:  # one cap for the study: each stage starts from what the ones before it spent (spend ledger)
        common += ["--max-cost", f"{cap:g}"]
    if getattr(args, "mlflow", None) is not None:  # one tracking store for every stage's units
        from src.tracking.mlflow_log import tracking_uri

        common += ["--mlflow", str(tracking_uri(args.mlflow, results_dir))]
    limit = args.limit if args.limit is not None else exp.limit
    reps = getattr(args, "repeats", None) or exp.repeats  # --repeats / the study's repeats: evaluation stages only
    evals = ["--repeats", str(reps)] if reps > 1 else []
    n_tasks = len(exp.tasks.split(",")) if exp.tasks != "all" else 9
    out: list[Stage] = []
    if "baseline" in stages:
        if exp.students:
            out.append(Stage("baseline", py + ["src.run_baseline_v2", "--models", ",".join(exp.students),
                                               "--limit", str(limit or 0)] + common + evals,
                             len(exp.students) * n_tasks))
        if exp.references:
            ref_limit = args.limit if args.limit is not None else (exp.reference_limit or limit)
            out.append(Stage("baseline (references)", py + ["src.run_baseline_v2", "--models", ",".join(exp.references),
                                                            "--limit", str(ref_limit or 0)] + common + evals,
                             len(exp.references) * n_tasks))
    if exp.students and "optimize" in stages:
        opt = py + ["src.run_optimization", "--models", ",".join(exp.students), "--optimizer", exp.optimizer,
                    "--preset", exp.preset, "--seeds", ",".join(map(str, exp.seeds))] + common
        if exp.teacher:
            opt += ["--teacher", exp.teacher]
        if exp.train_size:
            opt += ["--train-size", str(exp.train_size)]
        if exp.dev_size:
            opt += ["--dev-size", str(exp.dev_size)]
        out.append(Stage("optimize", opt, len(exp.students) * n_tasks))
    if exp.students and "eval" in stages:
        out.append(Stage("eval", py + ["src.run_optimized_eval", "--models", ",".join(exp.students), "--optimizer",
                                       exp.optimizer, "--limit", str(limit or 0)] + common + evals,
                             len(exp.students) * n_tasks))
    if exp.students and "demo_curves" in stages and exp.demo_curves is not None:
        dc = exp.demo_curves
        # the command takes every program with a demo when both --models and --tasks (not "all") name the pairs,
        # and applies its selection rule otherwise (without --models: the results folder's programs, the students')
        keys = ",".join(resolve_task_keys(exp.tasks, config)) if config is not None else exp.tasks
        who = ["--models", ",".join(exp.students), "--tasks", keys] if dc.pairs == "all" else \
            (["--models", ",".join(exp.students)] if exp.tasks == "all" else ["--tasks", exp.tasks])
        out.append(Stage("demo_curves", py + ["src.demo_curve_eval"] + who + common[2:]  # common[:2]: --tasks
                         + ["--optimizer", exp.optimizer, "--limit", str(limit or 0)]
                         + (["--max-demos", str(dc.max_demos)] if dc.max_demos is not None else []) + evals,
                         len(exp.students) * n_tasks))
    if "tipping_point" in stages and exp.tipping_point is not None:
        tp = exp.tipping_point
        tip_tasks = tp.tasks or exp.tasks
        out.append(Stage("tipping_point", py + ["src.tipping_point.runner", "--models", ",".join(tp.models),
                                                "--tasks", tip_tasks] + common[2:]  # common[:2]: the study's --tasks
                         + ["--n", ",".join(map(str, tp.n)), "--seeds", ",".join(map(str, tp.seeds)),
                            "--preset", tp.preset, "--limit", str(limit or 0)]
                         + (["--candidates", str(tp.candidates)] if tp.candidates else [])
                         + (["--teacher", tp.teacher] if tp.teacher else []) + evals,
                         len(tp.models) * (len(tip_tasks.split(",")) if tip_tasks != "all" else 9)))
    if "consolidate" in stages:
        out.append(Stage("consolidate", py + ["src.consolidate_results", "--results-dir", str(results_dir)], 1))
    return out


def _show(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in (["python"] + argv[1:] if argv[0] == sys.executable else argv))


def run_stages(stages: list[Stage], env: dict[str, str]) -> list[dict[str, Any]]:
    """Run each stage; a failed unit is reported and the next stage still runs; a preflight failure stops all."""
    rows: list[dict[str, Any]] = []
    for ph in stages:
        t0 = time.time()
        print(f"\n=== stage {ph.name}: {_show(ph.argv)}", flush=True)
        with tempfile.NamedTemporaryFile(prefix="ia-units-", suffix=".jsonl", delete=False) as fh:
            ledger = Path(fh.name)
        proc = subprocess.run(ph.argv, cwd=os.getcwd(), env={**env, "IA_UNIT_LEDGER": str(ledger)})
        units = [json.loads(x) for x in ledger.read_text().splitlines() if x.strip()]
        ledger.unlink(missing_ok=True)
        elapsed = time.time() - t0
        print(f"=== stage {ph.name}: exit {proc.returncode} after {elapsed:.0f}s", flush=True)
        rows.append({"stage": ph.name, "exit": proc.returncode, "wall_s": elapsed, "units": units})
        if proc.returncode == 3:  # preflight failure: nothing further can work
            print(f"stopping: stage {ph.name} failed its preflight (see the lines above for the fix)", file=sys.stderr)
            break
        if proc.returncode not in (0, 1):  # 1 = some units failed (reported at the end); anything else: the stage
            print(f"stopping: stage {ph.name} failed as a whole (exit {proc.returncode}); the stages after it need "
                  f"its output", file=sys.stderr)
            break
    return rows


def print_summary(rows: list[dict[str, Any]], total_s: float) -> int:
    print("\n=== summary: stage, units ran / reused / failed, time spent in its units")
    failed_units = []
    for r in rows:
        counts = {s: sum(1 for u in r["units"] if u["status"] == s) for s in ("ran", "reused", "failed")}
        failed_units += [f"{r['stage']}: {u['unit']} - {u.get('message', '')}" for u in r["units"]
                         if u["status"] == "failed"]
        flag = "" if r["exit"] == 0 else f"  (exit {r['exit']})"
        print(f"  {r['stage']:24s} {counts['ran']:3d} ran  {counts['reused']:3d} reused  {counts['failed']:3d} failed"
              f"  {r['wall_s']:7.0f}s{flag}")
    for line in failed_units:
        print(f"  FAILED {line}")
    print(f"  total wall time {total_s:.0f}s")
    findings = [(r["stage"], r["findings"]) for r in rows if r.get("findings")]
    if findings:
        where = CONSOLE.collector.path if CONSOLE.collector is not None else None
        where = where if where is not None and where.exists() else None
        print("=== per stage: parse failures and backend errors in the examples scored (from the result files; each "
              "example in the report's browser" + (f", library messages in {where}" if where else "") + ")")
        for stage, f in findings:
            scope = "dev examples scored" if stage == "optimize" else "examples"
            seeds = f", {f['failed_seeds']} failed seed(s)" if f.get("failed_seeds") else ""
            print(f"  {stage}: {f['parse_failures']} parse failures, {f['errors']} backend errors in "
                  f"{f['examples']} {scope}{seeds}")
    return 1 if any(r["exit"] != 0 for r in rows) or failed_units else 0


def print_next_steps(exp: Experiment, config: Config, results_dir: Path, stages: list[str]) -> None:
    """The run ends by naming what to read and what to do next: the report, and how to get an API-side comparison
    when this study had none (the scoreboard then says "(no API model)" on every row)."""
    golden = results_dir / "golden"
    if "consolidate" in stages and (golden / "report.html").is_file():
        print(f"\nreport: {golden / 'report.html'} (open it in a browser; {golden / 'SUMMARY.md'} is the same as text)")
    api_side = [k for k in exp.references if config.model(k).kind == "api" or config.model(k).frontier_stand_in]
    if api_side:
        return
    print("next: for an offline scoreboard against a stronger model, ./setup_models.sh --with-qwen installs the "
          "1.5B stand-in (1.1 GB) and reruns reuse everything done; for the real study, start Ollama and set "
          "OPENAI_API_KEY / ANTHROPIC_API_KEY, then ./run_experiment.sh --preset full (README: The full study)")


def main() -> int:
    p = common.parser("Run the study end to end: baselines, optimization, optimized evaluation, consolidation.")
    p.add_argument("--preset", default="auto", help="auto | embedded | full | any experiments/<name>.yaml")
    p.add_argument("--config", default=None, help="an experiment file (YAML) instead of a preset")
    p.add_argument("--phases", default=None, help="the stages to run: a comma-separated subset of "
                   + ",".join(STAGES) + " (default: " + ",".join(CORE_STAGES) + ", the later studies the study file "
                   "configures, consolidate)")
    common.add_repeats(p)
    common.add_mlflow(p)
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local (default): the study scheduler, every unit whose inputs exist at once under per-endpoint "
                        "budgets; ray: the same units, their evaluations as Ray tasks on a cluster (--ray-address); "
                        "stages: the stage commands one after another, as before")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="the Ray cluster to join with --executor ray (default: RAY_ADDRESS, else a new local instance; "
                        "'auto': the cluster started on this machine with ray start)")
    p.add_argument("--max-units", type=common.whole_number(1), default=DEFAULT_MAX_UNITS,
                   help=f"units in flight at once under the local executor (default {DEFAULT_MAX_UNITS}); requests "
                        f"per endpoint are bounded by its budget whatever this is")
    p.add_argument("--progress-every", type=common.real_number(1), default=30.0, metavar="S",
                   help="print the study's progress every S seconds (default 30)")
    p.set_defaults(limit=None, repeats=None)
    args = p.parse_args()
    config = load_config()
    stages = common.split_list(args.phases)
    bad = [x for x in stages if x not in STAGES]
    if bad or (args.phases is not None and not stages):
        raise UserError(f"--phases takes a comma-separated subset of {','.join(STAGES)}, not '{args.phases}'")
    if args.config:
        exp = load_experiment(Path(args.config), config)
    else:
        name = args.preset
        if name == "auto":
            name, why = choose_auto(config)
            print(f"preset auto -> {name}: {why}")
        exp = load_experiment(study_files.preset_file(name), config)
    if args.tasks and args.tasks != "all":
        narrow_tasks(exp, args.tasks, config)
    stages = stages or default_stages(exp)
    if "demo_curves" in stages and exp.demo_curves is None:  # asked for by name: the command's defaults
        exp.demo_curves = study_files.DemoCurvesStudy()
    if "tipping_point" in stages and exp.tipping_point is None:
        raise UserError(f"--phases tipping_point: {exp.path} configures no tipping point for these tasks (add "
                        f"tipping_point: {{models: [...], n: [...], seeds: [...]}})")
    config = study_run.with_endpoint_overrides(config, exp)
    sessions = Sessions(config)
    models = resolve_models(exp, sessions, args.models)
    results_dir = common.results_dir(args, config)
    print(f"experiment {exp.name} ({exp.path}): students {exp.students or '-'}, references {exp.references or '-'}, "
          f"teacher {exp.teacher or '(students teach themselves)'}, tasks {exp.tasks}, optimizer {exp.optimizer} "
          f"preset {exp.preset}, seeds {exp.seeds}")
    later = [f"demo curves ({exp.demo_curves.pairs} programs)" if x == "demo_curves" and exp.demo_curves else
             f"tipping point ({', '.join(exp.tipping_point.models)}; n = {exp.tipping_point.n})"
             if x == "tipping_point" and exp.tipping_point else "" for x in stages if x in LATER_STUDIES]
    if any(later):
        print(f"  later studies: {'; '.join(x for x in later if x)}")
    for note in exp.notes:
        print(f"  note: {note}")
    if args.executor in ("local", "ray") and args.mlflow is not None:
        print("note: --mlflow runs the study stage by stage (as --executor stages): the scheduler does not log to "
              "MLflow yet")
        args.executor = "stages"
    if args.executor in ("local", "ray"):
        return _run_scheduled(exp, args, config, results_dir, stages, models)
    steps = plan(exp, args, results_dir, stages, config)
    env = dict(os.environ)
    if args.no_cache:
        steps = [Stage(s.name, s.argv + (["--no-cache"] if s.name != "consolidate" else []), s.expected_units)
                 for s in steps]
    if args.dry_run:
        print("\ndry run: these commands would run, in order (each prints its own plan below):")
        for s in steps:
            print(f"  {_show(s.argv)}")
        for s in steps:
            if s.name != "consolidate":
                print(f"\n--- {s.name}")
                subprocess.run(s.argv + ["--dry-run"], env=env)
        return 0
    cap = args.max_cost if args.max_cost is not None else exp.max_cost
    if cap is not None:  # --max-cost / the study's max_cost: refuse before any stage, and one running spend for all
        limit = args.limit if args.limit is not None else exp.limit
        spend.check(cap, spend.study_lines(exp, config, results_dir, args.data or exp.data, limit,
                                           args.limit if args.limit is not None else exp.reference_limit, stages,
                                           repeats=args.repeats, force=bool(args.force)))
        env[spend.SPEND_LEDGER_ENV] = str(spend.new_ledger(results_dir))
    sessions.preflight(models + ([exp.teacher] if exp.teacher else []), args.adapter or exp.adapter)
    t0 = time.time()
    rows = run_stages(steps, env)
    code = print_summary(rows, time.time() - t0)
    print_next_steps(exp, config, results_dir, stages)
    return code


def _run_scheduled(exp: Experiment, args: Any, config: Config, results_dir: Path, stages: list[str],
                   models: list[str]) -> int:
    """The default executor: the study as one unit graph, run in this process."""
    cap = args.max_cost if args.max_cost is not None else exp.max_cost
    settings = study_run.study_settings(exp, args, config, results_dir, stages)
    if cap is not None:  # refuse before any unit when the projected spend of what is left is over the cap
        limit = args.limit if args.limit is not None else exp.limit
        spend.check(cap, spend.study_lines(exp, config, results_dir, args.data or exp.data, limit,
                                           args.limit if args.limit is not None else exp.reference_limit, stages,
                                           repeats=args.repeats, force=bool(args.force)))
    sessions = study_run.make_sessions(config, exp, args)
    graph, data = study_run.build(settings, sessions)
    if args.dry_run:
        study_run.print_schedule(graph, data)
        print("\nthe same units, one stage at a time (--executor stages), are these commands:")
        for s in plan(exp, args, results_dir, stages, config):
            print(f"  {_show(s.argv)}")
        return 0
    executor = None
    if args.executor == "ray" and any(u.stage in LATER_STUDIES for u in graph.units.values()):
        print("note: under --executor ray the demo-curve and tipping-point units run on the driver, as optimization "
              "does (their LM requests are sent from here)")
    if args.executor == "ray":
        from src.scheduling.ray_executor import RayExecutor

        executor = RayExecutor(args.ray_address, args.max_units, args.progress_every)
        settings.evaluator = executor.evaluator(config, sessions)
    t0 = time.time()
    rows = study_run.run_local(graph, settings, sessions, max_units=args.max_units, report_every_s=args.progress_every,
                               executor=executor)
    code = print_summary(rows, time.time() - t0)
    print_next_steps(exp, config, results_dir, stages)
    return code
