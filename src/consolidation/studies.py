"""The studies in the golden files: demo-count curves (phase 3) and the tipping point (phase 5).

Both studies write their own CSVs (src/studies/demo_curves.py, src/studies/tipping_point/analyzer.py); this module
reads them defensively (hand-edited or older files may lack columns) and turns them into report sections and plot
data.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from src.consolidation.format import ci_txt, compact, pct, pts, pval
from src.report import Plot, Section, Table
from src.results.naming import demo_curves_dir, tipping_dir

Rows = list[dict[str, str]]


def _float(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _read_optional(path: Path, what: str, notes: list[str]) -> Rows | None:
    if not path.is_file():
        return None
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        notes.append(f"{what} file `{path}` cannot be read ({exc}): section skipped")
        return None


@dataclass
class StudyFiles:
    """The later studies' own CSVs, each None when absent or unreadable (a note says which)."""

    curves: Rows | None          # demo_curves/demo_curve_results.csv
    decomposition: Rows | None   # demo_curves/decomposition.csv
    tipping: Rows | None         # tipping_point/summary.csv
    tipping_curve: Rows | None   # tipping_point/curve.csv

    @classmethod
    def load(cls, results_dir: Path, notes: list[str]) -> StudyFiles:
        curves, tipping = demo_curves_dir(results_dir), tipping_dir(results_dir)
        return cls(_read_optional(curves / "demo_curve_results.csv", "demo curves", notes),
                   _read_optional(curves / "decomposition.csv", "demo-curve decomposition", notes),
                   _read_optional(tipping / "summary.csv", "tipping point", notes),
                   _read_optional(tipping / "curve.csv", "tipping-point curve", notes))

    # -- plots -----------------------------------------------------------------------------------------------------
    def plot_data(self) -> dict[str, Any]:
        demo = curve_pairs(self.curves or [], "n_demos", "condition")
        tip = curve_pairs(self.tipping_curve or [], "n", None, "mean over seeds")
        return {"demo_curves": {"pairs": demo, "xlabel": "demos in the prompt"} if demo else None,
                "tipping_curves": {"pairs": tip, "xlabel": "optimization examples (max demos)"} if tip else None}

    # -- sections --------------------------------------------------------------------------------------------------
    def sections(self) -> list[Section]:
        out = []
        if self.curves is not None or self.decomposition is not None:
            out.append(self.sec_curves())
        if self.tipping is not None or self.tipping_curve is not None:
            out.append(self.sec_tipping())
        return out

    def sec_curves(self) -> Section:
        s = Section("Demo-count curves (phase 3)")
        pairs = curve_pairs(self.curves or [], "n_demos", "condition")
        if not pairs:
            s.blocks.append("`demo_curves/demo_curve_results.csv` has no usable rows.")
        else:
            s.blocks.append(Plot("demo_curves", "Score vs number of demos, one plot per model × task (band = 95% "
                                                "CI from the curve file)."))
            curves = self.curves or []
            spread = _has_repeats(curves)
            rows = [[r.get("model", ""), r.get("task", ""), r.get("condition", ""), compact(r.get("n_demos")),
                     _score(r.get("score")), _interval(r.get("ci_low"), r.get("ci_high")),
                     compact(r.get("n_examples")), compact(r.get("n_errors")), _points(r.get("phase1_delta"))]
                    + (_spread(r) if spread else []) for r in curves]
            s.blocks.append(Table(["model", "task", "condition", "n demos", "score", "95% CI", "n", "errors",
                                   "phase-1 delta (pts)"] + (SPREAD_HEADERS if spread else []), rows, text_cols=3,
                                  caption="Correction family: none (scores with intervals, no tests)."
                                          + (REPEATS_NOTE if spread else "")))
        if self.decomposition:
            rows = [[r.get("model", ""), r.get("task", ""), compact(r.get("k")), _score(r.get("baseline")),
                     _score(r.get("score_n0")), _score(r.get("score_nk")),
                     _effect(r, "instruction_effect", "instruction_ci_low", "instruction_ci_high", "instruction_p"),
                     _effect(r, "demo_effect", "demo_ci_low", "demo_ci_high", "demo_p"),
                     f"{compact(r.get('best_n'))} ({_score(r.get('best_score'))})", compact(r.get("n_examples"))]
                    for r in self.decomposition]
            s.blocks.append(Table(["model", "task", "k", "baseline", "n=0", "n=k", "instruction effect",
                                   "demo effect", "best n (score)", "n"], rows, text_cols=2,
                                  caption="Instruction effect = score(n=0) − baseline; demo effect = score(n=k) − "
                                          "score(n=0); points with the paired 95% CI and p, on the same examples. "
                                          "Correction family: none — each p is uncorrected."))
        return s

    def sec_tipping(self) -> Section:
        s = Section("Tipping point (phase 5)")
        rows = self.tipping or []
        if not rows:
            s.blocks.append("`tipping_point/summary.csv` has no rows.")
        else:
            first = rows[0]
            bounds = (f" Regimes: too hard below {pct(_float(first.get('too_hard_below')))}%, already solved above "
                      f"{pct(_float(first.get('already_solved_above')))}%; responsive = a significant lift at some "
                      f"n; resistant = none." if first.get("too_hard_below") else "")
            table = [[r.get("model", ""), r.get("task", ""), r.get("regime", ""),
                      f"{_score(r.get('baseline'))} {_interval(r.get('baseline_ci_low'), r.get('baseline_ci_high'))}"
                      .strip(), compact(r.get("smallest_significant_n")) or "–", compact(r.get("best_n")) or "–",
                      _score(r.get("best_score")),
                      _effect(r, "lift_at_best", "lift_ci_low", "lift_ci_high", "p_at_best"),
                      compact(r.get("seeds")), compact(r.get("n_examples"))] for r in rows]
            s.blocks.append(Table(["model", "task", "regime", "baseline [95% CI]", "smallest significant n",
                                   "best n", "best score", "lift at best n", "seeds", "n"], table, text_cols=3,
                                  caption="Per (model, task): does bootstrapping n demos lift the eval score? Scores "
                                          "in %, lift in points with the paired 95% CI and p." + bounds
                                          + " Correction family: " + _family(rows) + "."))
        if self.tipping_curve:
            s.blocks.append(Plot("tipping_curves", "Score vs optimization examples (mean over seeds; band = 95% "
                                                   "CI)."))
            spread = _has_repeats(self.tipping_curve)
            table = [[r.get("model", ""), r.get("task", ""), compact(r.get("n")), compact(r.get("seeds")),
                      f"{_score(r.get('score'))} {_interval(r.get('ci_low'), r.get('ci_high'))}".strip(),
                      _effect(r, "delta", "delta_ci_low", "delta_ci_high", "p") if r.get("delta") else "–",
                      r.get("verdict", "") or "–", compact(r.get("optimization_calls"))]
                     + (_spread(r) if spread else []) for r in self.tipping_curve]
            s.blocks.append(Table(["model", "task", "n", "seeds", "score [95% CI]", "lift vs n=0", "verdict",
                                   "optimization LM calls"] + (SPREAD_HEADERS if spread else []), table,
                                  text_cols=2, left=(6,),
                                  caption="Correction family: " + _family(self.tipping_curve) + "."
                                          + (REPEATS_NOTE + " The run-to-run sd pools the seeds of a point."
                                             if spread else "")))
        return s


SPREAD_HEADERS = ["repeats", "run-to-run sd (pts)", "agreement"]
REPEATS_NOTE = (" With repeats: each example is scored by the mean of its attempts, the 95% CI is a bootstrap over "
                "examples carrying all their attempts (examples and repeats), tests are paired on per-example means; "
                "run-to-run sd = the sd of the corpus score across repeat indices; agreement = share of examples "
                "whose attempts all agree.")


def _has_repeats(rows: Rows) -> bool:
    """Does a curve file hold points evaluated with --repeats (columns added then; older files have none)?"""
    return any((_float(r.get("repeats")) or 1) > 1 for r in rows)


def _spread(r: dict[str, str]) -> list[str]:
    sd, agree = _float(r.get("run_sd")), _float(r.get("agreement"))
    return [compact(r.get("repeats")) or "1", "–" if sd is None else pct(sd),
            "–" if agree is None else f"{pct(agree)}%"]


def _family(rows: Rows) -> str:
    """The correction family a study file states in its `correction` column (older files: none stated)."""
    named = sorted({r.get("correction", "") for r in rows if r.get("correction")})
    return "; ".join(named) if named else "none stated in the file (treat each p as uncorrected)"


def curve_pairs(rows: Rows, x_col: str, cond_col: str | None, default_cond: str = "default") -> list[dict[str, Any]]:
    """Rows of a curve CSV grouped per (model, task): {model, task, conditions: {name: [(x, score, lo, hi)]},
    percent}; rows without a number for x or score are skipped."""
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        x, sc = _float(r.get(x_col)), _float(r.get("score"))
        if x is None or sc is None or not r.get("model") or not r.get("task"):
            continue
        p = pairs.setdefault((r["model"], r["task"]), {"model": r["model"], "task": r["task"], "conditions": {}})
        cond = (r.get(cond_col) if cond_col else None) or default_cond
        p["conditions"].setdefault(cond, []).append((x, sc, _float(r.get("ci_low")), _float(r.get("ci_high"))))
    out = list(pairs.values())
    for p in out:
        p["percent"] = all(pt[1] <= 1.0 for pts_ in p["conditions"].values() for pt in pts_)
    return out


def _score(value: Any) -> str:
    """A score from a phase CSV: % when it is a fraction (every built-in metric), else as written."""
    x = _float(value)
    if x is None:
        return "–" if value in (None, "") else str(value)
    return pct(x) if 0.0 <= x <= 1.0 else compact(x)


def _points(value: Any) -> str:
    x = _float(value)
    return "–" if x is None else pts(x)


def _interval(lo: Any, hi: Any) -> str:
    a, b = _float(lo), _float(hi)
    if a is None or b is None:
        return ""
    return ci_txt(a, b) if 0.0 <= a <= 1.0 and 0.0 <= b <= 1.0 else f"[{compact(a)}, {compact(b)}]"


def _effect(r: dict[str, str], value: str, lo: str, hi: str, p: str) -> str:
    """'+10.0 [+0.0, +25.0] p=0.500' from a row's effect columns."""
    x = _float(r.get(value))
    if x is None:
        return "–"
    a, b, pv = _float(r.get(lo)), _float(r.get(hi)), _float(r.get(p))
    text = pts(x)
    if a is not None and b is not None:
        text += f" {ci_txt(a, b, signed=True)}"
    if pv is not None:
        text += f" p={pval(pv)}"
    return text
