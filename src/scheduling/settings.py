"""What a study run is made of once the study file and the flags are merged (StudySettings), its stages, and the
endpoint budgets a model's projected calls are counted against - shared by the unit builders of src.scheduling.study
and src.scheduling.later_studies."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from src.backends.endpoints import LOCAL_CPU

if TYPE_CHECKING:
    from src.backends.session import Sessions
    from src.registry.experiments import DemoCurvesStudy, TippingPointStudy
    from src.tasks.base import Task

# The study's stages in the order they run (--phases). The later studies run when the study file configures them.
CORE_STAGES = ("baseline", "optimize", "eval")
LATER_STUDIES = ("demo_curves", "tipping_point")
STAGES = (*CORE_STAGES, *LATER_STUDIES, "consolidate")


@dataclass
class StudySettings:
    """Everything a study run is made of, once the study file and the flags are merged."""

    students: list[str]
    references: list[str]
    teacher: str | None
    tasks: list[Task]
    data_mode: str
    results_dir: Path
    limit: int | None
    reference_limit: int | None
    optimizer: str
    preset: str
    seeds: list[int]
    train_size: int | None
    dev_size: int | None
    adapter: str | None
    force: bool
    stages: list[str]
    consolidate_opts: Any = None  # src.consolidation.analysis.Options, when "consolidate" is a stage
    config: Any = None  # the registry (src.registry.Config), for consolidation's task metrics
    evaluator: Any = None  # where evaluation units evaluate their examples (None: here; the Ray executor's: a node)
    repeats: int = 1  # attempts per eval example (--repeats / the study's repeats)
    demo_curves: DemoCurvesStudy | None = None  # set when "demo_curves" is a stage
    tipping_point: TippingPointStudy | None = None  # set when "tipping_point" is a stage
    tipping_tasks: list[Task] = field(default_factory=list)  # the tipping point's tasks, resolved


def endpoint_names(sessions: Sessions, key: str) -> list[str]:
    """The endpoint budgets a model's requests take (its replicas; the local CPU for embedded models)."""
    backend = sessions.backend(key)
    if backend.provider == "embedded":
        return [LOCAL_CPU]
    return list(dict.fromkeys(backend.budget_name(u) for u in backend.base_urls()))


def spread(sessions: Sessions, key: str, calls: int, into: dict[str, int] | None = None) -> dict[str, int]:
    """`calls` projected requests of a model, spread over its endpoints (added to `into` when given)."""
    out = into if into is not None else {}
    names = endpoint_names(sessions, key)
    for i, name in enumerate(names):
        out[name] = out.get(name, 0) + calls // len(names) + (1 if i < calls % len(names) else 0)
    return out
