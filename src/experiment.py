"""The whole study as one command (./run_experiment.sh): load an experiment file, preflight, run the phases in order."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from src import PROJECT_ROOT, cli
from src.backends import backend_for, preflight
from src.config import ADAPTERS, Config, load_config
from src.errors import ConfigError, UserError
from src.optimize import ARMS, PRESETS
from src.tasks import resolve_task_keys
from src.tasks.data import DATA_MODES

PHASES = ("baseline", "optimize", "eval", "consolidate")
EXPERIMENTS_DIR = PROJECT_ROOT / "experiments"


@dataclass
class Experiment:
    """A declarative study: who is optimized, who is only a reference, with what budget, on which tasks."""

    name: str
    path: Path
    students: list[str]
    references: list[str] = field(default_factory=list)
    teacher: str | None = None
    when_missing: str = "fail"
    tasks: str = "all"
    limit: int | None = 50
    reference_limit: int | None = None
    optimizer: str = "mipro_v2"
    preset: str = "standard"
    seeds: list[int] = field(default_factory=lambda: [10, 20, 30])
    train_size: int | None = None
    dev_size: int | None = None
    adapter: str | None = None
    concurrency: int | None = None
    data: str = "auto"
    description: str = ""
    notes: list[str] = field(default_factory=list)


_FIELDS = {
    "name": str, "description": str, "students": list, "references": list, "teacher": (str, type(None)),
    "when_missing": str, "tasks": (str, list), "limit": (int, type(None)), "reference_limit": (int, type(None)),
    "optimizer": str, "preset": str, "seeds": list, "train_size": (int, type(None)), "dev_size": (int, type(None)),
    "adapter": (str, type(None)), "concurrency": (int, type(None)), "data": str,
}


def load_experiment(path: Path, config: Config) -> Experiment:
    """Parse and validate an experiment file; any problem is one line naming the file and the field."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of fields (name, students, tasks, ...)")

    def bad(name: str, why: str) -> ConfigError:
        return ConfigError(f"{path}: field '{name}' {why}")

    for name, value in raw.items():
        if name not in _FIELDS:
            raise bad(name, f"is not a known field (known: {', '.join(_FIELDS)})")
        if isinstance(value, bool) or not isinstance(value, _FIELDS[name]):
            raise bad(name, f"has the wrong type ({type(value).__name__})")
    if "students" not in raw and "references" not in raw:
        raise bad("students", "is missing (give students and/or references)")
    for name in ("students", "references"):
        for m in raw.get(name, []) or []:
            if not isinstance(m, str) or m not in config.models:
                raise bad(name, f"names unknown model {m!r} (add it to models.json)")
    if raw.get("teacher") is not None and raw["teacher"] not in config.models:
        raise bad("teacher", f"names unknown model {raw['teacher']!r}")
    if raw.get("when_missing", "fail") not in ("fail", "skip"):
        raise bad("when_missing", "must be 'fail' or 'skip'")
    if raw.get("optimizer", "mipro_v2") not in ARMS:
        raise bad("optimizer", f"must be one of {', '.join(ARMS)}")
    if raw.get("preset", "standard") not in PRESETS:
        raise bad("preset", f"must be one of {', '.join(PRESETS)}")
    if raw.get("adapter") is not None and raw["adapter"] not in ADAPTERS:
        raise bad("adapter", f"must be one of {', '.join(ADAPTERS)}")
    if raw.get("data", "auto") not in DATA_MODES:
        raise bad("data", f"must be one of {', '.join(DATA_MODES)}")
    seeds = raw.get("seeds", [10, 20, 30])
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise bad("seeds", "must be a non-empty list of integers")
    for name in ("limit", "reference_limit", "train_size", "dev_size", "concurrency"):
        if raw.get(name) is not None and raw[name] < 0:
            raise bad(name, "must be >= 0")
    tasks = raw.get("tasks", "all")
    tasks = ",".join(tasks) if isinstance(tasks, list) else tasks
    try:
        resolve_task_keys(tasks, config)
    except UserError as exc:
        raise bad("tasks", str(exc)) from None
    return Experiment(
        name=raw.get("name", path.stem), path=path, students=list(raw.get("students") or []),
        references=list(raw.get("references") or []), teacher=raw.get("teacher"),
        when_missing=raw.get("when_missing", "fail"), tasks=tasks, limit=raw.get("limit", 50),
        reference_limit=raw.get("reference_limit"), optimizer=raw.get("optimizer", "mipro_v2"),
        preset=raw.get("preset", "standard"), seeds=seeds, train_size=raw.get("train_size"),
        dev_size=raw.get("dev_size"), adapter=raw.get("adapter"), concurrency=raw.get("concurrency"),
        data=raw.get("data", "auto"), description=raw.get("description", ""),
    )


def preset_file(name: str) -> Path:
    for ext in (".yaml", ".yml", ".json"):
        path = EXPERIMENTS_DIR / f"{name}{ext}"
        if path.is_file():
            return path
    known = sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.y*ml"))
    raise UserError(f"no experiment preset '{name}' in {EXPERIMENTS_DIR} (known: auto, {', '.join(known)})")


def choose_auto(config: Config) -> tuple[str, str]:
    """The full study when Ollama serves its models and an OpenAI key is set; otherwise embedded, saying why."""
    full = load_experiment(preset_file("full"), config)
    reasons = []
    for key in full.students + ([full.teacher] if full.teacher else []):
        reasons.extend(backend_for(key, config).problems())
    if not reasons:
        return "full", "Ollama serves the study's models and OPENAI_API_KEY is set"
    seen, short = set(), []
    for r in reasons:  # "Ollama is not reachable" repeats per model: say it once
        key = r.split(":", 1)[1].strip() if r.startswith("model ") and "Ollama is not reachable" in r else r
        if key not in seen:
            seen.add(key)
            short.append(key)
    return "embedded", "the full study cannot run here: " + "; ".join(short)


@dataclass
class Phase:
    name: str
    argv: list[str]
    expected_units: int


def resolve_models(exp: Experiment, config: Config, override: str | None) -> list[str]:
    """Drop optional models that are not ready when the experiment says when_missing: skip."""
    if override:
        keys = cli.split_list(override)
        for k in keys:
            config.model(k)
        exp.students = [k for k in keys if k not in exp.references]
        exp.references = [k for k in exp.references if k in keys]
    if exp.when_missing == "skip":
        for group in ("students", "references"):
            kept = []
            for key in getattr(exp, group):
                problems = backend_for(key, config).problems()
                if problems:
                    exp.notes.append(f"skipping {key} ({problems[0]})")
                else:
                    kept.append(key)
            setattr(exp, group, kept)
        if exp.teacher and backend_for(exp.teacher, config).problems():
            exp.notes.append(f"teacher {exp.teacher} is not available: each student teaches itself")
            exp.teacher = None
    if not exp.students and not exp.references:
        raise UserError(f"{exp.path.name}: no model of this experiment is available")
    return exp.students + exp.references


def plan(exp: Experiment, args: Any, results_dir: Path, phases: list[str]) -> list[Phase]:
    py = [sys.executable, "-m"]
    common = ["--tasks", exp.tasks, "--data", args.data or exp.data, "--results-dir", str(results_dir)]
    if args.adapter or exp.adapter:
        common += ["--adapter", args.adapter or exp.adapter]
    if args.concurrency or exp.concurrency:
        common += ["--concurrency", str(args.concurrency or exp.concurrency)]
    if args.force:
        common.append("--force")
    limit = args.limit if args.limit is not None else exp.limit
    n_tasks = len(exp.tasks.split(",")) if exp.tasks != "all" else 9
    out: list[Phase] = []
    if "baseline" in phases:
        if exp.students:
            out.append(Phase("baseline", py + ["src.run_baseline_v2", "--models", ",".join(exp.students),
                                               "--limit", str(limit or 0)] + common, len(exp.students) * n_tasks))
        if exp.references:
            ref_limit = args.limit if args.limit is not None else (exp.reference_limit or limit)
            out.append(Phase("baseline (references)", py + ["src.run_baseline_v2", "--models", ",".join(exp.references),
                                                            "--limit", str(ref_limit or 0)] + common,
                             len(exp.references) * n_tasks))
    if exp.students and "optimize" in phases:
        opt = py + ["src.run_optimization", "--models", ",".join(exp.students), "--optimizer", exp.optimizer,
                    "--preset", exp.preset, "--seeds", ",".join(map(str, exp.seeds))] + common
        if exp.teacher:
            opt += ["--teacher", exp.teacher]
        if exp.train_size:
            opt += ["--train-size", str(exp.train_size)]
        if exp.dev_size:
            opt += ["--dev-size", str(exp.dev_size)]
        out.append(Phase("optimize", opt, len(exp.students) * n_tasks))
    if exp.students and "eval" in phases:
        out.append(Phase("eval", py + ["src.run_optimized_eval", "--models", ",".join(exp.students), "--optimizer",
                                       exp.optimizer, "--limit", str(limit or 0)] + common, len(exp.students) * n_tasks))
    if "consolidate" in phases:
        out.append(Phase("consolidate", py + ["src.consolidate_results", "--results-dir", str(results_dir)], 1))
    return out


def _show(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in (["python"] + argv[1:] if argv[0] == sys.executable else argv))


def run_phases(phases: list[Phase], env: dict[str, str]) -> list[dict[str, Any]]:
    """Run each phase; a failed unit is reported and the next phase still runs; a preflight failure stops all."""
    rows: list[dict[str, Any]] = []
    for ph in phases:
        t0 = time.time()
        print(f"\n=== phase {ph.name}: {_show(ph.argv)}", flush=True)
        with tempfile.NamedTemporaryFile(prefix="ia-units-", suffix=".jsonl", delete=False) as fh:
            ledger = Path(fh.name)
        proc = subprocess.run(ph.argv, cwd=os.getcwd(), env={**env, "IA_UNIT_LEDGER": str(ledger)})
        units = [json.loads(x) for x in ledger.read_text().splitlines() if x.strip()]
        ledger.unlink(missing_ok=True)
        elapsed = time.time() - t0
        print(f"=== phase {ph.name}: exit {proc.returncode} after {elapsed:.0f}s", flush=True)
        rows.append({"phase": ph.name, "exit": proc.returncode, "wall_s": elapsed, "units": units})
        if proc.returncode == 3:  # preflight failure: nothing further can work
            print(f"stopping: phase {ph.name} failed its preflight (see the lines above for the fix)", file=sys.stderr)
            break
        if proc.returncode not in (0, 1):  # 1 = some units failed (reported at the end); anything else: the phase
            print(f"stopping: phase {ph.name} failed as a whole (exit {proc.returncode}); the phases after it need "
                  f"its output", file=sys.stderr)
            break
    return rows


def print_summary(rows: list[dict[str, Any]], total_s: float) -> int:
    print("\n=== summary: phase, units ran / reused / failed, wall time")
    failed_units = []
    for r in rows:
        counts = {s: sum(1 for u in r["units"] if u["status"] == s) for s in ("ran", "reused", "failed")}
        failed_units += [f"{r['phase']}: {u['unit']} - {u.get('message', '')}" for u in r["units"]
                         if u["status"] == "failed"]
        flag = "" if r["exit"] == 0 else f"  (exit {r['exit']})"
        print(f"  {r['phase']:24s} {counts['ran']:3d} ran  {counts['reused']:3d} reused  {counts['failed']:3d} failed"
              f"  {r['wall_s']:7.0f}s{flag}")
    for line in failed_units:
        print(f"  FAILED {line}")
    print(f"  total wall time {total_s:.0f}s")
    return 1 if any(r["exit"] != 0 for r in rows) or failed_units else 0


def main() -> int:
    p = cli.parser("Run the study end to end: baselines, optimization, optimized evaluation, consolidation.")
    p.add_argument("--preset", default="auto", help="auto | embedded | full | any experiments/<name>.yaml")
    p.add_argument("--config", default=None, help="an experiment file (YAML) instead of a preset")
    p.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset of " + ",".join(PHASES))
    p.set_defaults(limit=None)
    args = p.parse_args()
    config = load_config()
    phases = cli.split_list(args.phases)
    bad = [x for x in phases if x not in PHASES]
    if bad or not phases:
        raise UserError(f"--phases takes a comma-separated subset of {','.join(PHASES)}, not '{args.phases}'")
    if args.config:
        exp = load_experiment(Path(args.config), config)
    else:
        name = args.preset
        if name == "auto":
            name, why = choose_auto(config)
            print(f"preset auto -> {name}: {why}")
        exp = load_experiment(preset_file(name), config)
    if args.tasks and args.tasks != "all":
        resolve_task_keys(args.tasks, config)
        exp.tasks = args.tasks
    models = resolve_models(exp, config, args.models)
    results_dir = Path(args.results_dir) if args.results_dir else config.results_dir
    print(f"experiment {exp.name} ({exp.path}): students {exp.students or '-'}, references {exp.references or '-'}, "
          f"teacher {exp.teacher or '(students teach themselves)'}, tasks {exp.tasks}, optimizer {exp.optimizer} "
          f"preset {exp.preset}, seeds {exp.seeds}")
    for note in exp.notes:
        print(f"  note: {note}")
    steps = plan(exp, args, results_dir, phases)
    env = dict(os.environ)
    if args.no_cache:
        steps = [Phase(s.name, s.argv + (["--no-cache"] if s.name != "consolidate" else []), s.expected_units)
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
    preflight(models + ([exp.teacher] if exp.teacher else []), config, args.adapter or exp.adapter)
    t0 = time.time()
    rows = run_phases(steps, env)
    return print_summary(rows, time.time() - t0)


if __name__ == "__main__":
    cli.run(main)
