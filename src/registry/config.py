"""Config: paths, environment settings and the two registries (built-in + models.json/tasks.json), loaded once."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from src import PROJECT_ROOT
from src.errors import UserError
from src.registry import user_files
from src.registry.models import BUILTIN_MODELS
from src.registry.specs import EVAL_ORDERS, ModelSpec, TaskSpec
from src.registry.tasks import BUILTIN_TASKS


@dataclass
class Config:
    """Paths, environment settings and the two registries, loaded once per command."""

    root: Path
    workdir: Path
    models: dict[str, ModelSpec]
    tasks: dict[str, TaskSpec]
    env_file: Path | None = None

    @property
    def results_dir(self) -> Path:
        return Path(os.environ.get("IA_RESULTS_DIR", self.workdir / "results"))

    @property
    def cache_dir(self) -> Path:
        return self.root / ".cache"

    @property
    def builtin_data_dir(self) -> Path:
        return self.root / "src" / "tasks" / "builtin"

    @property
    def mirror_dir(self) -> Path | None:
        value = os.environ.get("IA_DATA_DIR", "").strip()
        return Path(value).expanduser().resolve() if value else None

    @property
    def ollama_base_url(self) -> str:
        return os.environ.get("OLLAMA_BASE_URL", "http://localhost:11434").rstrip("/")

    def model(self, key: str) -> ModelSpec:
        if key not in self.models:
            raise UserError(f"unknown model '{key}' (known: {', '.join(self.models)}; add one in models.json)")
        return self.models[key]

    def task(self, key: str) -> TaskSpec:
        if key not in self.tasks:
            raise UserError(f"unknown task '{key}' (known: {', '.join(self.tasks)}; add one in tasks.json)")
        return self.tasks[key]

    def with_model(self, spec: ModelSpec) -> Config:
        return replace(self, models={**self.models, spec.key: spec})


def load_config(workdir: Path | None = None) -> Config:
    """Load .env (never overriding the real environment) and the registries extended by models.json/tasks.json."""
    from dotenv import load_dotenv

    workdir = Path(workdir or Path.cwd()).resolve()
    env_file = workdir / ".env"
    if env_file.is_file():
        load_dotenv(env_file, override=False)
    models = {m.key: m for m in BUILTIN_MODELS}
    tasks = {t.key: t for t in BUILTIN_TASKS}
    models.update(user_files.load_models_file(workdir / "models.json", models))
    tasks.update(user_files.load_tasks_file(workdir / "tasks.json", tasks))
    order = os.environ.get("IA_EVAL_ORDER", "").strip()
    if order:  # one switch for every task, e.g. to reproduce the original study's first-N protocol
        if order not in EVAL_ORDERS:
                raise UserError(f"IA_EVAL_ORDER={order!r} is not one of {', '.join(EVAL_ORDERS)}")
        tasks = {k: replace(t, eval_order=order) for k, t in tasks.items()}
    return Config(root=PROJECT_ROOT, workdir=workdir, models=models, tasks=tasks,
                  env_file=env_file if env_file.is_file() else None)
