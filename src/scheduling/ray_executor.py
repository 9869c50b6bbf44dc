"""The Ray executor: the same unit graph, its evaluation work run as Ray tasks on an existing cluster.

Each evaluation unit still runs its bookkeeping here, on the driver (identity check, journal, CSV, sidecar: one
writer, so "each example exactly once" and crash-safe resume hold as in the local executor); its examples are
evaluated by a Ray task on the node that holds the unit's endpoint resource, which streams each record back as it
finishes (a Ray generator task). A worker killed mid-unit is retried: the driver submits a new Ray task for the
examples it has not yet recorded (up to RETRIES times), so no example is journaled twice and none is redone. A
driver restarted after a crash resumes from the journals like any run.

Placement: a unit whose model is served at `http://gpu-box-1:11434` asks for one unit of the custom resource
`endpoint:gpu-box-1:11434` when the cluster declares it (`ray start --resources '{"endpoint:gpu-box-1:11434": 8}'`
on the machine next to that backend), otherwise it runs anywhere; embedded units ask for a CPU and start their own
llama.cpp server on the node that runs them. Optimization, best-seed selection and consolidation units run on the
driver (their results are files the driver writes), sending their LM requests from there.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from src import PROJECT_ROOT
from src.backends.session import Sessions, SessionOptions
from src.errors import UserError
from src.results.record import Record
from src.scheduling.graph import UnitGraph, UnitResult
from src.scheduling.local import DEFAULT_MAX_UNITS, LocalExecutor
from src.scheduling.progress import StudyProgress

if TYPE_CHECKING:
    from src.registry import Config

RETRIES = 3  # a unit's Ray task is retried this often when its worker dies
_PASS_ENV = ("IA_DATA_DIR", "DSPY_CACHEDIR", "OLLAMA_BASE_URL", "OPENAI_BASE_URL")  # never a key


def endpoint_resource(url: str) -> str:
    """The Ray custom resource named after an endpoint's host (and port, when the URL gives one)."""
    parsed = urlparse(url)
    return f"endpoint:{parsed.netloc or url}"


def connect(address: str | None) -> None:
    """Join the cluster at `address` (or RAY_ADDRESS; neither: start a local one). Workers import this project
    from the same path and read no secret from the driver: each node needs its own keys in its environment."""
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install -r requirements/ray.txt") from None
    if ray.is_initialized():
        return
    env = {k: os.environ[k] for k in _PASS_ENV if os.environ.get(k)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]))
    try:
        ray.init(address=address or os.environ.get("RAY_ADDRESS") or None, runtime_env={"env_vars": env},
                 log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError(f"cannot join the Ray cluster at {address or os.environ.get('RAY_ADDRESS')}: "
                        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def _evaluate_on_node(config: Config, key: str, options: SessionOptions, adapter: str | None, program: Any,
                      examples: list, task: Any, settings: Any, experiment_id: str, arm: str):
    """Ray generator task: evaluate on this node, yielding ("node", id) then each record's fields as it finishes."""
    import ray

    from src.evaluation.engine import evaluate

    yield ("node", ray.get_runtime_context().get_node_id())
    session = Sessions(config, options).session(key, max_tokens=options.max_tokens, adapter=adapter)
    out: queue.SimpleQueue = queue.SimpleQueue()
    done = object()

    def work() -> None:
        try:
            evaluate(program, examples, task, session.spec, session.lm, session.adapter, settings, experiment_id,
                     arm, lambda r: out.put(("record", r.__dict__.copy())))
            out.put(done)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the generator, so Ray reports the task failed
            out.put(exc)

    threading.Thread(target=work, daemon=True).start()
    while True:
        item = out.get()
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


class RayEvaluator:
    """An engine stand-in for run_unit: evaluation on a cluster node, records streamed back to this process."""

    def __init__(self, config: Config, sessions: Sessions, placements: dict[str, str]):
        import ray

        self.config, self.sessions = config, sessions
        self.available = set(ray.cluster_resources())
        # Ray's own retry would replay the whole stream (records already journaled, in another order): the driver
        # re-sends only the examples it has not recorded instead.
        self._remote = ray.remote(max_retries=0, retry_exceptions=False)(_evaluate_on_node)
        self.placements = placements  # unit label -> node id that ran it (tests check placement)
        self._lock = threading.Lock()

    def resources(self, key: str) -> dict[str, Any]:
        backend = self.sessions.backend(key)
        if backend.provider == "embedded":
            return {"num_cpus": 1}
        wanted = [endpoint_resource(u) for u in backend.base_urls()]
        named = [r for r in wanted if r in self.available]
        return {"num_cpus": 0, "resources": {named[0]: 1}} if len(named) == 1 and len(wanted) == 1 else \
            {"num_cpus": 0}

    def __call__(self, program, examples, task, spec, lm, adapter, settings, experiment_id, arm, on_record):
        import ray

        from src.backends.adapters import ChatAdapter, JSONAdapter, StructuredAdapter

        name = "structured" if isinstance(adapter, StructuredAdapter) else "json" if isinstance(adapter, JSONAdapter) \
            else "chat" if isinstance(adapter, ChatAdapter) else None
        opts = SessionOptions(adapter=name, concurrency=settings.concurrency, cache=self.sessions.options.cache,
                              max_tokens=self.sessions.options.max_tokens)
        settings = type(settings)(concurrency=settings.concurrency, progress=False, label=settings.label,
                                  deadline_s=settings.deadline_s)
        seen: set[str] = set()
        records: list[Record] = []
        for attempt in range(RETRIES + 1):
            todo = [ex for ex in examples if ex.id not in seen]
            if not todo:
                break
            gen = self._remote.options(**self.resources(spec.key)).remote(
                self.config, spec.key, opts, name, program, todo, task, settings, experiment_id, arm)
            try:
                for ref in gen:
                    kind, value = ray.get(ref)
                    if kind == "node":
                        with self._lock:
                            self.placements[f"{spec.key}/{task.key}/{arm}"] = value
                        continue
                    rec = Record(**value)
                    if rec.example_id in seen:
                        continue
                    seen.add(rec.example_id)
                    on_record(rec)  # journaled here, on the driver, as it arrives
                    records.append(rec)
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.ObjectLostError,
                    ray.exceptions.OwnerDiedError, ray.exceptions.TaskUnschedulableError) as exc:
                if attempt == RETRIES:
                    raise UserError(f"{spec.key}/{task.key}: the Ray worker evaluating it died {RETRIES + 1} times "
                                    f"({type(exc).__name__}); finished examples are saved, rerun to resume") from None
                print(f"note: {spec.key}/{task.key}: its Ray worker died ({type(exc).__name__}); the "
                      f"{len(examples) - len(seen)} examples not yet recorded are sent again", file=sys.stderr,
                      flush=True)
        return records


class RayExecutor:
    """The local executor's scheduling (units start when their inputs exist), evaluation on the cluster."""

    def __init__(self, address: str | None = None, max_units: int = DEFAULT_MAX_UNITS, report_every_s: float = 30.0):
        self.address, self.max_units, self.report_every_s = address, max_units, report_every_s
        self.placements: dict[str, str] = {}

    def evaluator(self, config: Config, sessions: Sessions) -> RayEvaluator:
        connect(self.address)
        return RayEvaluator(config, sessions, self.placements)

    def run(self, graph: UnitGraph, progress: StudyProgress | None = None) -> dict[str, UnitResult]:
        return LocalExecutor(self.max_units, self.report_every_s).run(graph, progress)
