"""GEPA: reflective instruction evolution, the teacher reading the metric's textual feedback."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import dspy

from src.backends.dspy_compat import ScoreWithFeedback
from src.optimization.arms.base import Arm, Projection, dev_calls, halves, seeded_order

if TYPE_CHECKING:
    from src.backends.session import ModelSession
    from src.optimization.presets import Preset
    from src.tasks.base import Task


def feedback_metric(task: Task) -> Callable[..., Any]:
    """GEPA wants feedback text with the score: say what was expected."""

    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
        score = task.metric(gold, pred)
        expected = gold.get("ia_gold")
        feedback = "Correct." if score >= 1.0 else f"Score {score:.2f}. The expected answer was: {expected!r}."
        return ScoreWithFeedback(score=score, feedback=feedback)

    return metric


class GEPAArm(Arm):
    name = "gepa"

    def compile(self, task: Task, trainset: list[dspy.Example], student: ModelSession, teacher: ModelSession,
                preset: Preset, seed: int) -> dspy.Module:
        opt = dspy.GEPA(metric=feedback_metric(task), reflection_lm=teacher.lm, num_threads=student.concurrency,
                        seed=seed, track_stats=False, **preset.gepa)
        build, rank = halves(seeded_order(trainset, seed))
        return opt.compile(task.program(), trainset=build, valset=rank)

    def projected(self, task: Task, preset: Preset, n_train: int, n_dev: int, n_seeds: int) -> Projection:
        budget = preset.gepa.get("max_metric_calls") or 20 * n_train
        return Projection(teacher=n_seeds * max(1, budget // 4), student=n_seeds * budget + dev_calls(n_dev, n_seeds))
