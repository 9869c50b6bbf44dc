"""Optimizer arms, one per file: MIPROv2 (the study's), BootstrapFewShotWithRandomSearch, GEPA, and zero-shot chain
of thought (a control). ARMS names them in the order the CLI lists them."""

from __future__ import annotations

from src.errors import UserError
from src.optimization.arms.base import Arm, Projection
from src.optimization.arms.bootstrap_rs import BootstrapRSArm
from src.optimization.arms.cot_zero_shot import CoTZeroShotArm
from src.optimization.arms.gepa import GEPAArm
from src.optimization.arms.mipro_v2 import MIPROv2Arm

_ARMS: dict[str, Arm] = {a.name: a for a in (MIPROv2Arm(), BootstrapRSArm(), GEPAArm(), CoTZeroShotArm())}
ARMS = tuple(_ARMS)

__all__ = ["ARMS", "Arm", "Projection", "get_arm"]


def get_arm(name: str) -> Arm:
    if name not in _ARMS:
        raise UserError(f"--optimizer must be one of {', '.join(ARMS)}, not '{name}'")
    return _ARMS[name]
