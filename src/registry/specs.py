"""The registry's vocabulary: ModelSpec, TaskSpec and SplitRef (leaf dataclasses, no project imports)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

PROVIDERS = ("ollama", "openai", "anthropic", "openai_compatible", "embedded")
KINDS = ("local", "api")
ADAPTERS = ("chat", "json", "structured")
EVAL_ORDERS = ("seeded", "file")
DEFAULT_NUM_CTX = 8192

# Model and task keys become parts of result file names (src.results.naming): letters, digits, ".", "_" and "-",
# starting with a letter or digit - never a path separator, never "..", never a hidden file.
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_KEY_LENGTH = 64


def key_problem(key: object, max_length: int = MAX_KEY_LENGTH) -> str | None:
    """Why `key` cannot name a model or task (or one folder), or None when it can."""
    if not isinstance(key, str) or not key:
        return "must be a non-empty string"
    if len(key) > max_length:
        return f"is longer than {max_length} characters"
    if not _KEY.fullmatch(key):
        return ("cannot be part of a file name: use letters, digits, '.', '_' and '-', starting with a letter or "
                "digit")
    return None


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
    api_base: str | tuple[str, ...] | None = None  # one base URL, or several serving the same model (replicas)
    api_key_env: str | None = None
    schema_decoding: bool = False  # backend can enforce a JSON schema while decoding
    default_adapter: str | None = None  # None -> "structured" for embedded, "chat" otherwise
    json_fallback: bool = True  # ChatAdapter retries as JSON on parse failure (doubles calls; off for tiny models)
    loop_guard: bool = True  # embedded models: a reply is stopped once it loops (src.backends.embedded.loops)
    core: bool = False  # one of the study's 6 core models
    frontier_stand_in: bool = False  # a local model that plays the API side of comparisons offline (labelled so)
    request_timeout_s: float | None = None  # longest wait for a reply; None -> the provider's default
    endpoint_concurrency: int | None = None  # requests in flight per endpoint; None -> the provider's default
    note: str = ""

    @property
    def temperature(self) -> float:
        return 0.0 if self.fixed_temperature is None else self.fixed_temperature

    @property
    def api_bases(self) -> tuple[str, ...]:
        """Every base URL the model is served at (models.json `api_base`, a string or a list); () for none."""
        if not self.api_base:
            return ()
        return (self.api_base,) if isinstance(self.api_base, str) else tuple(self.api_base)

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.price_in + output_tokens * self.price_out) / 1_000_000

    def public_dict(self) -> dict[str, Any]:
        """The spec as recorded in metadata: every field is configuration, none is a secret."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


FILE_HUB_ID = "file"  # SplitRef.hub_id of a split read from a user's own file (its path is SplitRef.folder)
DATA_FILE_SUFFIXES = (".csv", ".jsonl", ".parquet")


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
