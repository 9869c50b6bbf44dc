"""The common flags every command shares (parsed once, same meaning everywhere) and the one-line-error entry wrapper."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from src.commands import budget
from src.commands.console import CONSOLE
from src.errors import PreflightError, UserError
from src.registry.specs import ADAPTERS
from src.sandbox.policy import UNSAFE_FLAG, allow_unsafe_exec
from src.results.files import writable_dir
from src.results.provenance import scrub
from src.tasks.sources import DATA_MODES

if TYPE_CHECKING:
    from src.registry import Config


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        if "prog" not in kwargs:  # name the command as users type it: python -m src.<runner>
            spec = getattr(sys.modules.get("__main__"), "__spec__", None)
            if spec is not None and spec.name:
                kwargs["prog"] = f"python -m {spec.name}"
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, not usage + error
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _at_least(convert: Callable[[str], float], noun: str, minimum: float) -> Callable[[str], float]:
    """An argparse type: `convert(value)`, finite and >= minimum, or a one-line usage error."""
    def parse(value: str) -> float:
        try:
            x = convert(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got '{value}'") from None
        if not math.isfinite(x) or x < minimum:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum:g}, got {value}")
        return x
    return parse


def whole_number(minimum: int = 0) -> Callable[[str], int]:
    return _at_least(int, "a whole number", minimum)


def real_number(minimum: float = 0.0) -> Callable[[str], float]:
    return _at_least(float, "a number", minimum)


def parser(description: str, *, limit_default: int | None = None) -> argparse.ArgumentParser:
    """A parser with the shared flags: --models --tasks --data --results-dir --limit --concurrency --adapter
    --force --dry-run --max-cost (plus --no-cache and --unsafe-exec)."""
    p = Parser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("common flags (same meaning in every runner)")
    g.add_argument("--models", default=None, help="comma-separated model keys (see python -m src.setup_models status; models.json)")
    g.add_argument("--tasks", default="all", help="comma-separated task keys, or 'all' (default)")
    g.add_argument("--data", default="auto", choices=DATA_MODES,
                   help="auto: mirror if IA_DATA_DIR is set, else hub if reachable, else built-in smoke samples")
    g.add_argument("--results-dir", default=None, help="where result files go (default: ./results)")
    g.add_argument("--limit", type=whole_number(), default=limit_default,
                   help=f"eval examples per task: the first N of the split's seeded sample order, the same for every "
                        f"model and arm (0 = all; default {limit_default})")
    g.add_argument("--concurrency", type=whole_number(1), default=None,
                   help="examples in flight at once (default: the backend's: embedded 2, ollama 2, APIs 8)")
    g.add_argument("--adapter", default=None, choices=ADAPTERS,
                   help="how signatures are put to the model (default: structured for embedded, chat otherwise)")
    g.add_argument("--force", action="store_true", help="redo finished work (old files are archived, not lost)")
    g.add_argument("--dry-run", action="store_true", help="print the plan and projected LM calls; run nothing")
    g.add_argument("--no-cache", action="store_true", help="disable DSPy's response cache (.cache/dspy)")
    g.add_argument("-v", "--verbose", action="store_true",
                   help="show the libraries' warnings, per-example errors and step-by-step logs live (they always go "
                        "to results/logs/)")
    budget.add_flag(g)
    g.add_argument(UNSAFE_FLAG, action=_UnsafeExec, help="run the code task's generated programs even where the "
                   "sandbox has no kernel isolation (only rlimits and an interpreter guard; never as root). "
                   "Recorded in every sidecar of the run")
    return p


def add_repeats(p: argparse.ArgumentParser) -> None:
    """--repeats k, for the runners that evaluate units (baseline, optimized eval, single runs)."""
    p.add_argument("--repeats", type=whole_number(1), default=1, metavar="K",
                   help="evaluate every example K times and record each attempt (column `repeat`), at the model's "
                        "temperature, each attempt with its own cache key and seed where the backend takes one; "
                        "consolidation reports stability: an interval over examples and repeats, run-to-run spread, "
                        "per-example agreement (default 1)")


def add_mlflow(p: argparse.ArgumentParser) -> None:
    """--mlflow [TRACKING_URI] for the runners that log units (evaluation and optimization)."""
    p.add_argument("--mlflow", nargs="?", const="", default=None, metavar="TRACKING_URI",
                   help="log each unit as an MLflow run (parameters, metrics with intervals, CSV and sidecar; "
                        "optimization with mlflow.dspy.autolog) to TRACKING_URI (default: $MLFLOW_TRACKING_URI, "
                        "else file:<results-dir>/mlruns); needs requirements/mlflow.txt")


def tracker(args: argparse.Namespace, results: Path):
    """The run's MLflow tracker (one that logs nothing without --mlflow)."""
    from src.tracking.mlflow_log import Tracker, tracking_uri

    return Tracker(tracking_uri(getattr(args, "mlflow", None), results))


def unit_logger(args: argparse.Namespace, results: Path):
    """evaluate_matrix's on_unit hook for --mlflow, or None."""
    if getattr(args, "mlflow", None) is None:
        return None
    from src.tracking.units import log_eval_unit

    t = tracker(args, results)
    return lambda summary, task, spec: log_eval_unit(t, summary, task, spec)


class _UnsafeExec(argparse.Action):
    """--unsafe-exec: a flag whose only effect is the sandbox's opt-in, set the moment it is parsed so that every
    command honours it without code of its own."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=False, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, True)
        allow_unsafe_exec()


def results_dir(args: argparse.Namespace, config: Config) -> Path:
    """--results-dir (else IA_RESULTS_DIR, else ./results), checked before any work: a folder this process can
    write, or can create (a file, a path under a file, a read-only folder are one-line errors)."""
    value = getattr(args, "results_dir", None)
    folder = writable_dir(Path(value) if value else config.results_dir, "--results-dir")
    CONSOLE.attach(folder, _command_name())
    return folder


def _command_name() -> str:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec.name.rsplit(".", 1)[-1] if spec is not None and spec.name else "command"


def distinct_ints(value: str, flag: str) -> list[int]:
    """A comma-separated list of distinct integers >= 0 (--seeds, --n), or a one-line error."""
    try:
        out = [int(v) for v in split_list(value)]
    except ValueError:
        raise UserError(f"{flag} must be comma-separated integers, not '{value}'") from None
    if not out or any(v < 0 for v in out) or len(set(out)) != len(out):
        raise UserError(f"{flag} needs distinct integers >= 0")
    return out


def split_list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


class _Scrubbed:
    """A text stream that removes known secrets (src.results.provenance.scrub) from whatever is written to it, so a
    key echoed in an error message never reaches a terminal or a log file either."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(scrub(text) if isinstance(text, str) else text)
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def run(main: Callable[[], int]) -> None:
    """Run an entry point: user errors become one line on stderr and a non-zero exit, never a traceback; nothing it
    prints carries a known secret."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Scrubbed(out), _Scrubbed(err)
    CONSOLE.install(verbose=any(a in ("-v", "--verbose") for a in sys.argv[1:]))
    try:
        _run(main)
    finally:
        summary = CONSOLE.summary()
        if summary:
            print(summary, file=sys.stderr)
        CONSOLE.uninstall()
        sys.stdout, sys.stderr = out, err


def _run(main: Callable[[], int]) -> None:
    try:
        code = main()
    except PreflightError as exc:
        print("preflight failed (nothing was run):", file=sys.stderr)
        for line in exc.problems:
            print(f"  - {line}", file=sys.stderr)
        code = exc.exit_code
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished examples are saved; rerun the same command to resume", file=sys.stderr)
        code = 130
    except OSError as exc:  # a full disk, a folder made read-only mid-run: the journal keeps what was finished
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: cannot read or write{where} ({exc.strerror or exc}); finished examples are saved, rerun the "
              f"same command to resume", file=sys.stderr)
        code = 2
    sys.stdout.flush()
    raise SystemExit(code or 0)
