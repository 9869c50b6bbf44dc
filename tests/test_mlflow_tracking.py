"""--mlflow: units logged as MLflow runs to a real local file store, read back with MLflow's own client; the
optimization logged with mlflow.dspy.autolog; nothing logged unless asked; no key ever reaches MLflow."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import run_cli
from loopback import ScriptedOpenAI, chat_fields, chat_reply, reply_text

mlflow = pytest.importorskip("mlflow")  # requirements/mlflow.txt: ./run_tests.sh installs it
from mlflow.tracking import MlflowClient  # noqa: E402

SECRET = "sk-proj-MLFLOW-never-0123456789abcdefXYZ"


@pytest.fixture(autouse=True)
def _file_store(monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # this process's client reads the file store back


def _everything(folder: Path) -> str:
    return "".join(p.read_text(errors="ignore") for p in folder.rglob("*") if p.is_file())


def _runs(uri: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("intelligence-arbitrage")
    assert exp is not None
    return client.search_runs([exp.experiment_id])


def test_evaluation_units_are_runs_with_params_metrics_intervals_and_artifacts(tmp_path):
    with ScriptedOpenAI(lambda req, i: reply_text('{"answer": "yes"}')) as server:
        (tmp_path / "models.json").write_text(json.dumps({"models": [{
            "key": "scripted", "provider": "openai_compatible", "model_id": "scripted", "kind": "api",
            "api_base": server.url, "api_key_env": "SCRIPTED_KEY", "price_in": 1.0, "price_out": 2.0}]}))
        store = tmp_path / "mlruns"
        uri = store.as_uri()
        common = ["src.run_baseline_v2", "--models", "scripted", "--tasks", "analysis", "--data", "builtin",
                  "--adapter", "json", "--limit", "4", "--no-cache"]
        quiet = run_cli(common + ["--results-dir", str(tmp_path / "quiet")], cwd=tmp_path,
                        env={"SCRIPTED_KEY": SECRET, "MLFLOW_TRACKING_URI": uri})
        assert quiet.returncode == 0, quiet.stderr[-2000:]
        assert not store.exists() and not (tmp_path / "quiet" / "mlruns").exists()  # nothing unless asked
        r = run_cli(common + ["--results-dir", str(tmp_path / "results"), "--mlflow", uri], cwd=tmp_path,
                    env={"SCRIPTED_KEY": SECRET})
    assert r.returncode == 0, r.stderr[-2000:]
    runs = _runs(uri)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_name == "api_baseline_analysis_scripted"
    p, m = run.data.params, run.data.metrics
    assert p["model"] == "scripted" and p["task"] == "analysis" and p["adapter"] == "json" and p["phase"] == "baseline"
    rows = (tmp_path / "results" / "api_baseline_analysis_scripted.csv").read_text().splitlines()
    assert m["n_examples"] == 4 and m["attempts"] == 4 and m["score_ci_low"] <= m["score"] <= m["score_ci_high"]
    from src.stats.core import wilson_interval

    yes = sum(1 for line in rows[1:] if ",yes," in line)  # the builtin gold answers the scripted 'yes' matches
    assert (m["score_ci_low"], m["score_ci_high"]) == pytest.approx(wilson_interval(round(m["score"] * 4), 4))
    assert m["cost_usd"] > 0 and yes >= 0
    arts = {a.path for a in MlflowClient(uri).list_artifacts(run.info.run_id)}
    assert arts == {"api_baseline_analysis_scripted.csv", "api_baseline_analysis_scripted.meta.json"}
    assert run.data.tags["status"] == "ran"
    assert SECRET not in _everything(tmp_path / "mlruns")


def test_optimization_is_logged_with_dspy_autolog_and_no_key_reaches_mlflow(tmp_path):
    def echo(req: dict, i: int):
        auth = server.headers[i].get("authorization", "")
        if "proposed_instruction" in chat_fields(req):  # an instruction that quotes the key: it must not leak
            return chat_reply(req, f"Answer the question. {auth}")
        return chat_reply(req, "yes")

    server = ScriptedOpenAI(echo)
    uri = (tmp_path / "mlruns").as_uri()
    with server:
        r = run_cli(["src.run_optimization", "--models", "gpt-4o-mini", "--preset", "quick", "--tasks", "analysis",
                     "--data", "builtin", "--seeds", "10", "--results-dir", str(tmp_path / "results"), "--no-cache",
                     "--mlflow", uri], cwd=tmp_path, env={"OPENAI_API_KEY": SECRET, "OPENAI_BASE_URL": server.url})
    assert r.returncode == 0, r.stderr[-3000:]
    runs = _runs(uri)
    parent = [x for x in runs if x.info.run_name == "optimize gpt-4o-mini x analysis (mipro_v2)"]
    assert len(parent) == 1
    run = parent[0]
    assert run.data.params["optimizer"] == "mipro_v2" and run.data.params["teacher"] == "gpt-4o-mini"
    assert "dev_score" in run.data.metrics and run.data.tags["status"] == "ran"
    client = MlflowClient(uri)
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "program")}
    assert arts == {"program/gpt-4o-mini_analysis_mipro_v2.json", "program/gpt-4o-mini_analysis_mipro_v2.meta.json"}
    # DSPy's autolog: each MIPROv2 trial evaluation is a child run with its program's instructions (and demos) as
    # parameters and its score; the compile logs the best program and the trainset on the unit's run
    trials = [x for x in runs if x.data.tags.get("mlflow.parentRunId") == run.info.run_id]
    assert len(trials) >= 2 and all("eval" in x.data.metrics for x in trials)
    assert any("Predict.signature.instructions" in x.data.params for x in trials)
    assert {"best_model.json", "trainset.json"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    assert SECRET not in _everything(tmp_path / "mlruns")
    assert SECRET not in r.stdout + r.stderr


# ---- the studies: demo-curve conditions and tipping-point cells ---------------------------------------------------

def _scripted_model(tmp_path: Path, url: str) -> None:
    (tmp_path / "models.json").write_text(json.dumps({"models": [{
        "key": "scripted", "provider": "openai_compatible", "model_id": "scripted", "kind": "api",
        "api_base": url, "api_key_env": "SCRIPTED_KEY", "price_in": 1.0, "price_out": 2.0}]}))


def _leaky(server_ref: list):
    """Answers 'yes' and, every third request, a reply quoting the request's key (a model can echo anything)."""
    def behaviour(req: dict, i: int):
        if i % 3 == 2:
            return reply_text(json.dumps({"answer": server_ref[0].headers[i].get("authorization", "")}))
        return reply_text('{"answer": "yes"}')
    return behaviour


def test_demo_curve_conditions_are_runs_like_evaluation_units(tmp_path):
    from src.registry import load_config
    from src.results.files import write_json
    from src.results.naming import program_path, sidecar_path
    from src.tasks import get_task
    from src.tasks.base import to_dspy
    from src.tasks.sources import resolve_source
    from src.tasks.splits import load_task_data

    ref: list = []
    server = ScriptedOpenAI(_leaky(ref))
    ref.append(server)
    results, uri = tmp_path / "results", (tmp_path / "mlruns").as_uri()
    with server:
        _scripted_model(tmp_path, server.url)
        task = get_task("analysis", load_config(tmp_path))
        data = load_task_data(task, resolve_source("builtin", load_config(tmp_path), announce=False))
        program = task.program()
        program.predictors()[0].demos = [to_dspy(ex) for ex in data.train[:1]]
        path = program_path(results, "scripted", "analysis", "mipro_v2")
        path.parent.mkdir(parents=True)
        program.save(str(path))
        write_json(sidecar_path(path), {"status": "ok", "n_demos_total": 1, "module": "Predict", "adapter": "json",
                                        "optimizer": "mipro_v2"})
        args = ["src.demo_curve_eval", "--models", "scripted", "--tasks", "analysis", "--data", "builtin",
                "--limit", "4", "--adapter", "json", "--no-cache", "--results-dir", str(results)]
        quiet = run_cli(args, cwd=tmp_path, env={"SCRIPTED_KEY": SECRET, "MLFLOW_TRACKING_URI": uri})
        assert quiet.returncode == 0, quiet.stderr[-2000:]
        assert not (tmp_path / "mlruns").exists() and not (results / "mlruns").exists()  # nothing unless asked
        r = run_cli(args + ["--repeats", "2", "--mlflow", uri], cwd=tmp_path, env={"SCRIPTED_KEY": SECRET})
    assert r.returncode == 0, r.stderr[-2000:]
    runs = {x.info.run_name: x for x in _runs(uri)}
    names = {"baseline": "api_baseline_analysis_scripted", "0": "api_demo-n0_analysis_scripted",
             "1": "api_demo-n1_analysis_scripted"}
    assert set(runs) == {f"demo curve {n}" for n in names.values()}
    curve = {("baseline" if x["condition"] == "baseline" else x["n_demos"]): x
             for x in csv.DictReader(open(results / "demo_curves" / "demo_curve_results.csv", newline=""))}
    client = MlflowClient(uri)
    for cond, stem in names.items():
        run = runs[f"demo curve {stem}"]
        p, m = run.data.params, run.data.metrics
        assert p["study"] == "demo_curves" and p["model"] == "scripted" and p["task"] == "analysis"
        assert p["condition"] == ("baseline" if cond == "baseline" else "optimized_instructions")
        assert p["n_demos"] == ("0" if cond == "baseline" else cond) and p["repeats"] == "2"
        assert p["phase"] == ("baseline" if cond == "baseline" else f"demo-n{cond}") and "program_sha" in p
        # the same score and interval as the curve file (per-example means, cluster bootstrap), attempts counted
        assert m["n_examples"] == 4 and m["attempts"] == 8
        assert (m["score"], m["score_ci_low"], m["score_ci_high"]) == pytest.approx(
            (float(curve[cond]["score"]), float(curve[cond]["ci_low"]), float(curve[cond]["ci_high"])), abs=1e-6)
        assert m["cost_usd"] > 0 and run.data.tags["status"] == "ran"
        arts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert arts == {f"{stem}.csv", f"{stem}.meta.json"}
    # the replies quoting the key reached the store only scrubbed (in the result CSVs logged as artifacts)
    assert "Bearer ***" in _everything(tmp_path / "mlruns")
    assert SECRET not in _everything(tmp_path / "mlruns")
    assert SECRET not in r.stdout + r.stderr


def test_tipping_point_cells_are_runs_with_dspy_autolog_and_no_key(tmp_path):
    ref: list = []
    server = ScriptedOpenAI(_leaky(ref))
    ref.append(server)
    results, uri = tmp_path / "results", (tmp_path / "mlruns").as_uri()
    args = ["src.tipping_point.runner", "--models", "scripted", "--tasks", "analysis", "--n", "0,1", "--seeds", "10",
            "--limit", "4", "--candidates", "1", "--data", "builtin", "--adapter", "json", "--no-cache",
            "--results-dir", str(results), "--mlflow", uri]
    with server:
        _scripted_model(tmp_path, server.url)
        r = run_cli(args, cwd=tmp_path, env={"SCRIPTED_KEY": SECRET})
        assert r.returncode == 0, r.stderr[-3000:]
        again = run_cli(args + ["--repeats", "2"], cwd=tmp_path, env={"SCRIPTED_KEY": SECRET})
        assert again.returncode == 0, again.stderr[-3000:]
    runs = _runs(uri)
    cells = [x for x in runs if x.data.params.get("study") == "tipping_point"]
    by = {(x.data.params["n"], x.data.tags["status"]): x for x in cells}
    assert set(by) == {("0", "ran"), ("1", "ran"), ("0", "extended"), ("1", "extended")}
    client = MlflowClient(uri)
    for (n, status), run in by.items():
        p, m = run.data.params, run.data.metrics
        assert run.info.run_name == f"tipping point scripted x analysis n={n} seed={'None' if n == '0' else 10}"
        assert p["model"] == "scripted" and p["task"] == "analysis" and p["teacher"] == "scripted"
        assert p["phase"] == ("tp-baseline" if n == "0" else "tp-n1-s10") and "program_sha" in p
        assert p["repeats"] == ("1" if status == "ran" else "2")
        assert m["n_examples"] == 4 and m["attempts"] == (4 if status == "ran" else 8)
        assert m["score_ci_low"] <= m["score"] <= m["score_ci_high"]
        # the compile's cost (none for n = 0; the extended cell reuses its program: the cost it had)
        assert (m["compile_lm_calls"] > 0) == (n == "1")
        stem = f"api_{p['phase']}_analysis_scripted"
        ckpt = "scripted_analysis_baseline.json" if n == "0" else "scripted_analysis_n1_seed10.json"
        assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {f"{stem}.csv", f"{stem}.meta.json", ckpt}
    assert by[("1", "extended")].data.metrics["compile_lm_calls"] == by[("1", "ran")].data.metrics["compile_lm_calls"]
    # DSPy's autolog around the first compile: the random search's candidate evaluations are child runs
    trials = [x for x in runs if x.data.tags.get("mlflow.parentRunId") == by[("1", "ran")].info.run_id]
    assert trials and all("eval" in x.data.metrics for x in trials)
    assert "Bearer ***" in _everything(tmp_path / "mlruns")  # the key-quoting replies arrived, scrubbed
    assert SECRET not in _everything(tmp_path / "mlruns")
    assert SECRET not in r.stdout + r.stderr + again.stdout + again.stderr
