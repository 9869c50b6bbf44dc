"""MIPROv2, the study's optimizer: the teacher proposes instructions and bootstraps demos; trials search them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dspy

from src.backends.dspy_compat import mipro_projected_calls
from src.optimization.arms.base import Arm, Projection, dev_calls, seeded_order

if TYPE_CHECKING:
    from src.backends.session import ModelSession
    from src.optimization.presets import Preset
    from src.tasks.base import Task


class MIPROv2Arm(Arm):
    name = "mipro_v2"

    def compile(self, task: Task, trainset: list[dspy.Example], student: ModelSession, teacher: ModelSession,
                preset: Preset, seed: int) -> dspy.Module:
        opt = dspy.MIPROv2(metric=task.metric, prompt_model=teacher.lm, task_model=student.lm,
                           teacher_settings={"lm": teacher.lm}, num_threads=student.concurrency, seed=seed,
                           verbose=False, track_stats=False, **preset.mipro)
        return opt.compile(task.program(), trainset=seeded_order(trainset, seed), seed=seed, **preset.mipro_compile)

    def projected(self, task: Task, preset: Preset, n_train: int, n_dev: int, n_seeds: int) -> Projection:
        program = task.program()
        prompt, task_calls, bootstrap_examples = mipro_projected_calls(program, task.metric, preset.mipro,
                                                                       preset.mipro_compile, n_train)
        bootstrap = bootstrap_examples * len(program.predictors())  # teacher traces, one per predictor (bound)
        return Projection(teacher=n_seeds * (prompt + bootstrap),
                          student=n_seeds * task_calls + dev_calls(n_dev, n_seeds))
