"""The contract of an optimizer arm: compile a task's program with a teacher, and project the LM calls it will make."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dspy

if TYPE_CHECKING:
    from src.backends.session import ModelSession
    from src.optimization.presets import Preset
    from src.tasks.base import Task


@dataclass(frozen=True)
class Projection:
    """LM calls one optimization unit will make, by role (upper bounds, before any call is spent)."""

    teacher: int
    student: int

    @property
    def total(self) -> int:
        return self.teacher + self.student

    def as_dict(self) -> dict[str, int]:
        return {"teacher": self.teacher, "student": self.student, "total": self.total}


class Arm:
    """One optimizer. `compile` runs inside dspy.context(lm=student, adapter=student's)."""

    name = "?"
    seeded = True  # False: nothing is searched, one run is the whole arm
    chain_of_thought: bool | None = None  # the programs it compiles reason first (None: as the task's own does)

    def compile(self, task: Task, trainset: list[dspy.Example], student: ModelSession, teacher: ModelSession,
                preset: Preset, seed: int) -> dspy.Module:
        raise NotImplementedError

    def projected(self, task: Task, preset: Preset, n_train: int, n_dev: int, n_seeds: int) -> Projection:
        raise NotImplementedError


def seeded_order(trainset: list[dspy.Example], seed: int) -> list[dspy.Example]:
    """The trainset in the seed's order: for arms without a seed of their own it is what makes seeds differ."""
    out = list(trainset)
    random.Random(seed).shuffle(out)
    return out


def halves(trainset: list[dspy.Example]) -> tuple[list[dspy.Example], list[dspy.Example]]:
    """(build, rank): candidates are ranked on examples they were not built from."""
    cut = max(1, len(trainset) // 2)
    return trainset[:cut], trainset[cut:] or trainset


def dev_calls(n_dev: int, n_seeds: int) -> int:
    """Every seed's candidate plus the unoptimized baseline, scored on dev."""
    return (n_seeds + 1) * n_dev
