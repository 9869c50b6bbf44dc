"""User extensions of the registries (models.json, tasks.json), validated with one-line errors naming the file."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from src.errors import ConfigError
from src.registry.specs import (
    ADAPTERS,
    DATA_FILE_SUFFIXES,
    EVAL_ORDERS,
    FILE_HUB_ID,
    KINDS,
    PROVIDERS,
    ModelSpec,
    SplitRef,
    TaskSpec,
    key_problem,
)

_GENERIC_METRICS = ("exact_match", "numeric", "yes_no", "token_f1", "rouge_l", "label")

# The range of every numeric field (models.json and tasks.json): (whole numbers only?, test, what it must be).
# A field not listed here must be a finite number >= 0.
_NUMBERS: dict[str, tuple[bool, Callable[[float], bool], str]] = {
    "params_b": (False, lambda x: x > 0, "a number > 0 (billions of parameters)"),
    "price_in": (False, lambda x: x >= 0, "a number >= 0 ($ per 1M tokens)"),
    "price_out": (False, lambda x: x >= 0, "a number >= 0 ($ per 1M tokens)"),
    "context_length": (True, lambda x: x >= 1, "a whole number >= 1"),
    "num_ctx": (True, lambda x: x >= 1, "a whole number >= 1"),
    "max_tokens": (True, lambda x: x >= 1, "a whole number >= 1"),
    "fixed_temperature": (False, lambda x: 0 <= x <= 2, "a number from 0 to 2"),
    "request_timeout_s": (False, lambda x: x > 0, "a number of seconds > 0"),
    "endpoint_concurrency": (True, lambda x: x >= 1, "a whole number >= 1 (requests in flight per endpoint)"),
    "eval_fraction": (False, lambda x: 0 < x < 1, "a fraction strictly between 0 and 1"),
    "derived_train_fraction": (False, lambda x: 0 < x < 1, "a fraction strictly between 0 and 1"),
    "split_seed": (True, lambda x: x >= 0, "a whole number >= 0"),
}


def _number_problem(name: str, value: Any) -> str | None:
    """What is wrong with a numeric field's value, or None."""
    whole, test, what = _NUMBERS.get(name, (False, lambda x: x >= 0, "a finite number >= 0"))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return what
    if whole and not (isinstance(value, int) or float(value).is_integer()):
        return what
    return None if test(value) else what


def _check_key(path: Path, i: int, key: Any, kind: str) -> str:
    if not isinstance(key, str) or not key.strip():
        raise ConfigError(f"{path}: entry {i}: missing 'key'")
    problem = key_problem(key)
    if problem:
        raise ConfigError(f"{path}: entry {i}: {kind} key {key!r} {problem}")
    return key


def _read_json_list(path: Path, top_key: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    if isinstance(data, dict) and top_key in data:
        data = data[top_key]
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise ConfigError(f"{path}: expected a list of objects (or {{\"{top_key}\": [...]}})")
    return data


def _check_types(path: Path, where: str, entry: dict[str, Any], spec_cls: type, skip: set[str]) -> None:
    known = {f.name: f for f in fields(spec_cls)}
    for name, value in entry.items():
        if name in skip:
            continue
        if name not in known:
            raise ConfigError(f"{path}: {where}: unknown field '{name}' (allowed: {', '.join(sorted(known))})")
        expected = str(known[name].type)
        ok = True
        if value is None:
            ok = "None" in expected
        elif expected.startswith("str | tuple"):  # api_base: a URL, or the tuple _api_base_list made of a list
            ok = (isinstance(value, str) and bool(value.strip())) or isinstance(value, tuple)
        elif expected.startswith("str"):
            ok = isinstance(value, str) and bool(value.strip())
        elif expected.startswith("bool"):
            ok = isinstance(value, bool)
        elif expected.startswith(("float", "int")):
            problem = _number_problem(name, value)
            if problem:
                raise ConfigError(f"{path}: {where}: field '{name}' has invalid value {value!r} (expected {problem})")
        elif expected.startswith("dict"):
            ok = isinstance(value, dict)
        if not ok:
            raise ConfigError(f"{path}: {where}: field '{name}' has invalid value {value!r} (expected {expected})")


def load_models_file(path: Path, builtin: dict[str, ModelSpec]) -> dict[str, ModelSpec]:
    """Entries with a new key add a model; an existing key overrides only the fields given."""
    if not path.is_file():
        return {}
    out: dict[str, Any] = {}
    for i, entry in enumerate(_read_json_list(path, "models")):
        key = _check_key(path, i, entry.get("key"), "model")
        where = f"model '{key}'"
        entry = _api_base_list(path, where, entry)
        _check_types(path, where, entry, ModelSpec, skip=set())
        base = out.get(key) or builtin.get(key)
        if base is not None:
            spec = replace(base, **entry)
        else:
            missing = [f for f in ("provider", "model_id", "kind") if f not in entry]
            if missing:
                raise ConfigError(f"{path}: {where}: missing required field(s) {', '.join(missing)}")
            spec = ModelSpec(**entry)
        if spec.provider not in PROVIDERS:
            raise ConfigError(f"{path}: {where}: provider '{spec.provider}' is not one of {', '.join(PROVIDERS)}")
        if spec.kind not in KINDS:
            raise ConfigError(f"{path}: {where}: kind '{spec.kind}' is not one of {', '.join(KINDS)}")
        if spec.default_adapter is not None and spec.default_adapter not in ADAPTERS:
            raise ConfigError(f"{path}: {where}: default_adapter must be one of {', '.join(ADAPTERS)}")
        if spec.provider == "openai_compatible" and not spec.api_base:
            raise ConfigError(f"{path}: {where}: provider openai_compatible needs 'api_base'")
        out[key] = spec
    return out


def _api_base_list(path: Path, where: str, entry: dict[str, Any]) -> dict[str, Any]:
    """`api_base` may be a list of base URLs serving the same model: a non-empty list of distinct URLs, kept as a
    tuple (a one-item list is the plain string)."""
    value = entry.get("api_base")
    if not isinstance(value, list):
        return entry
    if not value or not all(isinstance(u, str) and u.strip() for u in value):
        raise ConfigError(f"{path}: {where}: field 'api_base' has invalid value {value!r} (expected a base URL or a "
                          f"non-empty list of base URLs)")
    urls = [u.strip().rstrip("/") for u in value]
    if len(set(urls)) != len(urls):
        raise ConfigError(f"{path}: {where}: field 'api_base' lists the same URL twice")
    return {**entry, "api_base": urls[0] if len(urls) == 1 else tuple(urls)}


def load_tasks_file(path: Path, builtin: dict[str, TaskSpec]) -> dict[str, TaskSpec]:
    """A new key declares a generic task (src.tasks.custom); an existing key may override split settings/options."""
    if not path.is_file():
        return {}
    out: dict[str, Any] = {}
    for i, entry in enumerate(_read_json_list(path, "tasks")):
        key = _check_key(path, i, entry.get("key"), "task")
        where = f"task '{key}'"
        base = out.get(key) or builtin.get(key)
        if base is not None:
            allowed = {"eval_fraction", "derived_train_fraction", "split_seed", "eval_order", "options", "title"}
            bad = sorted(set(entry) - allowed - {"key"})
            if bad:
                raise ConfigError(f"{path}: {where}: field(s) {', '.join(bad)} cannot be overridden for a built-in "
                                  f"task (allowed: {', '.join(sorted(allowed))})")
            _check_types(path, where, entry, TaskSpec, skip={"key"})
            out[key] = replace(base, **{k: v for k, v in entry.items() if k != "key"})
        else:
            out[key] = _custom_task(path, where, key, entry)
        if out[key].eval_order not in EVAL_ORDERS:
            raise ConfigError(f"{path}: {where}: eval_order '{out[key].eval_order}' is not one of "
                              f"{', '.join(EVAL_ORDERS)}")
    return out


def _custom_task(path: Path, where: str, key: str, entry: dict) -> TaskSpec:
    required = ("dataset", "inputs", "output", "gold", "metric")
    missing = [f for f in required if f not in entry]
    if missing:
        raise ConfigError(f"{path}: {where}: missing required field(s) {', '.join(missing)}")
    ds = entry["dataset"]
    files = _data_files(path, where, ds) if isinstance(ds, dict) and not ds.get("hub_id") else None
    if files is None and (not isinstance(ds, dict) or not isinstance(ds.get("hub_id"), str)
                          or not isinstance(ds.get("eval_split"), str)):
        raise ConfigError(f"{path}: {where}: 'dataset' needs 'path' (one CSV/JSONL/Parquet file), 'train' and "
                          f"'eval' (two files), or 'hub_id' and 'eval_split' (a dataset in the HF layout)")
    if entry["metric"] not in _GENERIC_METRICS:
        raise ConfigError(f"{path}: {where}: metric '{entry['metric']}' is not one of {', '.join(_GENERIC_METRICS)}")
    inputs = entry["inputs"]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(x, str) and x.isidentifier() for x in inputs):
        raise ConfigError(f"{path}: {where}: 'inputs' must be a non-empty list of field names")
    if not isinstance(entry["output"], str) or not entry["output"].isidentifier():
        raise ConfigError(f"{path}: {where}: 'output' must be a field name")
    if entry.get("group_field") is not None and not (isinstance(entry["group_field"], str) and entry["group_field"]):
        raise ConfigError(f"{path}: {where}: 'group_field' must be a column name")
    labels = entry.get("labels")
    if entry["metric"] == "label" and not (isinstance(labels, list) and labels):
        raise ConfigError(f"{path}: {where}: metric 'label' needs a non-empty 'labels' list")
    folder = ds.get("folder") or (ds["hub_id"].replace("/", "__") if files is None else "")
    if files is None and (not isinstance(folder, str) or key_problem(folder, max_length=255)):
        raise ConfigError(f"{path}: {where}: dataset folder {folder!r} must be one folder name inside the data "
                          f"mirror (letters, digits, '.', '_', '-')")
    for name in ("eval_fraction", "derived_train_fraction", "split_seed"):
        if name in entry:
            problem = _number_problem(name, entry[name])
            if problem:
                raise ConfigError(f"{path}: {where}: field '{name}' has invalid value {entry[name]!r} (expected "
                                  f"{problem})")
    if files is None:
        train_split = ds.get("train_split") or ds["eval_split"]
        train_ref = SplitRef(ds["hub_id"], folder, train_split, ds.get("config"))
        eval_ref = SplitRef(ds["hub_id"], folder, ds["eval_split"], ds.get("config"))
    else:  # the file's path as written rides in `folder`; src.tasks.files reads it
        train_name, eval_name = ("data", "data") if "data" in files else ("train", "eval")
        train_ref = SplitRef(FILE_HUB_ID, files[train_name], train_name)
        eval_ref = SplitRef(FILE_HUB_ID, files[eval_name], eval_name)
    options = {
        "inputs": inputs, "output": entry["output"], "gold": entry["gold"], "metric": entry["metric"],
        "instructions": entry.get("instructions", ""), "labels": labels, "cot": bool(entry.get("cot", False)),
        "id_field": entry.get("id_field"),
        # a column naming each record's source (e.g. a passage id): derived splits keep each source on one side
        "group_field": entry.get("group_field"),
        # user data files: paths as written, relative to the folder of the tasks.json that names them
        "data_files": files, "data_root": str(path.parent.resolve()) if files else None,
    }
    try:
        return TaskSpec(
            key=key, module="src.tasks.domains.custom", title=entry.get("title", key), metric=entry["metric"],
            train=train_ref, eval=eval_ref,
            eval_fraction=float(entry.get("eval_fraction", 0.2)),
            derived_train_fraction=float(entry.get("derived_train_fraction", 0.5)),
            split_seed=int(entry.get("split_seed", 2025)), eval_order=entry.get("eval_order", "seeded"),
            options=options,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {where}: {exc}") from None


def _data_files(path: Path, where: str, ds: dict[str, Any]) -> dict[str, str]:
    """A file dataset's paths by split name ("data", or "train" and "eval"), each checked to exist and to be CSV,
    JSONL or Parquet; paths are relative to the tasks.json's folder."""
    if "path" in ds:
        extra = sorted(set(ds) - {"path"})
        named = {"data": ds["path"]}
    elif "train" in ds or "eval" in ds:
        extra = sorted(set(ds) - {"train", "eval"})
        if not ("train" in ds and "eval" in ds):
            raise ConfigError(f"{path}: {where}: 'dataset' with files needs both 'train' and 'eval' (or one 'path' "
                              f"to be split)")
        named = {"train": ds["train"], "eval": ds["eval"]}
    else:
        raise ConfigError(f"{path}: {where}: 'dataset' needs 'path' (one CSV/JSONL/Parquet file), 'train' and "
                          f"'eval' (two files), or 'hub_id' and 'eval_split' (a dataset in the HF layout)")
    if extra:
        raise ConfigError(f"{path}: {where}: 'dataset' with files takes no field(s) {', '.join(extra)}")
    for split, value in named.items():
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{path}: {where}: dataset '{'path' if split == 'data' else split}' must be a file path")
        file = path.parent / value
        if file.suffix.lower() not in DATA_FILE_SUFFIXES:
            raise ConfigError(f"{path}: {where}: data file {value} must end in {', '.join(DATA_FILE_SUFFIXES)}")
        if not file.is_file():
            raise ConfigError(f"{path}: {where}: data file {value} does not exist (paths are relative to "
                              f"{path.parent})")
    if len(named) == 2 and (path.parent / named["train"]).resolve() == (path.parent / named["eval"]).resolve():
        raise ConfigError(f"{path}: {where}: 'train' and 'eval' name the same file; give it once as 'path' to have "
                          f"it split")
    return named
