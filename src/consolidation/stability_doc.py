"""Stability under --repeats as the report shows it: stability.csv's rows and the SUMMARY.md section."""

from __future__ import annotations

from typing import Any

from src.consolidation.analysis import Analysis
from src.consolidation.format import ci_txt, num, pct
from src.report import Section, Table

STABILITY_COLUMNS = ["model", "task", "phase", "repeats", "n", "n_complete", "mean_score", "ci_low", "ci_high",
                     "run_scores", "run_sd", "run_min", "run_max", "agreement", "mean_example_sd"]


def stability_rows(an: Analysis) -> list[list[Any]]:
    return [[k[1], k[2], k[0], s.k, s.n, s.complete, s.mean, s.lo, s.hi,
             " ".join(f"{x:.6f}" for x in s.run_scores), s.run_sd, s.run_min, s.run_max, s.agreement,
             s.mean_example_sd] for k, s in sorted(an.stability.items(), key=lambda kv: an.order(kv[0]))]


def sec_stability(an: Analysis) -> Section | None:
    if not an.stability:
        return None
    s = Section("Stability (repeats)")
    s.blocks.append("Arms evaluated with --repeats k: every example answered k times (each attempt with its own "
                    "cache key, and its own seed where the backend takes one). Mean = mean over examples of each "
                    "example's mean score, 95% interval from a bootstrap over examples carrying all their attempts "
                    "(variance between examples and between repeats); run-to-run = the corpus score of each "
                    "repeat index (as one run would have scored); agreement = share of examples whose attempts all "
                    "agree. At temperature 0 repeats differ only where the server is nondeterministic. Deltas and "
                    "the scoreboard pair these arms on per-example means (permutation test, bootstrap CI).")
    rows = []
    for k, st in sorted(an.stability.items(), key=lambda kv: an.order(kv[0])):
        rows.append([k[1], k[2], k[0], str(st.k), f"{st.n} ({st.complete} complete)",
                     f"{pct(st.mean)} {ci_txt(st.lo, st.hi)}", " / ".join(pct(x) for x in st.run_scores),
                     f"{num(100 * st.run_sd, '.1f')} ({pct(st.run_min)}–{pct(st.run_max)})",
                     f"{100 * st.agreement:.0f}%", num(100 * st.mean_example_sd, ".1f")])
    s.blocks.append(Table(["model", "task", "arm", "k", "examples", "mean [95% CI]", "score per repeat",
                           "run-to-run sd (range), pts", "examples with all attempts agreeing",
                           "mean per-example sd, pts"], rows, text_cols=3, left=(6,)))
    return s
