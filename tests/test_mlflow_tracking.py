"""--mlflow: units logged as MLflow runs to a real local file store, read back with MLflow's own client; the
optimization logged with mlflow.dspy.autolog; nothing logged unless asked; no key ever reaches MLflow."""

from __future__ import annotations

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
