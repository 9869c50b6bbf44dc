"""The results layer's owners: file names round-trip on awkward keys, one checkpoint rule, and sidecars with a schema
that reads what older versions wrote."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from conftest import run_cli
from src.errors import UserError
from src.results import naming
from src.results.checkpoint import REFUSE, REPLACE, claim
from src.results.schema import SCHEMA_VERSION, ProgramMeta, SeedMeta, TippingCheckpoint, UnitMeta

MODELS = ["qwen2.5_7b", "deepseek-r1_7b", "gpt-4o", "llama3.2", "phi4", "smollm2-135m", "qwen3_4b", "gpt-5.2",
          "claude-sonnet-4.5", "a_b_c", "b_c", "c"]
TASKS = ["classification", "math", "qa", "extraction", "analysis", "synthesis", "agentic", "rag", "code",
         "my_task", "my_task_2"]
ARMS = ["baseline", "optimized", "bootstrap_rs", "gepa", "cot_zero_shot", "demo-n0", "demo-n12", "tp-baseline",
        "tp-n3-s10"]


@pytest.mark.parametrize("prefix", naming.PREFIXES)
def test_result_names_round_trip_on_keys_with_underscores_dots_dashes_and_digits(prefix):
    for model, task, arm in itertools.product(MODELS, TASKS, ARMS):
        name = naming.result_name(prefix, arm, task, model)
        parsed = naming.parse_result_name(name, tasks=TASKS, models=MODELS)
        assert parsed == naming.ResultName(prefix, arm, task, model), (name, parsed)
        # a unit's own columns are enough to read its name back, too
        assert naming.parse_result_name(name, tasks=[task], models=[model]) == parsed


def test_study_file_names_are_unchanged():
    r = Path("results")
    assert naming.result_csv(r, "local", "baseline", "qa", "qwen2.5_7b").name == "local_baseline_qa_qwen2.5_7b.csv"
    assert naming.result_csv(r, "api", "optimized", "math", "gpt-4o").name == \
        "api_optimized_math_optimized_gpt-4o.csv"
    assert naming.result_csv(r, "local", "gepa", "rag", "phi4").name == "local_gepa_rag_phi4.csv"
    assert naming.program_path(r, "deepseek-r1_7b", "qa", "mipro_v2").name == "deepseek-r1_7b_qa_mipro_v2.json"
    assert naming.journal_path(r / "x.csv") == r / ".journal" / "x.jsonl"
    assert naming.tipping_checkpoint(r, "qwen3_4b", "math", 3, 20).name == "qwen3_4b_math_n3_seed20.json"
    assert naming.arm_for_optimizer("mipro_v2") == "optimized" and naming.arm_for_optimizer("gepa") == "gepa"


def test_program_names_round_trip():
    optimizers = ["mipro_v2", "bootstrap_rs", "gepa", "cot_zero_shot"]
    for model, task, opt in itertools.product(MODELS, TASKS, optimizers):
        name = naming.program_path(Path("r"), model, task, opt).name
        for candidate in (name, name[: -len(".json")] + ".meta.json"):
            assert naming.parse_program_name(candidate, tasks=TASKS, optimizers=optimizers) == \
                naming.ProgramName(model, task, opt), candidate
    assert naming.parse_program_name("notes.txt", tasks=TASKS, optimizers=optimizers) is None


def test_a_name_two_key_pairs_can_spell_reads_as_the_longest_model_unless_the_columns_say_otherwise():
    """task 'qa' + model 'qwen2.5_7b' and task 'qa_qwen2.5' + model '7b' spell the same file name: without more
    information the longer model key wins; a unit's own columns (what consolidation passes) settle it."""
    name = naming.result_name("local", "baseline", "qa_qwen2.5", "7b")
    assert name == naming.result_name("local", "baseline", "qa", "qwen2.5_7b")
    both = naming.parse_result_name(name, tasks=["qa", "qa_qwen2.5"], models=["qwen2.5_7b", "7b"])
    assert (both.task, both.model) == ("qa", "qwen2.5_7b")
    own = naming.parse_result_name(name, tasks=["qa_qwen2.5"], models=["7b"])
    assert (own.task, own.model) == ("qa_qwen2.5", "7b")


def test_names_that_are_not_results_are_not_parsed():
    assert naming.parse_result_name("summary_scores.csv", tasks=TASKS, models=MODELS) is None
    assert naming.parse_result_name("local_baseline_unknowntask_x.csv", tasks=TASKS, models=MODELS) is None
    assert naming.result_prefix("api_whatever.csv") == "api" and naming.result_prefix("x.csv") is None


# ---- checkpoint identity ------------------------------------------------------------------------------------------

def test_claim_reuses_same_identity_and_starts_fresh_without_files(tmp_path):
    f = tmp_path / "unit.csv"
    assert claim(None, {"a": 1}, [f], results_dir=tmp_path, force=False, what=f) is False
    f.write_text("x")
    assert claim({"a": 1}, {"a": 1}, [f], results_dir=tmp_path, force=False, what=f) is True
    assert f.exists()


def test_claim_refuses_other_settings_naming_the_difference(tmp_path):
    f = tmp_path / "unit.csv"
    f.write_text("x")
    with pytest.raises(UserError, match=r"adapter='chat' \(now 'json'\).*--force"):
        claim({"adapter": "chat", "n": 1}, {"adapter": "json", "n": 1}, [f], results_dir=tmp_path, force=False,
              what=f, on_stale=REFUSE)
    with pytest.raises(UserError, match="record no settings"):
        claim(None, {"a": 1}, [f], results_dir=tmp_path, force=False, what=f)
    assert f.read_text() == "x"  # refused: nothing touched


def test_claim_archives_on_force_and_on_replace_never_deletes(tmp_path):
    f, g = tmp_path / "unit.csv", tmp_path / "unit.meta.json"
    f.write_text("old")
    g.write_text("{}")
    assert claim({"a": 1}, {"a": 1}, [f, g], results_dir=tmp_path, force=True, what=f) is False
    archived = sorted(p.name for p in (tmp_path / ".archive").rglob("*") if p.is_file())
    assert archived == ["unit.csv", "unit.meta.json"] and not f.exists()
    f.write_text("stale")
    assert claim({"a": 2}, {"a": 1}, [f], results_dir=tmp_path, force=False, what=f, on_stale=REPLACE) is False
    assert not f.exists() and len(list((tmp_path / ".archive").rglob("unit.csv"))) == 2


def test_claim_evidence_decides_what_counts_as_orphaned(tmp_path):
    journal, csv_file = tmp_path / "j.jsonl", tmp_path / "u.csv"
    journal.write_text("torn header")
    # a journal whose header line was torn is not evidence of results; the CSV would be
    assert claim(None, {"a": 1}, [csv_file, journal], results_dir=tmp_path, force=False, what=csv_file,
                 evidence=[csv_file]) is False
    assert journal.exists()


def test_every_unit_kind_uses_the_one_checkpoint_rule():
    """No module but src/results/checkpoint.py compares stored headers by hand."""
    from conftest import ROOT

    offenders = []
    for path in (ROOT / "src").rglob("*.py"):
        text = path.read_text()
        if path.name != "checkpoint.py" and ("header\") != header" in text or ".header != header" in text or
                                             "header\") == header" in text or "_differences(" in text):
            offenders.append(str(path))
    assert not offenders, offenders
    users = {p.relative_to(ROOT).as_posix() for p in (ROOT / "src").rglob("*.py") if "claim(" in p.read_text()}
    assert {"src/evaluation/unit.py", "src/optimization/search.py",
            "src/studies/tipping_point/runner.py"} <= users


# ---- sidecar schema -----------------------------------------------------------------------------------------------

OLD_UNIT_SIDECAR = {  # written by the previous main (no schema_version), trimmed
    "status": "complete", "experiment_id": "baseline-smollm2-135m-math-1a2b3c4d",
    "unit": {"phase": "baseline", "model": "smollm2-135m", "task": "math", "dspy": "3.4.1", "data_source": "builtin",
             "eval_fingerprint": "abc"},
    "smoke_data": True, "model": {"key": "smollm2-135m", "kind": "local", "provider": "embedded"},
    "lm": {"model": "openai/smollm2-135m", "temperature": 0.0}, "adapter": "structured", "concurrency": 2,
    "data": {"source": "builtin", "smoke_data": True, "notes": ["x"], "eval_split": "gsm8k/test"},
    "examples": {"n": 3, "fingerprint": "f00"}, "program": {"sha": "p1", "kind": "baseline", "module": "Predict"},
    "seed": None, "summary": {"metric": "numeric exact match", "score": 0.0, "n": 3},
    "wall_s": 1.5, "run": {"versions": {"dspy": "3.4.1"}, "git_sha": "abc", "command": "python -m x"},
    "an_old_field": {"kept": True},
}


def test_unit_sidecars_of_older_versions_read_and_keep_unknown_fields(tmp_path):
    meta = UnitMeta.from_dict(OLD_UNIT_SIDECAR)
    assert meta.schema_version == 1 and meta.status == "complete" and meta.concurrency == 2
    assert meta.dspy_version == "3.4.1" and meta.data_source == "builtin" and meta.eval_fingerprint == "abc"
    assert meta.smoke and meta.examples.fingerprint == "f00" and meta.program.kind == "baseline"
    assert meta.program.module == "Predict"
    path = tmp_path / "x.meta.json"
    meta.write(path)
    written = json.loads(path.read_text())
    assert written["schema_version"] == SCHEMA_VERSION and written["an_old_field"] == {"kept": True}
    again = UnitMeta.read(path)
    assert again.to_dict() == written


def test_sidecar_fields_of_the_wrong_type_fall_back_to_defaults():
    meta = UnitMeta.from_dict({"status": 7, "concurrency": "two", "wall_s": "slow", "examples": "n/a",
                               "unit": [1, 2], "summary": {"n": True}})
    assert meta.status is None and meta.concurrency is None and meta.wall_s is None
    assert meta.examples.n == 0 and meta.unit == {} and meta.summary.n == 0
    assert UnitMeta.from_dict([1, 2, 3]).status is None  # not even an object
    assert UnitMeta.from_dict({"concurrency": 2.0}).concurrency == 2  # a hand-edited integral float still counts
    assert UnitMeta.from_dict({"concurrency": 2.5}).concurrency is None


def test_program_and_checkpoint_sidecars_parse_their_nested_parts():
    side = ProgramMeta.from_dict({"model": "qwen2.5_7b", "task": "qa", "optimizer": "mipro_v2", "status": "ok",
                                  "seeds": [{"seed": 10, "status": "ok", "dev_score": 0.5, "n_demos": 3}, "junk"],
                                  "optimization_cost": {"lm_calls": 12, "cost_usd": 0.5},
                                  "predictors": {"self": {"n_demos": 2}}, "module": "ChainOfThought"})
    assert [s.seed for s in side.seeds] == [10] and side.optimization_cost.lm_calls == 12
    assert side.demo_count == 2 and side.is_chain_of_thought
    assert side.to_dict()["seeds"][0]["dev_score"] == 0.5
    seed = SeedMeta.from_dict({"header": {"a": 1}, "status": "failed", "result": {"seed": 20, "error": "boom"}})
    assert seed.result.error == "boom" and seed.header == {"a": 1}
    ck = TippingCheckpoint.from_dict({"header": {"model": "m"}, "n": 2, "csv": "x.csv",
                                      "compile_cost": {"lm_calls": 4}})
    assert ck.n == 2 and ck.compile_cost["lm_calls"] == 4


def test_unreadable_sidecars_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.meta.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="cannot be read as JSON"):
        UnitMeta.read(bad)
    assert UnitMeta.read_optional(tmp_path / "missing.meta.json") is None


# ---- the naming bug this layout fixed ---------------------------------------------------------------------------

def test_demo_curves_find_models_whose_keys_contain_underscores(tmp_path):
    """A results folder holding programs for the study's own keys: demo_curve_eval without --models must read them
    as qwen2.5_7b, deepseek-r1_7b, llama3.2 and gpt-4o (it used to split on '_' and stop at 'qwen2.5')."""
    programs = tmp_path / "optimized_programs"
    programs.mkdir()
    keys = ["qwen2.5_7b", "deepseek-r1_7b", "llama3.2", "gpt-4o"]
    for key in keys:
        for with_model_field in (True, False):
            task = "analysis" if with_model_field else "agentic"  # older sidecars may name no model: parse names
            path = programs / f"{key}_{task}_mipro_v2.json"
            path.write_text(json.dumps({"predict": {"demos": []}, "metadata": {"dependency_versions": {}}}))
            side = {"status": "ok", "n_demos_total": 4, "optimizer": "mipro_v2"}
            if with_model_field:
                side.update(model=key, task=task)
            path.with_suffix(".meta.json").write_text(json.dumps(side))
    r = run_cli(["src.demo_curve_eval", "--limit", "6", "--results-dir", str(tmp_path), "--dry-run"])
    assert r.returncode == 0, r.stderr
    assert "unknown model" not in r.stderr
    for key in keys:
        assert f"{key} x analysis: baseline + n = 0..4 demos" in r.stdout, r.stdout
        assert f"{key} x agentic: baseline + n = 0..4 demos" in r.stdout, r.stdout


def test_demo_curves_say_when_the_selection_rule_leaves_nothing_to_curve(tmp_path):
    """Programs exist but none has the >= 2 demos the default takes (a small optimizer budget): a finding, exit 0 in
    one line; a folder without programs stays an error."""
    r = run_cli(["src.demo_curve_eval", "--limit", "2", "--results-dir", str(tmp_path), "--dry-run"])
    assert r.returncode == 2 and "no (model, task) pair qualifies" in r.stderr
    programs = tmp_path / "optimized_programs"
    programs.mkdir()
    path = programs / "llama3.2_analysis_mipro_v2.json"
    path.write_text(json.dumps({"predict": {"demos": []}, "metadata": {"dependency_versions": {}}}))
    path.with_suffix(".meta.json").write_text(json.dumps({"status": "ok", "n_demos_total": 1, "optimizer": "mipro_v2",
                                                          "model": "llama3.2", "task": "analysis"}))
    r = run_cli(["src.demo_curve_eval", "--limit", "2", "--results-dir", str(tmp_path), "--dry-run"])
    assert r.returncode == 0, r.stderr
    assert "nothing to curve" in r.stdout and "llama3.2" in r.stdout
