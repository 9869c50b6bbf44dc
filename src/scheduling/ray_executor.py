"""The Ray executor: the same unit graph, its evaluation work run as Ray tasks on an existing cluster.

Each evaluation unit still runs its bookkeeping here, on the driver (identity check, journal, CSV, sidecar: one
writer, so "each example exactly once" and crash-safe resume hold as in the local executor); its examples are
evaluated by a Ray actor on the node that holds the unit's endpoint resource, which streams each record back as it
finishes (a streaming generator method). A worker killed mid-unit is retried: Ray restarts the actor and the driver
sends it the examples it has not yet recorded (up to RETRIES times), so no example is journaled twice and none is
redone. A driver restarted after a crash resumes from the journals like any run.

Placement: a unit whose model is served at `http://gpu-box-1:11434` asks for one unit of the custom resource
`endpoint:gpu-box-1:11434` when the cluster declares it (`ray start --resources '{"endpoint:gpu-box-1:11434": 8}'`
on the machine next to that backend), otherwise it runs anywhere; embedded units ask for a CPU and start their own
llama.cpp server on the node that runs them. Optimization, best-seed selection and consolidation units run on the
driver (their results are files the driver writes), sending their LM requests from there.

--repeats and --max-cost hold as under the local scheduler: attempts travel with their examples, and the run's
spending cap is one the whole cluster reserves against (src.scheduling.ray_spend).
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from src import PROJECT_ROOT
from src.backends.session import Sessions, SessionOptions
from src.errors import UserError
from src.results.record import Record, record_key
from src.scheduling.graph import UnitGraph, UnitResult
from src.scheduling.local import DEFAULT_MAX_UNITS, LocalExecutor
from src.scheduling.progress import StudyProgress
from src.scheduling.ray_spend import ClusterSpendCap

if TYPE_CHECKING:
    from src.registry import Config

RETRIES = 3  # a unit's Ray task is retried this often when its worker dies
_PASS_ENV = ("IA_DATA_DIR", "DSPY_CACHEDIR", "OLLAMA_BASE_URL", "OPENAI_BASE_URL")  # never a key
# The driver's handles on its warm actors, by (Ray job, actor name), for as long as the driver runs: Ray ends an
# actor once no handle on it is left, so handles held by one evaluator alone would take every node's interpreter
# (and embedded server) down with it, and the next evaluator of the run (another graph, a later study) would start
# them again - seconds of interpreter start and imports per node.
_WARM: dict[tuple[str, str], Any] = {}
_WARM_LOCK = threading.Lock()


def endpoint_resource(url: str) -> str:
    """The Ray custom resource named after an endpoint's host (and port, when the URL gives one)."""
    parsed = urlparse(url)
    return f"endpoint:{parsed.netloc or url}"


def connect(address: str | None) -> None:
    """Join the cluster at `address` (or RAY_ADDRESS; neither: start a local instance). Workers import this project
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
        # Neither given: a new local instance ("local"), never a stale cluster a previous run left recorded in
        # /tmp/ray (ray.init's own default would try to join it); `--ray-address auto` joins this machine's cluster.
        ray.init(address=address or os.environ.get("RAY_ADDRESS") or "local", runtime_env={"env_vars": env},
                 log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError(f"cannot join the Ray cluster at {address or os.environ.get('RAY_ADDRESS')}: "
                        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


class NodeEvaluator:
    """A Ray actor on the node next to one endpoint (or with a CPU, for embedded models): it stays warm across
    units (no interpreter start and import per unit), evaluates several units at once on its threads, and its
    process's endpoint budgets (src.backends.endpoints) bound the requests all of them send to that endpoint."""

    def __init__(self) -> None:
        self._sessions: dict[tuple, Sessions] = {}
        self._lock = threading.Lock()

    def evaluate(self, config: Config, key: str, options: SessionOptions, adapter: str | None, program: Any,
                 examples: list, task: Any, settings: Any, experiment_id: str, arm: str,
                 repeats: list[int] | None = None, bound: int | None = None, spend: Any = None,
                 expected: dict[str, Any] | None = None):
        """A streaming generator: ("node", id), then ("records", [fields]) as examples finish, then ("served",
        {base URL: requests}); or ("refused", why) and nothing evaluated.

        The unit's session is opened as the driver opened its own (the run's options, the task's generation
        `bound`), and its LM must send the `expected` generation settings (those the unit's identity records);
        it reserves against the run's cluster-wide cap `spend` (ray_spend.ClusterSpendCap) and the engine starts
        no example once the run is at its cap. `repeats` numbers each attempt (--repeats)."""
        import ray

        yield ("node", ray.get_runtime_context().get_node_id())
        with self._lock:  # one Sessions per model and settings: backends and embedded servers made once per actor
            made = (config.model(key), options)
            if made not in self._sessions:
                self._sessions[made] = Sessions(config, options)
            # the unit's own LM object (its own served counts); the process's endpoint budgets are shared
            session = self._sessions[made].unit_session(key, max_tokens=options.max_tokens, adapter=adapter,
                                                        bound=bound)
        session.lm.spend = spend
        if expected is not None and generation_settings(session.lm) != expected:
            yield ("refused", f"the Ray node would send other generation settings ({generation_settings(session.lm)})"
                              f" than the run records ({expected}); nothing was evaluated there")
            return
        if spend is not None:
            settings = replace(settings, stop=spend.reached_lately)
        yield from _stream(session, program, examples, task, settings, experiment_id, arm, repeats)
        yield ("served", session.lm.router.served_snapshot() if session.lm.router is not None else {})


def generation_settings(lm: Any) -> dict[str, Any]:
    """What an LM sends with every request apart from where and with which key: equal on the driver and on the node
    evaluating a unit, or the unit's recorded identity would not be what made its records."""
    return {k: v for k, v in lm.kwargs.items() if k not in ("api_key", "api_base", "base_url")}


def _stream(session: Any, program: Any, examples: list, task: Any, settings: Any, experiment_id: str, arm: str,
            repeats: list[int] | None):
    """Evaluate on a thread; yield ("records", [fields, ...]) with every record finished since the last yield. (Each
    yield of a Ray streaming generator costs a report to the driver - ~50-100 ms on a loaded machine - so records
    that finish together travel together.)"""
    from src.evaluation.engine import evaluate

    out: queue.SimpleQueue = queue.SimpleQueue()
    done = object()

    def work() -> None:
        try:
            evaluate(program, examples, task, session.spec, session.lm, session.adapter, settings, experiment_id,
                     arm, lambda r: out.put(r.__dict__.copy()), repeats=repeats, lm_for=session.attempt_lm)
            out.put(done)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the generator, so Ray reports the task failed
            out.put(exc)

    threading.Thread(target=work, daemon=True).start()
    finished = False
    while not finished:
        batch = [out.get()]
        while True:
            try:
                batch.append(out.get_nowait())
            except queue.Empty:
                break
        records = []
        for item in batch:
            if isinstance(item, BaseException):
                raise item
            if item is done:
                finished = True
            else:
                records.append(item)
        if records:
            yield ("records", records)


def _warm_key(name: str) -> tuple[str, str]:
    import ray

    return ray.get_runtime_context().get_job_id(), name


class RayEvaluator:
    """An engine stand-in for run_unit: evaluation on a cluster node, records streamed back to this process."""

    def __init__(self, config: Config, sessions: Sessions, placements: dict[str, str]):
        import ray

        self.config, self.sessions = config, sessions
        self.available = set(ray.cluster_resources())
        # Ray restarts a dead actor, but never replays its stream (records already journaled, in another order):
        # the driver re-sends only the examples it has not recorded.
        self._actor_cls = ray.remote(max_restarts=RETRIES, max_task_retries=0, max_concurrency=64)(NodeEvaluator)
        self.placements = placements  # unit label -> node id that ran it (tests check placement)
        self._lock = threading.Lock()

    def placement(self, key: str) -> tuple[str, dict[str, Any]]:
        """(actor name, its resource request): the node holding the model's endpoint resource; a CPU for
        embedded models; anywhere for a model whose endpoints no node declares (or several endpoints)."""
        backend = self.sessions.backend(key)
        if backend.provider == "embedded":
            return "cpu", {"num_cpus": 1}
        wanted = [endpoint_resource(u) for u in backend.base_urls()]
        named = [r for r in wanted if r in self.available]
        if len(named) == 1 and len(wanted) == 1:
            return named[0], {"num_cpus": 0, "resources": {named[0]: 0.001}}
        return "anywhere", {"num_cpus": 0}

    def _await_actor(self, key: str, timeout_s: float = 120.0) -> None:
        """Wait for Ray to restart the model's actor (a new interpreter on that node); one that cannot be
        restarted is replaced by a new actor."""
        import ray

        name, _ = self.placement(key)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                ray.get(self.actor(key).__ray_ready__.remote(), timeout=10)
                return
            except ray.exceptions.ActorDiedError:
                with _WARM_LOCK:
                    _WARM.pop(_warm_key(name), None)
            except (ray.exceptions.ActorUnavailableError, ray.exceptions.GetTimeoutError):
                time.sleep(0.5)

    def actor(self, key: str) -> Any:
        name, request = self.placement(key)
        warm = _warm_key(name)
        with _WARM_LOCK:
            if warm not in _WARM:  # named: every evaluator of this driver shares the node's warm actor
                _WARM[warm] = self._actor_cls.options(name=f"ia-evaluator:{name}", get_if_exists=True,
                                                      **request).remote()
            return _WARM[warm]

    def __call__(self, program, examples, task, spec, lm, adapter, settings, experiment_id, arm, on_record,
                 repeats=None, lm_for=None):
        import ray

        from src.backends.adapters import ChatAdapter, JSONAdapter, StructuredAdapter

        name = "structured" if isinstance(adapter, StructuredAdapter) else "json" if isinstance(adapter, JSONAdapter) \
            else "chat" if isinstance(adapter, ChatAdapter) else None
        opts = SessionOptions(adapter=name, concurrency=settings.concurrency, cache=self.sessions.options.cache,
                              max_tokens=self.sessions.options.max_tokens)
        # the unit's generation cap as its driver session applies it (the task's bound, src.tasks.bounds): the node
        # opens its session with the same bound and refuses to evaluate unless its LM sends these same settings
        bound = lm.kwargs.get("max_tokens") or lm.kwargs.get("max_completion_tokens")
        spend = getattr(lm, "spend", None)
        if spend is not None and not isinstance(spend, ClusterSpendCap):  # a copy on each node would overspend
            raise RuntimeError("the run's spending cap is not shared by the cluster: RayExecutor.evaluator() must "
                               "be made before any session is opened")
        settings = type(settings)(concurrency=settings.concurrency, progress=False, label=settings.label,
                                  deadline_s=settings.deadline_s)
        attempts = list(repeats) if repeats is not None else [0] * len(examples)
        seen: set[str] = set()
        records: list[Record] = []
        for attempt in range(RETRIES + 1):
            todo = [(ex, r) for ex, r in zip(examples, attempts) if record_key(ex.id, r) not in seen]
            if not todo or (attempt and spend is not None and spend.reached):
                break  # at the cap, a worker's death sends nothing again: the next run does the rest
            gen = self.actor(spec.key).evaluate.options(num_returns="streaming").remote(
                self.config, spec.key, opts, name, program, [ex for ex, _ in todo], task, settings, experiment_id,
                arm, [r for _, r in todo], bound, spend, generation_settings(lm))
            try:
                for ref in gen:
                    kind, value = ray.get(ref)
                    if kind == "node":
                        with self._lock:
                            self.placements[f"{spec.key}/{task.key}/{arm}"] = value
                        continue
                    if kind == "refused":
                        raise UserError(f"{spec.key}/{task.key}: {value}")
                    if kind == "served":  # which endpoints served the unit, for its sidecar
                        if getattr(lm, "router", None) is not None:
                            lm.router.add_served(value)
                        continue
                    for fields in value:
                        rec = Record(**fields)
                        if rec.key in seen:
                            continue
                        seen.add(rec.key)
                        on_record(rec)  # journaled here, on the driver, as it arrives
                        records.append(rec)
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.ObjectLostError,
                    ray.exceptions.OwnerDiedError, ray.exceptions.ActorDiedError,
                    ray.exceptions.ActorUnavailableError) as exc:  # Ray restarts the actor (max_restarts)
                if attempt == RETRIES:
                    raise UserError(f"{spec.key}/{task.key}: the Ray worker evaluating it died {RETRIES + 1} times "
                                    f"({type(exc).__name__}); finished examples are saved, rerun to resume") from None
                print(f"note: {spec.key}/{task.key}: its Ray worker died ({type(exc).__name__}); the "
                      f"{len(examples) - len(seen)} attempts not yet recorded are sent again", file=sys.stderr,
                      flush=True)
                self._await_actor(spec.key)
        return records


class RayExecutor:
    """The local executor's scheduling (units start when their inputs exist), evaluation on the cluster."""

    def __init__(self, address: str | None = None, max_units: int = DEFAULT_MAX_UNITS, report_every_s: float = 30.0):
        self.address, self.max_units, self.report_every_s = address, max_units, report_every_s
        self.placements: dict[str, str] = {}

    def evaluator(self, config: Config, sessions: Sessions) -> RayEvaluator:
        """Join the cluster; the run's spending cap (--max-cost) becomes one the whole cluster shares. Made before
        any of `sessions`' sessions is opened (they take the run's cap when they open)."""
        connect(self.address)
        if sessions.spend is not None and not isinstance(sessions.spend, ClusterSpendCap):
            sessions.spend = ClusterSpendCap.start(sessions.spend)  # type: ignore[assignment]
        return RayEvaluator(config, sessions, self.placements)

    def run(self, graph: UnitGraph, progress: StudyProgress | None = None) -> dict[str, UnitResult]:
        return LocalExecutor(self.max_units, self.report_every_s).run(graph, progress)
