"""The registry owns what can be run: model and task specs, the built-in entries, models.json / tasks.json
extensions, study files, and the Config that ties them to paths and the environment."""

from src.registry.config import Config, load_config
from src.registry.specs import ModelSpec, SplitRef, TaskSpec

__all__ = ["Config", "ModelSpec", "SplitRef", "TaskSpec", "load_config"]
