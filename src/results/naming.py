"""Every result-file name, written and parsed here and nowhere else.

The names are the original study's, unchanged (results made by older versions keep resuming and consolidating):

    {prefix}_baseline_{task}_{model}.csv                  prefix: api | local (embedded models count as local)
    {prefix}_optimized_{task}_optimized_{model}.csv       the study's optimized arm (MIPROv2)
    {prefix}_{arm}_{task}_{model}.csv                     any other arm: bootstrap_rs, gepa, demo-n3, tp-n1-s10 ...
    {csv stem}.meta.json beside each CSV; .journal/{csv stem}.jsonl below it
    optimized_programs/{model}_{task}_{optimizer}.json (+ .meta.json)
    optimized_programs/.seeds/{model}_{task}_{optimizer}/seed{N}.json (+ seed{N}.meta.json, baseline_dev.json)
    demo_curves/units/<result CSVs>;  tipping_point/units/<result CSVs>
    tipping_point/checkpoints/{model}_{task}_baseline.json | {model}_{task}_n{N}_seed{S}.json
    logs/{command}-{YYYYmmdd-HHMMSS}-{pid}.log              library messages of one command run (not results)

Model and task keys may contain "_", ".", "-" and digits (qwen2.5_7b, deepseek-r1_7b, gpt-4o), so a name is never
split on "_": it is matched against the keys it can be made of, longest first.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PREFIXES = ("api", "local")
STUDY_OPTIMIZER = "mipro_v2"  # its results are the study's "optimized" arm
OPTIMIZED = "optimized"


# ---- writing ---------------------------------------------------------------------------------------------------

def prefix_for(spec: Any) -> str:
    """'api' or 'local' for a ModelSpec (anything with .kind): embedded and Ollama models are local."""
    return "api" if spec.kind == "api" else "local"


def arm_for_optimizer(optimizer: str) -> str:
    """The arm an optimizer's evaluation is filed under: MIPROv2 is the study's 'optimized'; others keep their name."""
    return OPTIMIZED if optimizer == STUDY_OPTIMIZER else optimizer


def result_name(prefix: str, arm: str, task: str, model: str) -> str:
    if arm == "baseline":
        return f"{prefix}_baseline_{task}_{model}.csv"
    if arm == OPTIMIZED:
        return f"{prefix}_optimized_{task}_optimized_{model}.csv"
    return f"{prefix}_{arm}_{task}_{model}.csv"


def result_csv(results_dir: Path, prefix: str, arm: str, task: str, model: str) -> Path:
    return results_dir / result_name(prefix, arm, task, model)


def meta_path(csv_path: Path) -> Path:
    return csv_path.with_suffix(".meta.json")


def journal_path(csv_path: Path) -> Path:
    return csv_path.parent / ".journal" / (csv_path.stem + ".jsonl")


def unit_files(csv_path: Path) -> list[Path]:
    """The files one evaluation unit owns: CSV, sidecar, journal (archived together)."""
    return [csv_path, meta_path(csv_path), journal_path(csv_path)]


def programs_dir(results_dir: Path) -> Path:
    return results_dir / "optimized_programs"


def program_path(results_dir: Path, model: str, task: str, optimizer: str) -> Path:
    return programs_dir(results_dir) / f"{model}_{task}_{optimizer}.json"


def sidecar_path(program_file: Path) -> Path:
    return program_file.with_suffix(".meta.json")


def seed_dir(results_dir: Path, model: str, task: str, optimizer: str) -> Path:
    return programs_dir(results_dir) / ".seeds" / f"{model}_{task}_{optimizer}"


def seed_program(seeds: Path, seed: int) -> Path:
    return seeds / f"seed{seed}.json"


def seed_meta(seeds: Path, seed: int) -> Path:
    return seeds / f"seed{seed}.meta.json"


def dev_baseline(seeds: Path) -> Path:
    return seeds / "baseline_dev.json"


def logs_dir(results_dir: Path) -> Path:
    return results_dir / "logs"


def log_path(results_dir: Path, command: str, started: float) -> Path:
    """One command run's log file: never reused, so a resumed run does not overwrite an earlier run's evidence."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(started))
    return logs_dir(results_dir) / f"{command}-{stamp}-{os.getpid()}.log"


def demo_curves_dir(results_dir: Path) -> Path:
    return results_dir / "demo_curves"


def demo_curve_arm(n_demos: int | None) -> str:
    """The arm of one demo-curve condition: 'baseline', or 'demo-n{N}' (instructions kept, first N demos)."""
    return "baseline" if n_demos is None else f"demo-n{n_demos}"


def tipping_dir(results_dir: Path) -> Path:
    return results_dir / "tipping_point"


def tipping_arm(n: int, seed: int | None) -> str:
    return "tp-baseline" if n == 0 else f"tp-n{n}-s{seed}"


def tipping_checkpoint(results_dir: Path, model: str, task: str, n: int, seed: int | None) -> Path:
    tag = "baseline" if n == 0 else f"n{n}_seed{seed}"
    return tipping_dir(results_dir) / "checkpoints" / f"{model}_{task}_{tag}.json"


# ---- parsing ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ResultName:
    prefix: str
    arm: str
    task: str
    model: str


def _longest_first(keys: Iterable[str]) -> list[str]:
    return sorted({k for k in keys if k}, key=lambda k: (-len(k), k))


def parse_result_name(name: str, *, tasks: Iterable[str], models: Iterable[str]) -> ResultName | None:
    """The (prefix, arm, task, model) a result CSV's file name encodes, or None if it is not one.

    `tasks` and `models` are the keys the name may be made of (the registry's, or one unit's own columns); the
    longest keys are tried first, so 'qwen2.5_7b' is never read as model '7b' of task 'qa_qwen2.5'.
    """
    if not name.endswith(".csv"):
        return None
    for prefix in PREFIXES:
        if not name.startswith(prefix + "_"):
            continue
        rest = name[len(prefix) + 1: -len(".csv")]
        models_l, tasks_l = _longest_first(models), _longest_first(tasks)
        for model in models_l:
            for task in tasks_l:
                if rest == f"baseline_{task}_{model}":
                    return ResultName(prefix, "baseline", task, model)
                if rest == f"{OPTIMIZED}_{task}_{OPTIMIZED}_{model}":
                    return ResultName(prefix, OPTIMIZED, task, model)
        for model in models_l:
            for task in tasks_l:
                suffix = f"_{task}_{model}"
                if rest.endswith(suffix) and len(rest) > len(suffix):
                    return ResultName(prefix, rest[: -len(suffix)], task, model)
    return None


def result_prefix(name: str) -> str | None:
    """'api' / 'local' when a file name starts with one (whatever follows), else None."""
    return next((p for p in PREFIXES if name.startswith(p + "_")), None)


@dataclass(frozen=True)
class ProgramName:
    model: str
    task: str
    optimizer: str


def parse_program_name(name: str, *, tasks: Iterable[str], optimizers: Iterable[str]) -> ProgramName | None:
    """(model, task, optimizer) from 'optimized_programs/{model}_{task}_{optimizer}.json' (or its .meta.json).

    Optimizer and task are matched against known keys from the right, longest first; the model is what remains,
    whatever characters it has.
    """
    stem = name[: -len(".meta.json")] if name.endswith(".meta.json") else (
        name[: -len(".json")] if name.endswith(".json") else None)
    if not stem:
        return None
    for optimizer in _longest_first(optimizers):
        if not stem.endswith("_" + optimizer):
            continue
        head = stem[: -len(optimizer) - 1]
        for task in _longest_first(tasks):
            if head.endswith("_" + task) and len(head) > len(task) + 1:
                return ProgramName(head[: -len(task) - 1], task, optimizer)
    return None
