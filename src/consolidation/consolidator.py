"""The analysis behind the golden files: arm scores, paired deltas, scoreboard, variance, economics, document."""

from __future__ import annotations

import dataclasses
import json
import math
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from src.stats import core as stats
from src.stats.comparison import Metric, PairedDelta, paired_delta, score_interval
from src.consolidation.format import ci_txt, csv_text, is_missing, money, num, pct, pts, pval, safe_name
from src.consolidation.inputs import (
    MAIN_PHASES,
    TaskResolver,
    Unit,
    load_units,
    model_info,
    no_registry,
    task_info,
)
from src.consolidation.studies import PhaseFiles
from src.errors import UserError
from src.report import Cell, Plot, ReportDoc, Section, Table, to_markdown, write_report
from src.results.record import Record, now_iso, record_score

if TYPE_CHECKING:
    from src.registry import Config
    from src.tasks.example import Score

MARKER = ".golden"  # identifies an output folder this tool made (and may therefore replace)



# ---- statistics per arm / comparison -------------------------------------------------------------------------------

def _score(rec: Record) -> Score:
    return record_score(rec)


@dataclass
class ArmStat:
    unit: Unit
    n: int
    score: float
    lo: float
    hi: float
    method: str
    n_correct: int


@dataclass
class Paired(PairedDelta):
    """b vs a on their shared example ids (the fields of PairedDelta), with the two arms and Holm's verdict."""

    a: Unit = None  # type: ignore[assignment]
    b: Unit = None  # type: ignore[assignment]
    holm_p: float = float("nan")
    holm_reject: bool = False

    @property
    def significant(self) -> bool:
        return self.verdict in ("improved", "hurt")


def _seed(base: int, label: str) -> int:
    return (base * 1_000_003 + zlib.crc32(label.encode())) % (2**32)



def _max_demos(sidecar: dict[str, Any]) -> int | None:
    """Most demos an optimization sidecar's budget allows: (max bootstrapped + max labeled) x predictors."""
    budgets = sidecar.get("budgets") if isinstance(sidecar.get("budgets"), dict) else {}
    key = {"mipro_v2": "mipro", "miprov2": "mipro", "bootstrap_rs": "bootstrap_rs"}.get(
        str(sidecar.get("optimizer") or "").lower())
    cfg = budgets.get(key) if key else None
    if not isinstance(cfg, dict):
        return sidecar.get("max_demos") if isinstance(sidecar.get("max_demos"), int) else None
    try:
        per = int(cfg.get("max_bootstrapped_demos") or 0) + int(cfg.get("max_labeled_demos") or 0)
    except (TypeError, ValueError):
        return None
    preds = sidecar.get("predictors")
    return per * (len(preds) if isinstance(preds, dict) and preds else 1)


# ---- options and result --------------------------------------------------------------------------------------------

@dataclass
class Options:
    results_dir: Path
    out: Path
    strict: bool = False
    local_cost_per_hour: float | None = None
    n_boot: int = 2000
    seed: int = 0


@dataclass
class Consolidation:
    out: Path
    warnings: list[str]
    notes: list[str]
    smoke: list[str]
    arms: dict[tuple[str, str, str], ArmStat] = field(default_factory=dict)
    deltas: dict[tuple[str, str], Paired] = field(default_factory=dict)


# ---- the consolidator ----------------------------------------------------------------------------------------------

class Consolidator:
    def __init__(self, opts: Options, config: Config | None, resolver: TaskResolver | None = None):
        self.opts = opts
        self.config = config
        self.resolver = resolver

    # -- inputs --------------------------------------------------------------------------------------------------
    def load(self) -> None:
        rd = self.opts.results_dir
        if not rd.is_dir():
            raise UserError(f"{rd}: results folder does not exist (give --results-dir)")
        self.units, self.notes = load_units(rd)
        if not self.units:
            raise UserError(f"{rd}: no result CSVs found at its top level (nothing to consolidate)")
        by_model: dict[str, list[Unit]] = defaultdict(list)
        by_task: dict[str, list[Unit]] = defaultdict(list)
        for u in self.units:
            by_model[u.model].append(u)
            by_task[u.task].append(u)
        self.minfo = {m: model_info(m, us, self.config) for m, us in by_model.items()}
        for mi in self.minfo.values():
            if mi.source != "registry":
                self.notes.append(f"model `{mi.key}` is not in the registry: kind '{mi.kind}' taken from its "
                                  f"{mi.source}")
        resolver = self.resolver or no_registry
        self.tinfo = {t: task_info(t, us, resolver, self.config) for t, us in by_task.items()}
        for ti in self.tinfo.values():
            if ti.note:
                self.notes.append(ti.note)
        self.models = sorted(self.minfo, key=lambda m: (self.minfo[m].kind != "local", self.minfo[m].order, m))
        self.tasks = sorted(self.tinfo, key=lambda t: (self.tinfo[t].order, t))
        extra = sorted({u.phase for u in self.units} - set(MAIN_PHASES))
        self.phases = [p for p in MAIN_PHASES if any(u.phase == p for u in self.units)] + extra
        self.extra_phases = extra
        self.unit = {(u.phase, u.model, u.task): u for u in self.units}
        self.sidecars = self._load_sidecars()
        self.check_sidecars()
        self.later_phases = PhaseFiles.load(rd, self.notes)

    def _load_sidecars(self) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """results/optimized_programs/*.meta.json keyed by (model, task); fields read defensively."""
        folder = self.opts.results_dir / "optimized_programs"
        out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        if not folder.is_dir():
            return out
        known_models = sorted(set(self.minfo) | set(self.config.models if self.config else []), key=len,
                              reverse=True)
        known_tasks = sorted(set(self.tinfo) | set(self.config.tasks if self.config else []), key=len, reverse=True)
        for path in sorted(folder.glob("*.meta.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
            except (OSError, ValueError) as exc:
                self.notes.append(f"optimization sidecar `{path.name}` cannot be read ({exc}): ignored")
                continue
            model, task, optimizer = data.get("model"), data.get("task"), data.get("optimizer")
            if not (model and task):
                stem = path.name[: -len(".meta.json")]
                for km in known_models:
                    if stem.startswith(km + "_"):
                        rest = stem[len(km) + 1:]
                        kt = next((t for t in known_tasks if rest.startswith(t + "_") or rest == t), None)
                        if kt:
                            model, task = model or km, task or kt
                            optimizer = optimizer or rest[len(kt) + 1:] or None
                        break
            if not (model and task):
                self.notes.append(f"optimization sidecar `{path.name}` names no model/task: ignored")
                continue
            data = dict(data, _path=path, model=model, task=task, optimizer=optimizer)
            out[(str(model), str(task))].append(data)
        return out

    def check_sidecars(self) -> None:
        """Note optimized arms whose sidecar describes another program than the one evaluated."""
        for (phase, m, t), u in self.unit.items():
            if phase != "optimized":
                continue
            sc = self.sidecar_for(m, t)
            evaluated, described = u.m("program", "sha256"), (sc or {}).get("program_sha256")
            if evaluated and described and evaluated != described:
                self.notes.append(f"`{u.name}` was evaluated with program sha256 {str(evaluated)[:12]}… but "
                                  f"`{sc['_path'].name}` now describes {str(described)[:12]}… (re-optimized "
                                  f"since?): its demo counts and optimization cost may not belong to this result")

    def sidecar_for(self, model: str, task: str) -> dict[str, Any] | None:
        """The optimization sidecar behind an optimized arm: matched by optimizer / program file, or the only one."""
        cands = self.sidecars.get((model, task), [])
        if not cands:
            return None
        u = self.unit.get(("optimized", model, task))
        if u is not None:
            opt = u.m("program", "optimizer")
            if opt:
                match = [c for c in cands if str(c.get("optimizer")) == str(opt)]
                if len(match) == 1:
                    return match[0]
            pfile = u.m("program", "file")
            if pfile:
                want = Path(str(pfile)).name.rsplit(".", 1)[0]
                match = [c for c in cands if c["_path"].name[: -len(".meta.json")] == want]
                if len(match) == 1:
                    return match[0]
        return cands[0] if len(cands) == 1 else None

    # -- comparability -------------------------------------------------------------------------------------------
    def comparability(self) -> list[str]:
        """One line per problem: DSPy versions, data sources, eval splits or example sets that differ."""
        issues: list[str] = []

        def grouped(units: list[Unit], key: Callable[[Unit], Any]) -> dict[Any, list[str]]:
            g: dict[Any, list[str]] = defaultdict(list)
            for u in units:
                v = key(u)
                if v is not None:
                    g[v].append(u.name)
            return g

        def listing(g: dict[Any, list[str]], fmt: Callable[[Any], str] = str) -> str:
            """Smaller groups first, each file named; the largest group by count when it has more than 3 files."""
            groups = sorted(g.items(), key=lambda kv: (len(kv[1]), fmt(kv[0])))
            parts = []
            for i, (v, names) in enumerate(groups):
                if i == len(groups) - 1 and len(names) > 3:
                    parts.append(f"{fmt(v)}: the other {len(names)} file(s)")
                else:
                    parts.append(f"{fmt(v)}: {', '.join(f'`{n}`' for n in names)}")
            return "; ".join(parts)

        g = grouped(self.units, lambda u: u.dspy_version)
        if len(g) > 1:
            issues.append(f"DSPy versions differ — {listing(g)}")
        for u in self.units:
            saved = u.m("program", "saved_dspy")
            if u.m("program", "version_mismatch") or (saved and u.dspy_version and saved != u.dspy_version):
                issues.append(f"`{u.name}`: its program was saved under DSPy {saved or '?'} and evaluated under "
                              f"DSPy {u.dspy_version or '?'}")
        for t in self.tasks:
            tu = [u for u in self.units if u.task == t]
            g = grouped(tu, lambda u: u.data_source)
            if len(g) > 1:
                issues.append(f"task {t}: datasets differ (data_source) — {listing(g)}")
            g = grouped(tu, lambda u: u.eval_fingerprint)
            if len(g) > 1:
                issues.append(f"task {t}: eval splits differ (eval_fingerprint) — {listing(g, lambda v: str(v)[:12])}")
            g = grouped(tu, lambda u: frozenset(u.ids))
            if len(g) > 1:
                issues.append(f"task {t}: eval example sets differ — {listing(g, lambda v: f'{len(v)} examples')} "
                              f"(paired comparisons use only the shared ids; unpaired scores cover different "
                              f"examples)")
            else:
                g = grouped(tu, lambda u: u.m("examples", "fingerprint"))
                if len(g) > 1:
                    issues.append(f"task {t}: same example ids but different example content (examples.fingerprint)"
                                  f" — {listing(g, lambda v: str(v)[:12])}")
        return issues

    # -- statistics ----------------------------------------------------------------------------------------------
    def _metric(self, task: str) -> Metric:
        ti = self.tinfo[task]
        return Metric(ti.binary, ti.aggregate, ti.mean_aggregate)

    def arm_stat(self, u: Unit) -> ArmStat:
        scores = [_score(r) for r in u.records]
        seed = _seed(self.opts.seed, f"arm|{u.phase}|{u.model}|{u.task}")
        iv = score_interval(scores, self._metric(u.task), n_boot=self.opts.n_boot, seed=seed)
        return ArmStat(u, iv.n, iv.value, iv.lo, iv.hi, iv.method, sum(r.is_correct for r in u.records))

    def paired(self, a: Unit, b: Unit, words: tuple[str, str] = ("lost", "gained")) -> Paired:
        """b vs a on shared ids; `words` name the McNemar discordant pairs (a-only right, b-only right)."""
        shared = [e for e in a.ids if e in b.by_id]
        sa = [_score(a.by_id[e]) for e in shared]
        sb = [_score(b.by_id[e]) for e in shared]
        seed = _seed(self.opts.seed, f"pair|{a.phase}|{a.model}|{b.phase}|{b.model}|{a.task}")
        d = paired_delta(sa, sb, self._metric(a.task), n_boot=self.opts.n_boot, seed=seed, words=words)
        return Paired(**dataclasses.asdict(d), a=a, b=b)

    def analyse(self) -> None:
        self.arms = {(u.phase, u.model, u.task): self.arm_stat(u) for u in self.units}
        self.deltas: dict[tuple[str, str], Paired] = {}
        for m in self.models:
            for t in self.tasks:
                a, b = self.unit.get(("baseline", m, t)), self.unit.get(("optimized", m, t))
                if a and b:
                    self.deltas[(m, t)] = self.paired(a, b)
        keys = [k for k, d in self.deltas.items() if not is_missing(d.p)]
        adj, rej = stats.holm([self.deltas[k].p for k in keys])
        for k, ap, r in zip(keys, adj, rej):
            self.deltas[k].holm_p, self.deltas[k].holm_reject = ap, r
        self.extra_deltas: dict[tuple[str, str, str], Paired] = {}
        for ph in self.extra_phases:
            for m in self.models:
                for t in self.tasks:
                    a, b = self.unit.get(("baseline", m, t)), self.unit.get((ph, m, t))
                    if a and b:
                        self.extra_deltas[(ph, m, t)] = self.paired(a, b)
        self.econ = {k: self.economics(u) for k, u in self.unit.items()}

    # -- economics -----------------------------------------------------------------------------------------------
    def economics(self, u: Unit) -> dict[str, Any]:
        mi = self.minfo[u.model]
        recs = u.records
        live = [r for r in recs if not r.cache_hit]
        n, n_live = len(recs), len(live)
        lat = [r.latency_ms for r in live]
        e: dict[str, Any] = {
            "model": u.model, "task": u.task, "phase": u.phase, "kind": mi.kind, "n": n, "n_cached": n - n_live,
            "n_correct": sum(r.is_correct for r in recs),
            "input_tokens": sum(r.input_tokens for r in recs), "output_tokens": sum(r.output_tokens for r in recs),
            "thinking_tokens": sum(r.thinking_tokens for r in recs),
            "input_per_example": (sum(r.input_tokens for r in live) / n_live) if n_live else float("nan"),
            "output_per_example": (sum(r.output_tokens for r in live) / n_live) if n_live else float("nan"),
            "latency_p50_ms": stats.quantile(lat, 0.5), "latency_p95_ms": stats.quantile(lat, 0.95),
            "lm_calls": sum(r.lm_calls for r in recs),
            "spend_usd": float("nan"), "rows_recomputed": 0, "usd_per_example": float("nan"),
            "cost_basis": "", "wall_s": float("nan"), "wall_basis": "",
        }
        if mi.kind == "api":
            def row_cost(r: Record) -> tuple[float, bool]:
                if r.cost_usd > 0:
                    return r.cost_usd, False
                if mi.has_prices and (r.input_tokens or r.output_tokens):
                    return (r.input_tokens * mi.price_in + r.output_tokens * mi.price_out) / 1e6, True
                return 0.0, False

            costs = [row_cost(r) for r in recs]
            e["spend_usd"] = sum(c for c, _ in costs)
            e["rows_recomputed"] = sum(1 for _, rc in costs if rc)
            live_cost = sum(c for (c, _), r in zip(costs, recs) if not r.cache_hit)
            if n_live and (live_cost > 0 or mi.has_prices):
                e["usd_per_example"] = live_cost / n_live
            basis = "cost_usd from the CSV"
            if e["rows_recomputed"]:
                basis += f"; {e['rows_recomputed']} row(s) recomputed from tokens × registry price"
            if not mi.has_prices and live_cost == 0:
                basis = "no cost recorded and no registry price"
            e["cost_basis"] = basis
        else:
            conc = u.m("concurrency")
            live_lat_s = sum(lat) / 1000
            if isinstance(conc, (int, float)) and conc > 0 and n_live:
                e["wall_s"], e["wall_basis"] = live_lat_s / conc, f"sum of latencies / concurrency {conc:g}"
            elif isinstance(u.m("wall_s"), (int, float)) and u.m("wall_s") > 0:
                e["wall_s"], e["wall_basis"] = float(u.m("wall_s")), "sidecar wall_s"
            else:
                e["wall_s"], e["wall_basis"] = live_lat_s, "sum of latencies (concurrency unknown)"
            rate = self.opts.local_cost_per_hour
            if rate is not None:
                e["spend_usd"] = e["wall_s"] / 3600 * rate
                e["usd_per_example"] = e["spend_usd"] / n_live if n_live else float("nan")
                e["cost_basis"] = f"local wall time × ${rate:g}/h"
            else:
                e["cost_basis"] = "local: no $ figure (pass --local-cost-per-hour)"
        pe = e["usd_per_example"]
        e["usd_per_1k"] = pe * 1000 if not is_missing(pe) else float("nan")
        e["usd_per_correct"] = (pe * n / e["n_correct"] if e["n_correct"] else float("inf")) if not is_missing(pe) \
            else float("nan")
        return e

    def local_per_example(self, e: dict[str, Any]) -> float:
        """A local arm's $ per example for projections: measured when a rate is given, else taken as $0."""
        return e["usd_per_example"] if self.opts.local_cost_per_hour is not None else 0.0

    def break_even(self) -> list[dict[str, Any]]:
        out = []
        rate = self.opts.local_cost_per_hour
        for (phase, m, t), arm in self.arms.items():
            if phase != "optimized" or self.minfo[m].kind != "local":
                continue
            row: dict[str, Any] = {"model": m, "task": t, "local_score": arm.score}
            sc = self.sidecar_for(m, t)
            oc = (sc or {}).get("optimization_cost") or {}
            cost = oc.get("cost_usd") if isinstance(oc, dict) else None
            wall = oc.get("wall_s") if isinstance(oc, dict) else None
            if sc is None or not isinstance(cost, (int, float)):
                row["optimization_cost_usd"], row["opt_basis"] = float("nan"), "no optimization sidecar with a cost"
            else:
                total, basis = float(cost), f"sidecar optimization_cost ${float(cost):.4g} (API calls, teacher " \
                                             f"included)"
                if rate is not None and isinstance(wall, (int, float)) and wall > 0:
                    total += wall / 3600 * rate
                    basis += f" + {wall / 3600:.2f} h local compute at ${rate:g}/h"
                row["optimization_cost_usd"], row["opt_basis"] = total, basis
            local_pe = self.local_per_example(self.econ[(phase, m, t)])
            row["local_per_call_usd"] = local_pe
            cands = []
            for (p2, m2, t2), a2 in self.arms.items():
                if t2 != t or self.minfo[m2].kind != "api" or p2 not in MAIN_PHASES:
                    continue
                if a2.score <= arm.score + 1e-12:
                    pe = self._api_pe(p2, m2, t2)
                    cands.append((a2.score, -math.inf if is_missing(pe) else -pe, p2, m2))
            if not cands:
                row.update(reference=None, statement=f"{m} × {t}: the optimized local model ({pct(arm.score)}) "
                                                      f"matches no API arm on this task: no break-even")
                row["payback_calls"] = float("nan")
                out.append(row)
                continue
            score, _, p2, m2 = max(cands, key=lambda c: (c[0], c[1]))
            api_pe = self._api_pe(p2, m2, t)
            row.update(reference=m2, reference_phase=p2, reference_score=score, api_per_call_usd=api_pe)
            ref = f"{m2} ({p2}, {pct(score)} ≤ {pct(arm.score)})"
            if is_missing(api_pe):
                row["payback_calls"] = float("nan")
                row["statement"] = f"{m} × {t}: matches or beats {ref}, whose cost per call is unknown: no break-even"
            else:
                saving = api_pe - local_pe
                row["saving_per_call_usd"] = saving
                if saving <= 0:
                    row["payback_calls"] = float("nan")
                    row["statement"] = (f"{m} × {t}: matches or beats {ref}, but saves nothing per call "
                                        f"({money(local_pe)} local vs {money(api_pe)} API): never pays back")
                elif is_missing(row["optimization_cost_usd"]):
                    row["payback_calls"] = float("nan")
                    row["statement"] = (f"{m} × {t}: saves {money(saving)} per call vs {ref}; optimization cost "
                                        f"unknown ({row['opt_basis']}), so no break-even")
                else:
                    n_calls = math.ceil(round(row["optimization_cost_usd"] / saving, 6))
                    row["payback_calls"] = n_calls
                    row["statement"] = (f"{m} × {t}: optimizing cost {money(row['optimization_cost_usd'])} once "
                                        f"({row['opt_basis']}); at the per-call saving of {money(saving)} vs {ref} "
                                        f"it pays back after {n_calls:,} calls")
            out.append(row)
        return sorted(out, key=lambda r: (self.tasks.index(r["task"]), self.models.index(r["model"])))

    def _api_pe(self, phase: str, model: str, task: str) -> float:
        return self.econ[(phase, model, task)]["usd_per_example"]

    # -- document ------------------------------------------------------------------------------------------------
    def cell_arm(self, phase: str, m: str, t: str) -> Cell:
        a = self.arms.get((phase, m, t))
        if a is None:
            return Cell("–", "muted")
        return Cell(f"{pct(a.score)} {ci_txt(a.lo, a.hi)} n={a.n}")

    def model_label(self, m: str) -> str:
        mi = self.minfo[m]
        tag = "local, frontier stand-in" if mi.stand_in else ("API" if mi.kind == "api" else "local")
        return f"{m} ({tag}{', reasoning' if mi.supports_thinking else ''})"

    def delta_cell(self, d: Paired | None) -> Cell:
        if d is None:
            return Cell("–", "muted")
        if d.n_shared == 0:
            return Cell("no shared ids", "muted")
        mark = ("*†" if d.holm_reject else "*") if d.significant else ""
        cls = ("pos" if d.delta > 0 else "neg") if d.significant else "ns"
        return Cell(f"{pts(d.delta)}{mark} {ci_txt(d.lo, d.hi, True)}", cls)

    def comparison_text(self, d: Paired, verdict: bool = True) -> str:
        if d.n_shared == 0:
            return "not paired (no shared example ids)"
        return (f"{pts(d.delta)} pts, 95% CI {ci_txt(d.lo, d.hi, True)}, p={pval(d.p)} ({d.test}), "
                f"n={d.n_shared} shared" + (f" — {d.verdict}" if verdict else ""))

    def build_doc(self, warnings: list[str]) -> ReportDoc:
        o = self.opts
        local = [m for m in self.models if self.minfo[m].kind == "local"]
        api = [m + (" (local model standing in for a frontier API)" if self.minfo[m].stand_in else "")
               for m in self.models if self.minfo[m].kind == "api"]
        dspy_versions = sorted({u.dspy_version for u in self.units if u.dspy_version})
        sources = sorted({u.data_source for u in self.units if u.data_source})
        header = [
            f"Generated {now_iso()} from {len(self.units)} result file(s) in `{o.results_dir}` (top level).",
            f"Models: {len(self.models)} — local: {', '.join(local) or 'none'}; API: {', '.join(api) or 'none'}. "
            f"Tasks: {', '.join(f'{t} ({self.tinfo[t].metric})' for t in self.tasks)}. "
            f"Arms: {', '.join(self.phases)}.",
            f"Data source(s): {', '.join(sources) or 'unknown'}; DSPy: {', '.join(dspy_versions) or 'unknown'}.",
            f"Statistics: scores in % with 95% intervals — Wilson for binary tasks, percentile bootstrap "
            f"({o.n_boot} resamples, seed {o.seed}) for continuous ones, recomputing the task's corpus metric on "
            f"each resample where it is not a mean (e.g. micro-F1). Deltas are paired on the example ids both arms "
            f"share: paired bootstrap 95% CI; p from the exact McNemar test (binary) or a paired permutation test "
            f"(continuous; exact when ≤16 pairs differ). A delta is called improved/hurt only when its CI excludes 0 "
            f"and p < 0.05, otherwise 'no detectable effect'; Holm correction runs across the whole delta matrix.",
        ]
        smoke_units = [u for u in self.units if u.smoke]
        smoke = []
        if smoke_units:
            smoke.append(f"{len(smoke_units)} of {len(self.units)} result file(s) were made on built-in smoke "
                         f"samples: " + ", ".join(f"`{u.name}`" for u in smoke_units))
        sections = [self.sec_scores(), self.sec_deltas()]
        if self.extra_phases:
            sections.append(self.sec_extra())
        sections += [self.sec_scoreboard(), self.sec_variance(), self.sec_economics(), self.sec_failures(),
                     self.sec_reasoning()]
        sections += self.later_phases.sections()
        sections.append(self.sec_files())
        return ReportDoc("Intelligence Arbitrage — consolidated results", header, smoke, warnings, self.notes,
                         sections, self.plot_data())

    def matrix(self, phase: str) -> Table:
        return Table(["model"] + self.tasks,
                     [[self.model_label(m)] + [self.cell_arm(phase, m, t) for t in self.tasks] for m in self.models])

    def sec_scores(self) -> Section:
        s = Section("Scores")
        s.blocks.append("Each cell: corpus score in % [95% interval] and n examples. Binary tasks use the Wilson "
                        "interval; continuous ones the percentile bootstrap.")
        if "baseline" in self.phases:
            s.blocks += ["**Baseline** (unoptimized program):", self.matrix("baseline")]
        if "optimized" in self.phases:
            s.blocks += ["**Optimized** (DSPy-compiled program):", self.matrix("optimized")]
        s.blocks.append(Plot("scores", "Baseline vs optimized per task, with 95% interval bars."))
        return s

    def sec_deltas(self) -> Section:
        s = Section("Delta (optimized − baseline)")
        ds = list(self.deltas.values())
        if not ds:
            s.blocks.append("No model × task has both a baseline and an optimized result: no deltas.")
            return s
        m_tested = sum(1 for d in ds if not is_missing(d.p))
        n_holm = sum(1 for d in ds if d.holm_reject)
        s.blocks.append(f"Percentage points with the paired 95% CI. `*` = CI excludes 0 and p < 0.05 (uncorrected); "
                        f"`†` = also survives Holm correction across all {m_tested} deltas. "
                        f"**{n_holm} of {m_tested} delta(s) survive Holm.** A cell without a mark is no detectable "
                        f"effect, whatever the sign of its point estimate: its CI spans 0, or the paired test gives "
                        f"p ≥ 0.05 (at small n the percentile bootstrap is optimistic; the exact test is the safer "
                        f"guide).")
        s.blocks.append(Table(["model"] + self.tasks,
                              [[self.model_label(m)] + [self.delta_cell(self.deltas.get((m, t))) for t in self.tasks]
                               for m in self.models]))
        s.blocks.append(Plot("delta_heatmap", "Delta heatmap (points); * = CI excludes 0 and p < 0.05, † = also "
                                              "survives Holm."))
        rows = []
        for (m, t), d in sorted(self.deltas.items(), key=lambda kv: (self.tasks.index(kv[0][1]),
                                                                      self.models.index(kv[0][0]))):
            rows.append([m, t, str(d.n_shared), pct(d.a_score), pct(d.b_score), self.delta_cell(d),
                         pval(d.p), d.test, pval(d.holm_p), "yes" if d.holm_reject else "no",
                         Cell(d.verdict, "pos" if d.verdict == "improved" else "neg" if d.verdict == "hurt" else "ns")])
        s.blocks.append(Table(["model", "task", "n shared", "baseline", "optimized", "delta [95% CI]", "p", "test",
                               "Holm p", "survives Holm", "verdict"], rows,
                              caption="Every comparison, on the examples both arms share.", text_cols=2,
                              left=(7, 10)))
        return s

    def sec_extra(self) -> Section:
        s = Section("Other arms")
        s.blocks.append(f"Phases besides baseline/optimized found in the results: {', '.join(self.extra_phases)}. "
                        f"Scores with 95% intervals, and their paired delta vs the baseline (not part of the Holm "
                        f"family).")
        for ph in self.extra_phases:
            s.blocks += [f"**{ph}**:", self.matrix(ph)]
            rows = [[m, t, str(d.n_shared), self.delta_cell(d), pval(d.p), d.test, d.verdict]
                    for (p2, m, t), d in self.extra_deltas.items() if p2 == ph]
            if rows:
                s.blocks.append(Table(["model", "task", "n shared", f"{ph} − baseline [95% CI]", "p", "test",
                                       "verdict"], rows, text_cols=2, left=(5, 6)))
        return s

    def scoreboard(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        rows, inversions = [], []
        for t in self.tasks:
            local_opt = [self.arms[k] for k in self.arms if k[0] == "optimized" and k[2] == t
                         and self.minfo[k[1]].kind == "local"]
            api_models = [m for m in self.models if self.minfo[m].kind == "api"
                          and any((p, m, t) in self.arms for p in MAIN_PHASES)]
            best = max(local_opt, key=lambda a: a.score) if local_opt else None
            for am in api_models:
                row: dict[str, Any] = {"task": t, "api_model": am, "api_baseline": self.arms.get(("baseline", am, t)),
                                       "api_optimized": self.arms.get(("optimized", am, t)), "local": best}
                if best:
                    for ph in MAIN_PHASES:
                        ref = self.unit.get((ph, am, t))
                        row[f"vs_{ph}"] = self.paired(ref, best.unit, ("API-only right", "local-only right")) \
                            if ref else None
                rows.append(row)
            for lo_arm in local_opt:
                for am in api_models:
                    ref = self.arms.get(("optimized", am, t))
                    if ref and lo_arm.score > ref.score:
                        inversions.append({"task": t, "local": lo_arm, "api": ref,
                                           "cmp": self.paired(ref.unit, lo_arm.unit,
                                                              ("API-only right", "local-only right"))})
            if not api_models:
                rows.append({"task": t, "api_model": None, "local": best})
        return rows, inversions

    def sec_scoreboard(self) -> Section:
        s = Section("Arbitrage scoreboard")
        rows, inversions = self.scoreboard()
        self._scoreboard_rows, self._inversions = rows, inversions
        s.blocks.append("Per task: the best optimized local model (by optimized score) against each API model's "
                        "baseline and optimized scores. Differences are local − API in points, paired on shared "
                        "example ids (p uncorrected).")
        table = []
        for r in rows:
            best = r["local"]
            if r["api_model"] is None:
                table.append([r["task"], "(no API model)", "–", "–",
                              f"{best.unit.model} {pct(best.score)}" if best else "–", "–", "–"])
                continue

            def arm(a: ArmStat | None) -> str:
                return f"{pct(a.score)} {ci_txt(a.lo, a.hi)}" if a else "–"

            def vs(d: Paired | None) -> Cell:
                if d is None:
                    return Cell("–", "muted")
                if d.n_shared == 0:
                    return Cell("not paired (no shared ids)", "muted")
                cls = ("pos" if d.delta > 0 else "neg") if d.significant else "ns"
                return Cell(f"{pts(d.delta)} {ci_txt(d.lo, d.hi, True)} p={pval(d.p)} n={d.n_shared}"
                            + ("" if d.significant else " (n.s.)"), cls, strong=d.significant)

            table.append([r["task"], r["api_model"], arm(r["api_baseline"]), arm(r["api_optimized"]),
                          f"{best.unit.model} {pct(best.score)} {ci_txt(best.lo, best.hi)}" if best
                          else "no optimized local model",
                          vs(r.get("vs_baseline")), vs(r.get("vs_optimized"))])
        s.blocks.append(Table(["task", "API model", "API baseline", "API optimized", "best optimized local",
                               "local − API baseline", "local − API optimized"], table, text_cols=2))
        if inversions:
            lines = ["**Rank inversions** (optimized local > optimized API):"]
            for inv in inversions:
                d: Paired = inv["cmp"]
                sig = ("**significant**" if d.significant else
                       "**not significant**: no detectable difference, the ranking may be noise")
                lines.append(f"- {inv['task']}: {inv['local'].unit.model} optimized {pct(inv['local'].score)} > "
                             f"{inv['api'].unit.model} optimized {pct(inv['api'].score)}: "
                             f"{self.comparison_text(d, verdict=False)} — {sig}")
            s.blocks.append("\n".join(lines))
        else:
            s.blocks.append("**Rank inversions** (optimized local > optimized API): none.")
        s.blocks.append(Plot("cost_frontier", "The arbitrage frontier: score vs $ per 1,000 examples per task "
                             "(API at list price; local at " + (f"${self.opts.local_cost_per_hour:g}/h of wall time"
                             if self.opts.local_cost_per_hour is not None else
                             "$0 — pass --local-cost-per-hour to price local compute") + "). Circles local, squares "
                             "API; the line is the cost-accuracy frontier."))
        return s

    def sec_variance(self) -> Section:
        s = Section("Variance analysis (phase 2)")
        ds = {k: d for k, d in self.deltas.items() if not is_missing(d.delta)}
        by_task = defaultdict(list)
        by_model = defaultdict(list)
        for (m, t), d in ds.items():
            by_task[t].append(d.delta)
            by_model[m].append(d.delta)
        v_task, df_task = stats.pooled_variance(list(by_task.values()))
        v_model, df_model = stats.pooled_variance(list(by_model.values()))
        ratio = v_task / v_model if not (is_missing(v_task) or is_missing(v_model)) and v_model > 0 else float("nan")
        # Mean pairwise Pearson r of the models' delta vectors over the tasks they share (>= 3 tasks).
        rs = []
        ms = sorted(by_model)
        for i in range(len(ms)):
            for j in range(i + 1, len(ms)):
                common = [t for t in self.tasks if (ms[i], t) in ds and (ms[j], t) in ds]
                if len(common) >= 3:
                    r = stats.pearson([ds[(ms[i], t)].delta for t in common], [ds[(ms[j], t)].delta for t in common])
                    if not is_missing(r):
                        rs.append(r)
        self.variance = {"within_task": v_task, "within_model": v_model, "ratio": ratio,
                         "mean_r": float(np.mean(rs)) if rs else float("nan"), "n_pairs": len(rs)}
        if is_missing(ratio):
            reading = "not computable (needs ≥2 models per task and ≥2 tasks per model with deltas)"
        elif ratio > 1:
            reading = ("deltas differ more between models on the same task than between tasks for the same model: "
                       "the model, more than the task, decides whether optimization helps")
        else:
            reading = ("deltas differ more between tasks for the same model than between models on the same task: "
                       "the task, more than the model, decides whether optimization helps")
        sq = lambda v: "–" if is_missing(v) else f"{v * 1e4:.1f}"
        s.blocks.append(Table(["measure", "value"], [
            ["pooled variance of deltas within tasks (across models), points²", f"{sq(v_task)} (df={df_task})"],
            ["pooled variance of deltas within models (across tasks), points²", f"{sq(v_model)} (df={df_model})"],
            ["ratio within-task ÷ within-model", num(ratio, ".2f")],
            ["mean pairwise Pearson r of models' delta vectors",
             f"{num(self.variance['mean_r'], '.2f')} over {len(rs)} model pair(s)" if rs
             else "n/a (needs model pairs sharing ≥3 tasks)"],
        ], numeric=False))
        s.blocks.append(f"Reading: {reading}.")
        tiers = []
        for t in self.tasks:
            dd = [d for (m, t2), d in ds.items() if t2 == t]
            if not dd:
                continue
            up = sum(1 for d in dd if d.verdict == "improved")
            down = sum(1 for d in dd if d.verdict == "hurt")
            none = len(dd) - up - down
            if up == len(dd):
                tier = "all improved"
            elif down == len(dd):
                tier = "all hurt"
            elif up and down:
                tier = "mixed (some improved, some hurt)"
            elif up:
                tier = "some improved, none hurt"
            elif down:
                tier = "some hurt, none improved"
            else:
                tier = "no detectable effect for any model"
            pos = sum(1 for d in dd if d.delta > 0)
            tiers.append([t, str(len(dd)), str(up), str(down), str(none),
                          f"{pos} of {len(dd)}", pts(float(np.mean([d.delta for d in dd]))), tier])
        if tiers:
            s.blocks.append(Table(["task", "models", "improved", "hurt", "no detectable effect", "positive point "
                                   "estimates", "mean delta", "consistency tier"], tiers,
                                  caption="Consistency per task (improved/hurt = CI excludes 0 and p < 0.05, "
                                          "uncorrected).", left=(-1,)))
        s.blocks += self.demo_blocks()
        return s

    def demo_blocks(self) -> list[Any]:
        blocks: list[Any] = []
        rows, programs = [], []  # programs: (n_demos, max possible or None)
        for (m, t), cands in sorted(self.sidecars.items()):
            chosen = self.sidecar_for(m, t)
            for sc in cands:
                n_demos = sc.get("n_demos_total")
                if n_demos is None and isinstance(sc.get("predictors"), dict):
                    n_demos = sum(int(p.get("n_demos") or 0) for p in sc["predictors"].values() if isinstance(p, dict))
                seeds = [x for x in (sc.get("seeds") or []) if isinstance(x, dict)]
                ok = sum(1 for x in seeds if x.get("status") == "ok")
                per_seed = ", ".join(f"{x.get('seed')}:{x.get('n_demos', '?')}" for x in seeds)
                oc = sc.get("optimization_cost") if isinstance(sc.get("optimization_cost"), dict) else {}
                top = _max_demos(sc)
                if isinstance(n_demos, (int, float)) and sc.get("status", "ok") == "ok":
                    programs.append((int(n_demos), top))
                dev, base = sc.get("dev_score"), sc.get("baseline_dev_score")
                dev_txt = num(dev * 100 if isinstance(dev, (int, float)) else None)
                if isinstance(base, (int, float)):
                    dev_txt = f"{base * 100:.1f} → {dev_txt}"
                teacher = str(sc.get("teacher") or "–") + (" (self)" if sc.get("teacher_is_student") else "")
                rows.append([m, t, str(sc.get("optimizer") or "?"), teacher, str(sc.get("status", "?")),
                             str(n_demos if n_demos is not None else "?"), str(top) if top is not None else "?",
                             per_seed or "–", str(sc.get("chosen_seed", "–")), dev_txt, f"{ok}/{len(seeds)}",
                             money(oc.get("cost_usd") if isinstance(oc.get("cost_usd"), (int, float)) else None),
                             num(oc.get("wall_s") if isinstance(oc.get("wall_s"), (int, float)) else None, ".0f"),
                             "yes" if chosen is sc and ("optimized", m, t) in self.unit else ""])
        if not rows:
            blocks.append("Demo counts: no optimization sidecars in `optimized_programs/`.")
            return blocks
        blocks.append(Table(["model", "task", "optimizer", "teacher", "status", "demos (chosen)", "max possible",
                             "demos per seed", "chosen seed", "dev score % (baseline → chosen)", "seeds ok",
                             "optimization $", "optimization s", "evaluated"], rows,
                            caption="Demo counts chosen per program (optimization sidecars); max possible = "
                                    "(max bootstrapped + max labeled demos) × predictors, from the preset's budget.",
                            text_cols=5))
        if programs:
            seen_max = max(n for n, _ in programs)
            zero = sum(1 for n, _ in programs if n == 0)
            full = sum(1 for n, top in programs if n > 0 and n == (top if top is not None else seen_max))
            between = len(programs) - zero - full
            if between == 0 and zero and full:
                blocks.append(f"**Demo-count pattern: 0 or max, never in between** — of {len(programs)} programs, "
                              f"{zero} kept 0 demos and {full} kept the maximum their budget allows (or the largest "
                              f"count seen where the budget is unknown).")
            else:
                blocks.append(f"Demo-count pattern: of {len(programs)} programs, {zero} kept 0 demos, {full} the "
                              f"maximum, {between} a count in between"
                              + (" — not the '0 or max' pattern." if between else "."))
        return blocks

    def sec_economics(self) -> Section:
        s = Section("Economics")
        rate = self.opts.local_cost_per_hour
        s.blocks.append("Tokens and $ per example are measured on non-cached rows (cache hits carry no usage); "
                        "latency p50/p95 excludes cache hits. API $ = the CSV's cost_usd, recomputed from tokens × "
                        "registry price where it is 0. $/correct = projected cost of the whole set ÷ correct answers. "
                        "Local wall time = sum of latencies ÷ the run's concurrency (else the sidecar's wall_s); "
                        + (f"local $ = wall time × ${rate:g}/h." if rate is not None else
                           "local $ is not priced (pass --local-cost-per-hour USD)."))
        rows = []
        for k in sorted(self.econ, key=lambda k: (self.tasks.index(k[2]), self.models.index(k[1]),
                                                  self.phases.index(k[0]))):
            e = self.econ[k]
            rows.append([e["model"], e["task"], e["phase"], f"{e['n']} ({e['n_cached']} cached)",
                         f"{e['input_tokens']:,} ({num(e['input_per_example'], '.0f')})",
                         f"{e['output_tokens']:,} ({num(e['output_per_example'], '.0f')})",
                         f"{num(e['latency_p50_ms'], '.0f')} / {num(e['latency_p95_ms'], '.0f')}",
                         money(e["spend_usd"]), money(e["usd_per_example"]), money(e["usd_per_1k"]),
                         money(e["usd_per_correct"]),
                         f"{num(e['wall_s'], '.1f')} s" if e["kind"] == "local" else "–"])
        s.blocks.append(Table(["model", "task", "arm", "n", "input tokens (per ex.)", "output tokens (per ex.)",
                               "latency p50 / p95 ms", "$ spent", "$ / example", "$ / 1k examples", "$ / correct",
                               "local wall"], rows, text_cols=3))
        self._break_even = self.break_even()
        s.blocks.append("**Break-even of optimization** (optimized local model × task). Assumptions: future traffic "
                        "costs what this eval set cost per example; API at list price; local at "
                        + (f"${rate:g}/h of wall time" if rate is not None else "$0 per call (no "
                           "--local-cost-per-hour given)") + "; optimization is a one-off cost; the reference is "
                        "the best API arm (baseline or optimized) whose score the optimized local model matches or "
                        "beats (point estimates — see the scoreboard for whether the difference is significant).")
        if self._break_even:
            s.blocks.append("\n".join(f"- {r['statement']}" for r in self._break_even))
        else:
            s.blocks.append("No optimized local model in the results.")
        return s

    def sec_failures(self) -> Section:
        s = Section("Parse failures and errors")
        s.blocks.append("Separate from accuracy: a parse failure is an answer the adapter could not read; an error "
                        "is a backend failure (both score 0 in the tables above).")
        rows = []
        for k in sorted(self.unit, key=lambda k: (self.tasks.index(k[2]), self.models.index(k[1]),
                                                  self.phases.index(k[0]))):
            u = self.unit[k]
            n = len(u.records)
            pf = sum(r.parse_failure for r in u.records)
            errs = [r.error for r in u.records if r.error]
            top = Counter(e.splitlines()[0][:80] for e in errs).most_common(1)
            rows.append([u.model, u.task, u.phase, str(n), str(pf), f"{100 * pf / n:.1f}%", str(len(errs)),
                         f"{100 * len(errs) / n:.1f}%", f"{top[0][0]} (×{top[0][1]})" if top else "–"])
        s.blocks.append(Table(["model", "task", "arm", "n", "parse failures", "rate", "errors", "rate",
                               "most common error"], rows, text_cols=3, left=(-1,)))
        return s

    def sec_reasoning(self) -> Section:
        s = Section("Reasoning models")
        ms = [m for m in self.models if self.minfo[m].supports_thinking]
        if not ms:
            s.blocks.append("No reasoning model (registry supports_thinking) in the results.")
            return s
        s.blocks.append(f"Models that think before answering: {', '.join(ms)}. Thinking tokens are estimated from "
                        f"the removed <think> text and are included in output tokens.")
        rows = []
        for k in sorted(self.unit, key=lambda k: (self.models.index(k[1]), self.tasks.index(k[2]),
                                                  self.phases.index(k[0]))):
            if k[1] not in ms:
                continue
            u, e = self.unit[k], self.econ[k]
            n = len(u.records)
            rows.append([u.model, u.task, u.phase, f"{n} ({e['n_cached']} cached)",
                         num(e["latency_p50_ms"], ".0f"), num(e["latency_p95_ms"], ".0f"),
                         num(e["thinking_tokens"] / n, ".1f"), num(e["output_tokens"] / n, ".1f"),
                         f"{100 * e['thinking_tokens'] / e['output_tokens']:.0f}%" if e["output_tokens"] else "–"])
        s.blocks.append(Table(["model", "task", "arm", "n", "latency p50 ms", "latency p95 ms",
                               "mean thinking tokens", "mean output tokens", "thinking share"], rows, text_cols=3))
        return s

    def sec_files(self) -> Section:
        s = Section("Inputs")
        rows = []
        for u in sorted(self.units, key=lambda u: u.name):
            rows.append([u.name, u.phase, u.model, u.task, str(len(u.records)), str(u.m("status") or "?"),
                         u.dspy_version or "?", u.data_source or "?", "yes" if u.smoke else "no"])
        s.blocks.append(Table(["file", "arm", "model", "task", "n", "status", "DSPy", "data source", "smoke"], rows,
                              numeric=False))
        return s

    def plot_data(self) -> dict[str, Any]:
        arms = [{"task": k[2], "model": k[1], "phase": k[0], "score": a.score, "lo": a.lo, "hi": a.hi}
                for k, a in self.arms.items() if k[0] in MAIN_PHASES]
        kinds = {m: ("API" if self.minfo[m].kind == "api" else "local") for m in self.models}
        data: dict[str, Any] = {
            "scores": {"tasks": self.tasks, "models": self.models, "arms": arms, "kinds": kinds,
                       "phases": [p for p in MAIN_PHASES if p in self.phases]} if arms else None,
            "delta_heatmap": {"models": [m for m in self.models if any(k[0] == m for k in self.deltas)],
                              "tasks": [t for t in self.tasks if any(k[1] == t for k in self.deltas)],
                              "cells": [{"model": m, "task": t, "delta": d.delta, "significant": d.significant,
                                         "holm": d.holm_reject} for (m, t), d in self.deltas.items()
                                        if not is_missing(d.delta)]} if self.deltas else None,
        }
        points = []
        for k, e in self.econ.items():
            if k[0] not in MAIN_PHASES:
                continue
            per1k = e["usd_per_1k"]
            if e["kind"] == "local" and self.opts.local_cost_per_hour is None:
                per1k = 0.0
            points.append({"task": k[2], "model": k[1], "phase": k[0], "kind": e["kind"],
                           "score": self.arms[k].score, "cost_per_1k": None if is_missing(per1k) else per1k})
        data["cost_frontier"] = {"tasks": self.tasks, "points": points} if points else None
        data.update(self.later_phases.plot_data())
        return data

    # -- files ---------------------------------------------------------------------------------------------------
    def write(self, folder: Path, doc: ReportDoc) -> None:
        (folder / "details").mkdir(parents=True)

        def put(name: str, text: str) -> None:
            (folder / name).write_text(text, encoding="utf-8")

        def matrix_rows(value: Callable[[str, str], str]) -> list[list[str]]:
            return [[m] + [value(m, t) for t in self.tasks] for m in self.models]

        def arm_val(phase: str) -> Callable[[str, str], str]:
            return lambda m, t: pct(self.arms[(phase, m, t)].score).replace("–", "") if (phase, m, t) in self.arms \
                else ""

        put("summary_scores.csv", csv_text(["model"] + self.tasks, matrix_rows(arm_val("baseline"))))
        put("summary_counts.csv", csv_text(["model"] + self.tasks, matrix_rows(
            lambda m, t: str(self.arms[("baseline", m, t)].n) if ("baseline", m, t) in self.arms else "")))
        put("optimized_scores.csv", csv_text(["model"] + self.tasks, matrix_rows(arm_val("optimized"))))
        put("delta_scores.csv", csv_text(["model"] + self.tasks, matrix_rows(
            lambda m, t: f"{100 * self.deltas[(m, t)].delta:.1f}" if (m, t) in self.deltas
            and not is_missing(self.deltas[(m, t)].delta) else "")))
        put("arms.csv", csv_text(
            ["model", "task", "phase", "kind", "n", "n_correct", "score", "ci_low", "ci_high", "interval", "file"],
            [[k[1], k[2], k[0], self.minfo[k[1]].kind, a.n, a.n_correct, round(a.score, 6), round(a.lo, 6),
              round(a.hi, 6), a.method, a.unit.name] for k, a in self.arms.items()]))
        all_deltas = [("optimized", m, t, d) for (m, t), d in self.deltas.items()] + \
                     [(ph, m, t, d) for (ph, m, t), d in self.extra_deltas.items()]
        put("deltas.csv", csv_text(
            ["model", "task", "arm", "n_shared", "baseline", "arm_score", "delta", "ci_low", "ci_high", "p", "test",
             "holm_p", "holm_reject", "verdict"],
            [[m, t, ph, d.n_shared, d.a_score, d.b_score, d.delta, d.lo, d.hi, d.p, d.test,
              d.holm_p if ph == "optimized" else float("nan"), int(d.holm_reject), d.verdict]
             for ph, m, t, d in all_deltas]))
        econ_cols = ["model", "task", "phase", "kind", "n", "n_cached", "n_correct", "input_tokens", "output_tokens",
                     "thinking_tokens", "lm_calls", "input_per_example", "output_per_example", "latency_p50_ms",
                     "latency_p95_ms", "spend_usd", "rows_recomputed", "usd_per_example", "usd_per_1k",
                     "usd_per_correct", "cost_basis", "wall_s", "wall_basis"]
        put("economics.csv", csv_text(econ_cols, [[e[c] for c in econ_cols] for e in self.econ.values()]))
        be_cols = ["model", "task", "local_score", "optimization_cost_usd", "opt_basis", "reference",
                   "reference_phase", "reference_score", "api_per_call_usd", "local_per_call_usd",
                   "saving_per_call_usd", "payback_calls", "statement"]
        put("break_even.csv", csv_text(be_cols, [[r.get(c) for c in be_cols] for r in self._break_even]))
        sb = []
        for r in self._scoreboard_rows:
            if r["api_model"] is None:
                continue
            best = r["local"]
            for ph in MAIN_PHASES:
                d = r.get(f"vs_{ph}")
                ref = r[f"api_{ph}"]
                sb.append([r["task"], r["api_model"], ph, ref.score if ref else None,
                           best.unit.model if best else None, best.score if best else None,
                           d.n_shared if d else None, d.delta if d else None, d.lo if d else None,
                           d.hi if d else None, d.p if d else None, d.verdict if d else None])
        put("scoreboard.csv", csv_text(["task", "api_model", "api_phase", "api_score", "best_local_optimized",
                                         "local_score", "n_shared", "delta", "ci_low", "ci_high", "p", "verdict"], sb))
        for m in self.models:
            for t in self.tasks:
                arms = [p for p in self.phases if (p, m, t) in self.unit]
                if not arms:
                    continue
                ids: list[str] = []
                seen: set[str] = set()
                for p in arms:
                    for e in self.unit[(p, m, t)].ids:
                        if e not in seen:
                            seen.add(e)
                            ids.append(e)
                header = ["example_id", "ground_truth"]
                for p in arms:
                    header += [f"{p}_prediction", f"{p}_score"]
                rows = []
                for e in ids:
                    recs = [self.unit[(p, m, t)].by_id.get(e) for p in arms]
                    gt = next((r.ground_truth for r in recs if r is not None), "")
                    row: list[Any] = [e, gt]
                    for r in recs:
                        row += [r.prediction, r.score] if r is not None else ["", ""]
                    rows.append(row)
                put(f"details/{safe_name(m)}_{safe_name(t)}.csv", csv_text(header, rows))
        put("SUMMARY.md", to_markdown(doc))
        write_report(doc, folder / "report.html")
        put(MARKER, "made by python -m src.consolidate_results; this whole folder is replaced on each run\n")


