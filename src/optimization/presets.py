"""Optimization budgets: a budget is a named preset of optimizer settings, never ad-hoc flags scattered over runs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from src.errors import UserError


@dataclass(frozen=True)
class Preset:
    """Fixed optimizer settings: a budget is a preset, never ad-hoc flags scattered over runs."""

    name: str
    train_size: int
    dev_size: int
    mipro: dict[str, Any]  # MIPROv2(...) arguments
    mipro_compile: dict[str, Any]  # MIPROv2.compile(...) arguments
    bootstrap_rs: dict[str, Any]
    gepa: dict[str, Any]
    max_tokens: int | None = None  # cap on generation during optimization (None: the model's default)


PRESETS: dict[str, Preset] = {
    # Proves the pipeline in minutes on 2 cores with the 135M embedded model: tiny sets, 3 candidates (DSPy keeps
    # 3 fixed demo sets - none, labelled only, one teacher-bootstrapped - so 3 is the least that bootstraps), 2 trials,
    # no data/program-aware proposer calls.
    "quick": Preset("quick", train_size=6, dev_size=4,
                    mipro=dict(auto=None, num_candidates=3, max_bootstrapped_demos=1, max_labeled_demos=1),
                    mipro_compile=dict(num_trials=2, minibatch=False, program_aware_proposer=False,
                                       data_aware_proposer=False, fewshot_aware_proposer=False,
                                       view_data_batch_size=3),
                    bootstrap_rs=dict(max_bootstrapped_demos=1, max_labeled_demos=1, num_candidate_programs=2),
                    gepa=dict(max_metric_calls=16, reflection_minibatch_size=2), max_tokens=192),
    # The original study's MIPROv2 configuration, exactly (train 50 -> 40 optimizer-train / 10 dev).
    "study": Preset("study", train_size=40, dev_size=10,
                    mipro=dict(auto=None, num_candidates=7, max_bootstrapped_demos=3, max_labeled_demos=5,
                               init_temperature=1.0),
                    mipro_compile=dict(num_trials=10, minibatch=True, minibatch_size=25),
                    bootstrap_rs=dict(max_bootstrapped_demos=4, max_labeled_demos=4, num_candidate_programs=10),
                    gepa=dict(auto="light")),
    # DSPy's light budget.
    "standard": Preset("standard", train_size=100, dev_size=50,
                       mipro=dict(auto="light", max_bootstrapped_demos=3, max_labeled_demos=5),
                       mipro_compile=dict(),
                       bootstrap_rs=dict(max_bootstrapped_demos=4, max_labeled_demos=4, num_candidate_programs=6),
                       gepa=dict(auto="light")),
    # DSPy's medium budget.
    "full": Preset("full", train_size=300, dev_size=100,
                   mipro=dict(auto="medium", max_bootstrapped_demos=3, max_labeled_demos=5),
                   mipro_compile=dict(),
                   bootstrap_rs=dict(max_bootstrapped_demos=4, max_labeled_demos=4, num_candidate_programs=16),
                   gepa=dict(auto="medium")),
}


def budget_sha(p: Preset) -> str:
    """Identity of a preset's settings: a unit optimized under other settings of the same name is not reused."""
    return hashlib.sha256(json.dumps(asdict(p), sort_keys=True, default=str).encode()).hexdigest()[:12]


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UserError(f"--preset must be one of {', '.join(PRESETS)}, not '{name}'")
    return PRESETS[name]
