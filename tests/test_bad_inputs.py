"""Bad input is rejected at the edge, cleanly: a one-line error, a non-zero exit, no traceback, nothing written
outside the results folder and nothing there lost. Each case is one flag, one file or one environment value a user
can get wrong; the count of cases is the "rejected cleanly / tried" figure of the hardening issue.

The runners' main functions are called in-process through the same wrapper as their entry points (fast); a few
cases also go through `python -m src.<runner>` to show the real entry points behave the same.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli

from src.commands.common import run

ENTRY = {  # python -m <entry point> -> its main function
    "src.run_baseline_v2": ("src.commands.baseline", "main"),
    "src.run_optimization": ("src.commands.optimize", "main"),
    "src.run_optimized_eval": ("src.commands.optimized_eval", "main"),
    "src.experiment": ("src.commands.experiment", "main"),
    "src.consolidate_results": ("src.commands.consolidate", "main"),
    "src.tipping_point.runner": ("src.commands.tipping_point", "main"),
    "src.demo_curve_eval": ("src.commands.demo_curves", "main"),
    "src.verify_splits": ("src.commands.verify_splits", "main"),
}
BASE = ["src.run_baseline_v2", "--models", "smollm2-135m", "--tasks", "analysis", "--data", "builtin", "--dry-run"]
OPT = ["src.run_optimization", "--models", "smollm2-135m", "--tasks", "analysis", "--data", "builtin", "--dry-run"]
GPT5 = {"key": "gpt-5.2"}


def _model(**fields) -> dict:
    return {"key": "m1", "provider": "openai_compatible", "model_id": "m", "kind": "local",
            "api_base": "http://127.0.0.1:9/v1", **fields}


def _task(**fields) -> dict:
    return {"key": "capitals", "metric": "exact_match", "inputs": ["country"], "output": "capital",
            "gold": "capital", "dataset": {"hub_id": "me/capitals", "eval_split": "test"}, **fields}


# (id, argv, files to write in the working directory, environment, expected text of the one error line)
CASES = [
    # numeric flags
    ("concurrency-0", BASE + ["--concurrency", "0"], {}, {}, "expected a number >= 1, got 0"),
    ("concurrency-negative", BASE + ["--concurrency", "-3"], {}, {}, "expected a number >= 1, got -3"),
    ("concurrency-text", BASE + ["--concurrency", "many"], {}, {}, "expected a whole number, got 'many'"),
    ("limit-negative", BASE + ["--limit", "-4"], {}, {}, "expected a number >= 0, got -4"),
    ("limit-fraction", BASE + ["--limit", "2.5"], {}, {}, "expected a whole number, got '2.5'"),
    ("train-size-negative", OPT + ["--train-size", "-5"], {}, {}, "expected a number >= 1, got -5"),
    ("dev-size-0", OPT + ["--dev-size", "0"], {}, {}, "expected a number >= 1, got 0"),
    ("seeds-negative", OPT + ["--seeds", "10,-1"], {}, {}, "--seeds needs at least one seed, each >= 0"),
    ("seeds-repeated", OPT + ["--seeds", "10,10"], {}, {}, "no repeats"),
    ("seeds-text", OPT + ["--seeds", "ten"], {}, {}, "--seeds must be comma-separated integers"),
    ("preset-unknown", OPT + ["--preset", "huge"], {}, {}, "--preset must be one of"),
    ("tipping-n-repeated", ["src.tipping_point.runner", "--models", "smollm2-135m", "--n", "1,1", "--dry-run"], {},
     {}, "--n needs distinct integers >= 0"),
    ("bootstrap-too-few", ["src.consolidate_results", "--bootstrap", "5"], {}, {}, "expected a number >= 100"),
    ("workers-0", ["src.verify_splits", "--workers", "0"], {}, {}, "expected a number >= 1, got 0"),
    # --results-dir
    ("results-dir-is-a-file", BASE + ["--results-dir", "{cwd}/afile"], {"afile": "x"}, {}, "is a file, not a folder"),
    ("results-dir-under-a-file", BASE + ["--results-dir", "{cwd}/afile/sub"], {"afile": "x"}, {},
     "afile is a file, not a folder"),
    ("results-dir-read-only", BASE + ["--results-dir", "{readonly}"], {}, {}, "is not writable"),
    ("results-dir-under-read-only", BASE + ["--results-dir", "{readonly}/new/sub"], {}, {}, "is not writable"),
    ("results-dir-env-is-a-file", BASE, {"afile": "x"}, {"IA_RESULTS_DIR": "{cwd}/afile"},
     "is a file, not a folder"),
    ("consolidate-no-results", ["src.consolidate_results", "--results-dir", "{cwd}/nothing-here"], {}, {},
     "no such folder"),
    # keys as file-name components
    ("models-flag-escape", BASE[:1] + ["--models", "x/../../escape", "--dry-run"], {}, {},
     "unknown model 'x/../../escape'"),
    ("models-json-escape", BASE, {"models.json": [_model(key="x/../../escape")]}, {},
     "model key 'x/../../escape' cannot be part of a file name"),
    ("models-json-dotdot", BASE, {"models.json": [_model(key="..")]}, {}, "model key '..' cannot be part of a file"),
    ("models-json-hidden", BASE, {"models.json": [_model(key=".hidden")]}, {}, "cannot be part of a file name"),
    ("models-json-too-long", BASE, {"models.json": [_model(key="m" * 65)]}, {}, "is longer than 64 characters"),
    ("tasks-json-escape", BASE, {"tasks.json": [_task(key="a/b")]}, {}, "task key 'a/b' cannot be part of a file"),
    ("tasks-json-folder-escape", BASE, {"tasks.json": [_task(dataset={"hub_id": "x", "eval_split": "test",
                                                                      "folder": "../../etc"})]}, {},
     "dataset folder '../../etc' must be one folder name"),
    # numeric fields of models.json / tasks.json / study files
    ("tasks-json-eval-fraction-5", BASE, {"tasks.json": [{"key": "agentic", "eval_fraction": 5}]}, {},
     "field 'eval_fraction' has invalid value 5 (expected a fraction strictly between 0 and 1)"),
    ("tasks-json-eval-fraction-0", BASE, {"tasks.json": [{"key": "agentic", "eval_fraction": 0}]}, {},
     "strictly between 0 and 1"),
    ("tasks-json-custom-fraction", BASE, {"tasks.json": [_task(eval_fraction=-0.2)]}, {},
     "field 'eval_fraction' has invalid value -0.2"),
    ("tasks-json-split-seed", BASE, {"tasks.json": [{"key": "math", "split_seed": 1.5}]}, {},
     "field 'split_seed' has invalid value 1.5 (expected a whole number >= 0)"),
    ("models-json-max-tokens-0", BASE, {"models.json": [{**GPT5, "max_tokens": 0}]}, {},
     "field 'max_tokens' has invalid value 0 (expected a whole number >= 1)"),
    ("models-json-timeout-0", BASE, {"models.json": [_model(request_timeout_s=0)]}, {},
     "field 'request_timeout_s' has invalid value 0"),
    ("models-json-temperature-7", BASE, {"models.json": [_model(fixed_temperature=7)]}, {},
     "expected a number from 0 to 2"),
    ("models-json-context-fraction", BASE, {"models.json": [_model(context_length=1.5)]}, {},
     "field 'context_length' has invalid value 1.5"),
    ("models-json-price-infinite", BASE, {"models.json": '[{"key": "gpt-4o", "price_in": Infinity}]'}, {},
     "field 'price_in' has invalid value inf"),
    ("study-concurrency-0", ["src.experiment", "--config", "{cwd}/study.yaml", "--dry-run"],
     {"study.yaml": "students: [smollm2-135m]\ntasks: analysis\nconcurrency: 0\n"}, {},
     "field 'concurrency' must be >= 1"),
    ("study-train-size-negative", ["src.experiment", "--config", "{cwd}/study.yaml", "--dry-run"],
     {"study.yaml": "students: [smollm2-135m]\ntasks: analysis\ntrain_size: -5\n"}, {},
     "field 'train_size' must be >= 1"),
    ("study-seeds-negative", ["src.experiment", "--config", "{cwd}/study.yaml", "--dry-run"],
     {"study.yaml": "students: [smollm2-135m]\ntasks: analysis\nseeds: [1, -2]\n"}, {},
     "field 'seeds' must be a non-empty list of distinct integers >= 0"),
    # environment
    ("eval-order-env", BASE, {}, {"IA_EVAL_ORDER": "sorted"}, "IA_EVAL_ORDER='sorted' is not one of"),
    ("mirror-without-dir", BASE[:5] + ["--data", "mirror", "--dry-run"], {}, {}, "IA_DATA_DIR"),
]
# A few through the real entry points (python -m ...), the rest in-process through the same wrapper.
SUBPROCESS = {"concurrency-0", "results-dir-under-a-file", "models-json-escape", "tasks-json-eval-fraction-5"}


@pytest.fixture
def readonly(tmp_path):
    """A folder nobody can write into: chmod for ordinary users, the immutable attribute for root."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    undo = [lambda: folder.chmod(0o755)]
    if _writable(folder):
        done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
        if done.returncode == 0:
            undo.insert(0, lambda: subprocess.run(["chattr", "-i", str(folder)], capture_output=True))
    try:
        if _writable(folder):
            pytest.skip("cannot make a read-only folder here (root without chattr)")
        yield folder
    finally:
        for step in undo:
            step()


def _writable(folder: Path) -> bool:
    try:
        (folder / ".probe").write_text("x")
        (folder / ".probe").unlink()
        return True
    except OSError:
        return False


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _invoke(argv: list[str], cwd: Path, env: dict[str, str], in_process: bool, monkeypatch, capsys) -> tuple[int, str]:
    if not in_process:
        r = run_cli(argv, env=env, cwd=cwd, timeout=120)
        return r.returncode, r.stderr
    module, name = ENTRY[argv[0]]
    main = getattr(importlib.import_module(module), name)
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", [argv[0], *argv[1:]])
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        run(main)
    return done.value.code, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_rejected_cleanly(case, tmp_path, request, monkeypatch, capsys):
    name, argv, files, env, expected = case
    work = tmp_path / "work"
    work.mkdir()
    results = work / "results"
    results.mkdir()
    (results / "local_baseline_analysis_smollm2-135m.csv").write_text("finished work that must survive\n")
    subs = {"cwd": str(work), "readonly": ""}
    if any("{readonly}" in a for a in argv):
        subs["readonly"] = str(request.getfixturevalue("readonly"))
    for fname, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content)
        (work / fname).write_text(text)
    argv = [a.format(**subs) for a in argv]
    env = {k: v.format(**subs) for k, v in env.items()}
    if "--results-dir" not in argv and "IA_RESULTS_DIR" not in env and argv[0] != "src.verify_splits":
        argv += ["--results-dir", str(results)]
    before = _snapshot(work)

    code, err = _invoke(argv, work, env, name not in SUBPROCESS, monkeypatch, capsys)

    assert code not in (0, None), (name, err)
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, (name, err)
    assert expected in lines[0], (name, lines[0])
    assert _snapshot(work) == before  # nothing written (a results folder included), nothing lost

