"""Chain of thought with no optimization: separates "a reasoning prompt" from "optimization" in the comparison."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dspy

from src.optimization.arms.base import Arm, Projection

if TYPE_CHECKING:
    from src.backends.session import ModelSession
    from src.optimization.presets import Preset
    from src.tasks.base import Task


class CoTZeroShotArm(Arm):
    name = "cot_zero_shot"
    seeded = False  # nothing is searched: one "seed" is the whole arm
    chain_of_thought = True

    def compile(self, task: Task, trainset: list[dspy.Example], student: ModelSession, teacher: ModelSession,
                preset: Preset, seed: int) -> dspy.Module:
        return task.program(chain_of_thought=True)

    def projected(self, task: Task, preset: Preset, n_train: int, n_dev: int, n_seeds: int) -> Projection:
        return Projection(teacher=0, student=n_dev * 2)
