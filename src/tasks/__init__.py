"""Tasks own what is asked and how it is scored: the Task contract (base, example), data sources and splits,
shared answer metrics, one module per dataset under domains/, and the built-in samples under builtin/."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from src.errors import UserError

if TYPE_CHECKING:
    from src.registry import Config
    from src.tasks.base import Task

_instances: dict[tuple[int, str], Task] = {}


def get_task(key: str, config: Config) -> Task:
    """The Task for `key`; each domain module exposes its class as TASK."""
    spec = config.task(key)
    cache_key = (id(config), key)
    if cache_key not in _instances:
        try:
            module = importlib.import_module(spec.module)
        except ImportError as exc:
            raise UserError(f"task '{key}': cannot import its module {spec.module} ({exc})") from None
        _instances[cache_key] = module.TASK(spec, config)
    return _instances[cache_key]


def resolve_task_keys(value: str, config: Config) -> list[str]:
    """--tasks all | a,b,c  -> validated keys in registry order for 'all', as given otherwise."""
    if value.strip() in ("all", ""):
        return list(config.tasks)
    keys = [k.strip() for k in value.split(",") if k.strip()]
    for k in keys:
        config.task(k)
    return list(dict.fromkeys(keys))
