"""Study files (experiments/*.yaml): a declarative study — who is optimized, who is only a reference, with what
budget, on which tasks — parsed and validated with one-line errors naming the file and the field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from src import PROJECT_ROOT
from src.errors import ConfigError, UserError
from src.registry.config import Config
from src.registry.protocol import STUDY_SEEDS, TIPPING_NS, TIPPING_PRESET
from src.registry.specs import ADAPTERS

EXPERIMENTS_DIR = PROJECT_ROOT / "experiments"


@dataclass
class DemoCurvesStudy:
    """`demo_curves`: the demo-count curves of the students' optimized programs (python -m src.demo_curve_eval)."""

    max_demos: int | None = None  # largest n evaluated (None: every demo of the program)
    # which (student, task) programs are curved: "selected" - the command's own rule without --models (>= 2 demos
    # and a phase-1 delta not significantly positive); "all" - every program with a demo (as naming the pairs with
    # --models and --tasks). A quick-preset program keeps at most one demo per predictor, which the rule never takes.
    pairs: str = "selected"


@dataclass
class TippingPointStudy:
    """`tipping_point`: BootstrapFewShotWithRandomSearch at n demos per seed (python -m src.tipping_point.runner)."""

    models: list[str]
    tasks: str | None = None  # None: the study's tasks
    n: list[int] = field(default_factory=lambda: list(TIPPING_NS))
    seeds: list[int] = field(default_factory=lambda: list(STUDY_SEEDS))
    preset: str = TIPPING_PRESET
    candidates: int | None = None  # random-search candidate programs per cell (None: the preset's)
    teacher: str | None = None  # bootstraps the demos (None: the student itself)


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
    endpoint_concurrency: dict[str, int] = field(default_factory=dict)  # model key -> requests in flight per endpoint
    data: str = "auto"
    max_cost: float | None = None  # USD cap on the whole study's API spend (the --max-cost of every stage)
    repeats: int = 1  # attempts per eval example in the baseline and optimized-eval stages (--repeats)
    demo_curves: DemoCurvesStudy | None = None  # the later studies the file configures (None: not part of it)
    tipping_point: TippingPointStudy | None = None
    description: str = ""
    notes: list[str] = field(default_factory=list)


_FIELDS = {
    "name": str, "description": str, "students": list, "references": list, "teacher": (str, type(None)),
    "when_missing": str, "tasks": (str, list), "limit": (int, type(None)), "reference_limit": (int, type(None)),
    "optimizer": str, "preset": str, "seeds": list, "train_size": (int, type(None)), "dev_size": (int, type(None)),
    "adapter": (str, type(None)), "concurrency": (int, type(None)), "data": str, "endpoint_concurrency": dict,
    "max_cost": (int, float, type(None)), "repeats": int, "demo_curves": (dict, bool, type(None)),
    "tipping_point": (dict, type(None)),
}
_DEMO_CURVES = {"max_demos": int, "pairs": str}
_TIPPING = {"models": list, "tasks": (str, list), "n": list, "seeds": list, "preset": str, "candidates": int,
            "teacher": str}
_PAIRS = ("selected", "all")


def load_experiment(path: Path, config: Config, *, optimizers: tuple[str, ...], presets: tuple[str, ...],
                    data_modes: tuple[str, ...]) -> Experiment:
    """Parse and validate an experiment file; any problem is one line naming the file and the field. The allowed
    optimizers, presets and data modes are given by the caller (they belong to layers above the registry)."""
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
        if (isinstance(value, bool) and name != "demo_curves") or not isinstance(value, _FIELDS[name]):
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
    if raw.get("optimizer", "mipro_v2") not in optimizers:
        raise bad("optimizer", f"must be one of {', '.join(optimizers)}")
    if raw.get("preset", "standard") not in presets:
        raise bad("preset", f"must be one of {', '.join(presets)}")
    if raw.get("adapter") is not None and raw["adapter"] not in ADAPTERS:
        raise bad("adapter", f"must be one of {', '.join(ADAPTERS)}")
    if raw.get("data", "auto") not in data_modes:
        raise bad("data", f"must be one of {', '.join(data_modes)}")
    seeds = raw.get("seeds", [10, 20, 30])
    if not _distinct_ints(seeds):
        raise bad("seeds", "must be a non-empty list of distinct integers >= 0")
    # limit 0 means "every eval example"; a budget or a concurrency of 0 means nothing and is refused
    for name, least in (("limit", 0), ("reference_limit", 0), ("train_size", 1), ("dev_size", 1),
                        ("concurrency", 1), ("repeats", 1)):
        if raw.get(name) is not None and raw[name] < least:
            raise bad(name, f"must be >= {least}")
    if raw.get("max_cost") is not None and not (0 <= raw["max_cost"] < float("inf")):
        raise bad("max_cost", "must be an amount in USD >= 0")
    for key, n in (raw.get("endpoint_concurrency") or {}).items():
        if key not in config.models:
            raise bad("endpoint_concurrency", f"names unknown model {key!r}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise bad("endpoint_concurrency", f"must map model keys to whole numbers >= 1 (requests in flight per "
                      f"endpoint), not {key}: {n!r}")
    tasks = raw.get("tasks", "all")
    tasks = ",".join(tasks) if isinstance(tasks, list) else tasks
    try:
        _check_tasks(tasks, config)
    except UserError as exc:
        raise bad("tasks", str(exc)) from None
    return Experiment(
        name=raw.get("name", path.stem), path=path, students=list(raw.get("students") or []),
        references=list(raw.get("references") or []), teacher=raw.get("teacher"),
        when_missing=raw.get("when_missing", "fail"), tasks=tasks, limit=raw.get("limit", 50),
        reference_limit=raw.get("reference_limit"), optimizer=raw.get("optimizer", "mipro_v2"),
        preset=raw.get("preset", "standard"), seeds=seeds, train_size=raw.get("train_size"),
        dev_size=raw.get("dev_size"), adapter=raw.get("adapter"), concurrency=raw.get("concurrency"),
        endpoint_concurrency=dict(raw.get("endpoint_concurrency") or {}),
        data=raw.get("data", "auto"), description=raw.get("description", ""),
        max_cost=float(raw["max_cost"]) if raw.get("max_cost") is not None else None,
        repeats=raw.get("repeats", 1), demo_curves=_demo_curves(raw.get("demo_curves"), bad),
        tipping_point=_tipping_point(raw.get("tipping_point"), bad, config, presets),
    )


def _distinct_ints(values: object) -> bool:
    return isinstance(values, list) and bool(values) and len(set(values)) == len(values) \
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)


def _subfields(name: str, raw: dict, known: dict, bad: Callable[[str, str], ConfigError]) -> None:
    for key, value in raw.items():
        if key not in known:
            raise bad(name, f"has no key '{key}' (known: {', '.join(known)})")
        if isinstance(value, bool) or not isinstance(value, known[key]):
            raise bad(f"{name}.{key}", f"has the wrong type ({type(value).__name__})")


def _demo_curves(raw: dict | bool | None, bad: Callable[[str, str], ConfigError]) -> DemoCurvesStudy | None:
    """`demo_curves: true` (the command's defaults), `{max_demos: N, pairs: selected|all}`, or false/absent."""
    if raw is None or raw is False:
        return None
    if raw is True:
        return DemoCurvesStudy()
    _subfields("demo_curves", raw, _DEMO_CURVES, bad)
    if raw.get("max_demos", 0) < 0:
        raise bad("demo_curves.max_demos", "must be >= 0")
    if raw.get("pairs", "selected") not in _PAIRS:
        raise bad("demo_curves.pairs", f"must be one of {', '.join(_PAIRS)}")
    return DemoCurvesStudy(max_demos=raw.get("max_demos"), pairs=raw.get("pairs", "selected"))


def _tipping_point(raw: dict | None, bad: Callable[[str, str], ConfigError], config: Config,
                   presets: tuple[str, ...]) -> TippingPointStudy | None:
    """`tipping_point: {models: [...], tasks, n, seeds, preset, candidates, teacher}` (models required)."""
    if raw is None:
        return None
    _subfields("tipping_point", raw, _TIPPING, bad)
    models = raw.get("models")
    if not models:
        raise bad("tipping_point.models", "is missing (the models whose tipping point is measured)")
    for m in models:
        if not isinstance(m, str) or m not in config.models:
            raise bad("tipping_point.models", f"names unknown model {m!r} (add it to models.json)")
    if raw.get("teacher") is not None and raw["teacher"] not in config.models:
        raise bad("tipping_point.teacher", f"names unknown model {raw['teacher']!r}")
    for key in ("n", "seeds"):
        if key in raw and not _distinct_ints(raw[key]):
            raise bad(f"tipping_point.{key}", "must be a non-empty list of distinct integers >= 0")
    if raw.get("preset", TIPPING_PRESET) not in presets:
        raise bad("tipping_point.preset", f"must be one of {', '.join(presets)}")
    if raw.get("candidates", 1) < 1:
        raise bad("tipping_point.candidates", "must be >= 1")
    tasks = raw.get("tasks")
    tasks = ",".join(tasks) if isinstance(tasks, list) else tasks
    if tasks is not None:
        try:
            _check_tasks(tasks, config)
        except UserError as exc:
            raise bad("tipping_point.tasks", str(exc)) from None
    return TippingPointStudy(models=list(models), tasks=tasks, n=list(raw.get("n", TIPPING_NS)),
                             seeds=list(raw.get("seeds", STUDY_SEEDS)), preset=raw.get("preset", TIPPING_PRESET),
                             candidates=raw.get("candidates"), teacher=raw.get("teacher"))


def preset_file(name: str) -> Path:
    for ext in (".yaml", ".yml", ".json"):
        path = EXPERIMENTS_DIR / f"{name}{ext}"
        if path.is_file():
            return path
    known = sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.y*ml"))
    raise UserError(f"no experiment preset '{name}' in {EXPERIMENTS_DIR} (known: auto, {', '.join(known)})")




def _check_tasks(value: str, config: Config) -> None:
    if value.strip() in ("all", ""):
        return
    for key in (k.strip() for k in value.split(",") if k.strip()):
        config.task(key)
