"""The MLflow tracker behind --mlflow: one run per unit, written through MLflow's own client; never a key.

Parameters come from the unit's identity header and sidecar (which hold no secret by construction); every text
that reaches MLflow — parameters, tags, artifacts — passes the project's secret scrubber first, and the artifacts
are the result files as written (already scrubbed). DSPy's autolog is switched on only around optimization units.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from src.errors import UserError
from src.results.naming import sidecar_path
from src.results.provenance import scrub

EXPERIMENT = "intelligence-arbitrage"


def tracking_uri(value: str | None, results_dir: Path) -> str | None:
    """--mlflow's URI: the one given; else MLFLOW_TRACKING_URI; else a file store beside the results."""
    if value is None:
        return None
    if value:
        return value
    return os.environ.get("MLFLOW_TRACKING_URI") or (results_dir / "mlruns").resolve().as_uri()


@contextlib.contextmanager
def _scrubbed_logging(mlflow: Any) -> Iterator[None]:
    """While DSPy's autolog runs: every fluent logging call it makes (mlflow.log_params, log_param, log_table,
    log_text, log_dict, set_tag(s), log_artifact) sees only scrubbed values, so an instruction or demo quoting a key
    (a prompt model can echo anything) never reaches the store. Restored on exit."""
    from src.results.provenance import scrub_value

    originals = {name: getattr(mlflow, name) for name in ("log_params", "log_param", "log_table", "log_text",
                                                           "log_dict", "set_tags", "set_tag", "log_artifact")}

    def artifact(local_path: str, artifact_path: str | None = None, **kw: Any) -> Any:
        src = Path(local_path)
        if not src.is_file():
            return originals["log_artifact"](local_path, artifact_path, **kw)
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / src.name
            shutil.copyfile(src, copy)
            try:
                copy.write_text(scrub(copy.read_text(encoding="utf-8")), encoding="utf-8")
            except UnicodeDecodeError:
                return None  # binary: not logged rather than unchecked
            return originals["log_artifact"](str(copy), artifact_path, **kw)

    def table(data: Any, *args: Any, **kw: Any) -> Any:
        if hasattr(data, "to_dict"):
            data = data.to_dict(orient="list")
        return originals["log_table"](scrub_value(data), *args, **kw)

    wrapped = {
        "log_params": lambda params, *a, **kw: originals["log_params"](scrub_value(params), *a, **kw),
        "log_param": lambda key, value, *a, **kw: originals["log_param"](key, scrub_value(value), *a, **kw),
        "log_table": table,
        "log_text": lambda text, *a, **kw: originals["log_text"](scrub(text), *a, **kw),
        "log_dict": lambda d, *a, **kw: originals["log_dict"](scrub_value(d), *a, **kw),
        "set_tags": lambda tags, *a, **kw: originals["set_tags"](scrub_value(tags), *a, **kw),
        "set_tag": lambda key, value, *a, **kw: originals["set_tag"](key, scrub_value(value), *a, **kw),
        "log_artifact": artifact,
    }
    for name, fn in wrapped.items():
        setattr(mlflow, name, fn)
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(mlflow, name, fn)


class Tracker:
    """Logs units to MLflow at `uri` (None: a tracker that logs nothing)."""

    def __init__(self, uri: str | None, experiment: str = EXPERIMENT):
        self.uri = uri
        self._mlflow: Any = None
        if uri is None:
            return
        try:
            import mlflow
        except ImportError:
            raise UserError("--mlflow needs MLflow: pip install -r requirements/mlflow.txt") from None
        if uri.startswith("file:"):
            # MLflow 3 keeps its file store in maintenance mode behind this opt-in; a file: URI asks for it
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            mlflow.set_tracking_uri(uri)
            mlflow.set_experiment(experiment)
        except Exception as exc:  # noqa: BLE001 - any refusal of the store is the user's to fix, in one line
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise UserError(f"--mlflow {scrub(uri)}: MLflow cannot use this tracking store ({scrub(first)})") \
                from None
        self._mlflow = mlflow

    @property
    def enabled(self) -> bool:
        return self._mlflow is not None

    def log_unit(self, name: str, params: dict[str, Any], metrics: dict[str, float], files: list[Path],
                 tags: dict[str, str] | None = None) -> str | None:
        """One run: parameters, metrics (missing values left out), files as artifacts. Returns the run id."""
        if not self.enabled:
            return None
        mlflow = self._mlflow
        with mlflow.start_run(run_name=scrub(name)) as run:
            self.log_active(params, metrics, files, tags)
            return run.info.run_id

    def log_active(self, params: dict[str, Any], metrics: dict[str, float], files: list[Path],
                   tags: dict[str, str] | None = None) -> None:
        """Into the active run (log_unit's own, or an optimization_run): parameters it does not hold yet, metrics
        (missing values left out), tags, files as artifacts (inside an optimization_run they are scrubbed copies)."""
        if not self.enabled:
            return
        mlflow = self._mlflow
        run = mlflow.active_run()
        held = mlflow.get_run(run.info.run_id).data.params if run is not None else {}
        mlflow.log_params({k: scrub(str(v))[:6000] for k, v in params.items() if v is not None and k not in held})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and float(v) == float(v)})
        mlflow.set_tags({k: scrub(str(v)) for k, v in (tags or {}).items()})
        for path in files:
            if path.is_file():
                mlflow.log_artifact(str(path))

    @contextlib.contextmanager
    def optimization_run(self, name: str, params: dict[str, Any]) -> Iterator[None]:
        """A run around one optimization unit with DSPy's autolog on, so every compile and evaluation of the
        optimizer (MIPROv2's trials: instructions, demos, scores) is logged under it."""
        if not self.enabled:
            yield
            return
        mlflow = self._mlflow
        import mlflow.dspy

        # Compiles and evaluations (each trial's program parameters — instructions, demos — and its score) are
        # logged; traces are not (span payloads bypass the scrubber below).
        mlflow.dspy.autolog(log_traces=False, log_traces_from_compile=False, log_traces_from_eval=False,
                            log_compiles=True, log_evals=True, silent=True)
        try:
            with _scrubbed_logging(mlflow), mlflow.start_run(run_name=scrub(name)):
                mlflow.log_params({k: scrub(str(v))[:6000] for k, v in params.items() if v is not None})
                yield
        finally:
            mlflow.dspy.autolog(disable=True, silent=True)

    def log_result(self, result: Any) -> None:
        """Inside optimization_run: the unit's outcome (an OptUnitResult) as metrics, tags and its program files."""
        if not self.enabled:
            return
        mlflow = self._mlflow
        mlflow.log_metrics({k: float(v) for k, v in (("dev_score", result.dev_score),
                                                     ("baseline_dev_score", result.baseline_dev_score),
                                                     ("lm_calls", result.lm_calls), ("wall_s", result.wall_s))
                            if v is not None})
        mlflow.set_tags({"status": result.status, "chosen_seed": str(result.chosen_seed),
                         "message": scrub(result.message)[:500]})
        program = result.program
        if program is not None:
            with tempfile.TemporaryDirectory() as tmp:  # scrubbed copies: a saved instruction may quote anything
                for path in (program, sidecar_path(program)):
                    if path.is_file():
                        copy = Path(tmp) / path.name
                        shutil.copyfile(path, copy)
                        copy.write_text(scrub(copy.read_text(encoding="utf-8", errors="replace")), encoding="utf-8")
                        mlflow.log_artifact(str(copy), "program")
