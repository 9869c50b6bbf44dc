"""Issue 15's decisions on the rehearsal stand-ins, through the command users run (python -m src.rehearse): repeats
give stability figures, the routing analysis recommends a policy for a (local Ollama key, API key) pair with its
held-out check, --mlflow logs runs MLflow's own client reads back, and --max-cost refuses an over-budget study of a
priced key before any request reaches a stand-in.

The study is a two-key slice of experiments/full.yaml (an Ollama student and an OpenAI student, its own teacher)
so that the whole command stays within a couple of minutes; test_rehearsal_fronts.py covers every key's protocol."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import yaml

from src.rehearsal.stand_ins import PLACEHOLDER_KEY
from conftest import ROOT, run_cli

csv.field_size_limit(sys.maxsize)

LOCAL, API = "llama3.2", "gpt-4o-mini"
REPEATS = 3


def _study(tmp: Path) -> Path:
    full = yaml.safe_load((ROOT / "experiments" / "full.yaml").read_text(encoding="utf-8"))
    assert LOCAL in full["students"], "the slice must stay a slice of the full study"
    sliced = {**full, "name": "full-slice", "students": [LOCAL, API], "references": [], "teacher": API}
    path = tmp / "full-slice.yaml"
    path.write_text(yaml.safe_dump(sliced, sort_keys=False), encoding="utf-8")
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def rehearsed(tmp_path_factory, embedded_config):
    tmp = tmp_path_factory.mktemp("rehearsal-decisions")
    results, store = tmp / "results", (tmp / "mlruns").as_uri()
    proc = run_cli(["src.rehearse", "--study", str(_study(tmp)), "--steps", "study,consolidate",
                    "--study-phases", "baseline", "--tasks", "analysis", "--limit", "8", "--data", "builtin",
                    "--repeats", str(REPEATS), "--mlflow", store, "--stand-in-cap", "32",
                    "--results-dir", str(results)], timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "rehearsal passed" in proc.stdout
    return results, store


@pytest.mark.slow
def test_repeats_give_stability_figures_for_both_keys(rehearsed):
    results, _ = rehearsed
    stability = {r["model"]: r for r in _rows(results / "golden" / "stability.csv")}
    assert {LOCAL, API} <= set(stability)
    for key in (LOCAL, API):
        row = stability[key]
        assert int(row["repeats"]) == REPEATS and int(row["n"]) == 8
        assert 0.0 <= float(row["agreement"]) <= 1.0
        assert float(row["ci_low"]) <= float(row["mean_score"]) <= float(row["ci_high"])
        assert len(row["run_scores"].split(";")) == REPEATS or len(row["run_scores"].split()) == REPEATS
    # every attempt is recorded, one row per (example, repeat)
    for key in (LOCAL, API):
        rows = _rows(next(results.glob(f"*_baseline_analysis_{key}.csv")))
        assert sorted({int(r["repeat"]) for r in rows}) == list(range(REPEATS))
        assert len(rows) == 8 * REPEATS


@pytest.mark.slow
def test_routing_recommends_a_policy_with_a_held_out_check(rehearsed):
    results, _ = rehearsed
    rows = [r for r in _rows(results / "golden" / "routing.csv")
            if r["local_model"] == LOCAL and r["api_model"] == API]
    assert rows, "no routing rows for the (local, API) pair"
    policies = {r["policy"] for r in rows}
    assert {"always_api", "always_local"} <= policies and any(p.startswith("cascade") for p in policies), policies
    for r in rows:  # thresholds chosen on one half, quality reported on the other
        assert int(r["n_selection"]) + int(r["n_test"]) <= int(r["n_shared"]) and int(r["n_test"]) > 0
    assert sum(r["recommended"] == "1" for r in rows) == 1  # always-API is never worse than itself
    assert any(r["frontier"] == "1" for r in rows)
    summary = (results / "golden" / "SUMMARY.md").read_text(encoding="utf-8")
    assert "REHEARSAL" in summary and "Routing" in summary


@pytest.mark.slow
def test_mlflow_client_reads_back_every_unit_and_no_key(rehearsed, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # this process's client reads the file store back
    results, store = rehearsed
    client = MlflowClient(tracking_uri=store)
    runs = [run for exp in client.search_experiments() for run in client.search_runs([exp.experiment_id])]
    by_model = {run.data.params.get("model"): run for run in runs}
    assert {LOCAL, API} <= set(by_model), set(by_model)
    for key in (LOCAL, API):
        run = by_model[key]
        assert run.data.params["repeats"] == str(REPEATS)
        assert {"score", "score_ci_low", "score_ci_high", "attempts"} <= set(run.data.metrics), sorted(run.data.metrics)
        assert run.data.metrics["attempts"] == 8 * REPEATS
    stored = "".join(p.read_text(errors="ignore") for p in Path(store.removeprefix("file://")).rglob("*") if p.is_file())
    assert PLACEHOLDER_KEY not in stored  # the key the stand-ins were called with never reaches the store


def test_max_cost_refuses_a_priced_study_before_any_request(tmp_path, embedded_config):
    results = tmp_path / "results"
    proc = run_cli(["src.rehearse", "--study", str(_study(tmp_path)), "--steps", "study",
                    "--study-phases", "baseline", "--tasks", "analysis", "--limit", "8", "--data", "builtin",
                    "--max-cost", "0.000001", "--results-dir", str(results)], timeout=600)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "max-cost" in (proc.stdout + proc.stderr)
    assert "requests answered: Ollama /api/chat 0, OpenAI /v1/chat/completions 0" in proc.stdout
    assert not list(results.glob("*_baseline_*.csv"))


@pytest.mark.slow
def test_max_cost_stops_a_running_study_at_the_cap_and_a_rerun_finishes_it(tmp_path, embedded_config):
    """The full study's own API student and teacher (gpt-4o, at its registry prices) through the OpenAI stand-in:
    a cap above the projection lets the run start; the worst-case reservations then stop it once the next request
    could take the spend over the cap — never past it — keeping the attempts done; a rerun with a higher cap
    requests only what is left and finishes."""
    import json
    import re

    full = yaml.safe_load((ROOT / "experiments" / "full.yaml").read_text(encoding="utf-8"))
    assert "gpt-4o" in full["students"] and full["teacher"] == "gpt-4o"
    study = tmp_path / "full-gpt-4o.yaml"
    study.write_text(yaml.safe_dump({**full, "name": "full-gpt-4o", "students": ["gpt-4o"], "references": []}),
                     encoding="utf-8")
    results = tmp_path / "results"

    def rehearse(cap: str) -> str:
        proc = run_cli(["src.rehearse", "--study", str(study), "--steps", "study", "--study-phases", "baseline",
                        "--tasks", "analysis", "--limit", "8", "--repeats", str(REPEATS), "--data", "builtin",
                        "--stand-in-cap", "64", "--per-key", "1", "--max-cost", cap, "--results-dir", str(results)],
                       env={"DSPY_CACHEDIR": str(tmp_path / "dspy-cache")}, timeout=900)  # cached answers cost $0
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
        return proc.stdout + proc.stderr

    refused = rehearse("0.000001")
    projected = float(re.search(r"the projected spend is \$([0-9.]+)", refused).group(1))
    assert "OpenAI /v1/chat/completions 0" in refused
    cap = round(1.5 * projected, 6)
    stopped = rehearse(str(cap))
    assert "spending cap reached" in stopped and "rehearsal FAILED" in stopped
    sent = int(re.search(r"OpenAI /v1/chat/completions (\d+)", stopped).group(1))
    csv_path = results / "api_baseline_analysis_gpt-4o.csv"
    meta = json.loads(csv_path.with_suffix(".meta.json").read_text(encoding="utf-8"))
    assert meta["status"] == "stopped" and meta["spend"]["stopped_at_cap"] is True
    assert 0 < meta["spend"]["run_spent_usd"] <= cap
    kept = {(r["example_id"], r["repeat"]): r for r in _rows(csv_path) if not r["error"]}
    assert sent > 0 and 0 < len(kept) < 8 * REPEATS
    finished = rehearse("1")
    assert "rehearsal passed" in finished
    rows = {(r["example_id"], r["repeat"]): r for r in _rows(csv_path)}
    assert len(rows) == 8 * REPEATS and not any(r["error"] for r in rows.values())
    assert all(rows[k] == kept[k] for k in kept)  # the attempts done before the stop were kept, not redone
    meta = json.loads(csv_path.with_suffix(".meta.json").read_text(encoding="utf-8"))
    assert meta["status"] == "complete" and meta["spend"]["stopped_at_cap"] is False
