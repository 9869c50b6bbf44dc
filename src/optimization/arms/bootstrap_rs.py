"""BootstrapFewShotWithRandomSearch: teacher-bootstrapped demo sets, the best of several random candidates."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dspy

from src.optimization.arms.base import Arm, Projection, dev_calls, halves, seeded_order

if TYPE_CHECKING:
    from src.backends.session import ModelSession
    from src.optimization.presets import Preset
    from src.tasks.base import Task


class BootstrapRSArm(Arm):
    name = "bootstrap_rs"

    def compile(self, task: Task, trainset: list[dspy.Example], student: ModelSession, teacher: ModelSession,
                preset: Preset, seed: int) -> dspy.Module:
        opt = dspy.BootstrapFewShotWithRandomSearch(metric=task.metric, teacher_settings={"lm": teacher.lm},
                                                    num_threads=student.concurrency, **preset.bootstrap_rs)
        build, rank = halves(seeded_order(trainset, seed))
        return opt.compile(task.program(), trainset=build, valset=rank)

    def projected(self, task: Task, preset: Preset, n_train: int, n_dev: int, n_seeds: int) -> Projection:
        cands = preset.bootstrap_rs["num_candidate_programs"] + 3  # DSPy adds 3 fixed candidates
        half = max(1, n_train // 2)
        return Projection(teacher=n_seeds * cands * half,
                          student=n_seeds * cands * (n_train - half) + dev_calls(n_dev, n_seeds))
