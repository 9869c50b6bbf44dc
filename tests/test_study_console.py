"""What the README's first command prints, on a whole study run by the study scheduler against a scripted endpoint
(some replies unreadable): one console line per unit (at its end, never a start line too), a per-stage line of parse
failures and backend errors that equals what the result files hold, and the built-in-samples warning naming only the
tasks that read them (a task over the user's own files is not one)."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

from conftest import ROOT, run_cli
from loopback import Reply, ScriptedOpenAI, chat_fields, chat_reply

from src.tasks.sources import hub_reachable


def _reply(req: dict, index: int) -> Reply:
    """Task requests: one in three unreadable, chosen by the prompt (the same example fails in every stage); the
    optimizer's own requests (instruction proposals) always well formed."""
    fields = chat_fields(req) or ["answer"]
    user = req["messages"][-1]["content"] if req.get("messages") else ""
    if "proposed_instruction" not in fields and int(hashlib.md5(user.encode()).hexdigest(), 16) % 3 == 0:
        return Reply(content="I cannot answer that in the requested format.")
    return chat_reply(req, "1")


def _study(tmp: Path, url: str) -> Path:
    (tmp / "models.json").write_text(json.dumps({"models": [
        {"key": "lb", "provider": "openai_compatible", "model_id": "scripted", "kind": "local", "api_base": url,
         "json_fallback": False}]}))
    (tmp / "data").mkdir()
    shutil_rows = (ROOT / "experiments" / "data" / "tickets.csv").read_text(encoding="utf-8")
    (tmp / "data" / "tickets.csv").write_text(shutil_rows, encoding="utf-8")
    task = json.loads((ROOT / "experiments" / "custom-tasks.json").read_text())["tasks"][0]
    task["dataset"] = {"path": "data/tickets.csv"}
    (tmp / "tasks.json").write_text(json.dumps({"tasks": [task]}))
    study = tmp / "study.yaml"
    study.write_text("name: lb\nstudents: [lb]\ntasks: [math, tickets]\nlimit: 4\noptimizer: mipro_v2\n"
                     "preset: quick\nseeds: [10, 20]\ndata: auto\nadapter: chat\n")
    return study


def _csv_counts(path: Path) -> tuple[int, int, int]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return len(rows), sum(int(r["parse_failure"]) for r in rows), sum(1 for r in rows if r["error"])


def test_one_line_per_unit_and_per_stage_findings_from_the_result_files(tmp_path):
    with ScriptedOpenAI(_reply) as server:
        study = _study(tmp_path, server.url)
        res = tmp_path / "results"
        r = run_cli(["src.experiment", "--config", str(study), "--results-dir", str(res)], cwd=tmp_path,
                    env={"DSPY_CACHEDIR": str(tmp_path / "cache")}, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    err = r.stderr.splitlines()
    assert not [x for x in err if x.endswith(": started")], r.stderr
    # DSPy's own prints ("Bootstrapping set 2/3") and progress bars stay off the terminal without -v (in the log)
    for noise in ("Bootstrapping", "%|", "it/s]", "Average Metric"):
        assert noise not in r.stdout + r.stderr, noise
    logs = list((res / "logs").glob("experiment-*.log"))
    assert len(logs) == 1 and "Bootstrapping" in logs[0].read_text()
    for task in ("math", "tickets"):
        for prefix in (f"[baseline] lb / {task}:", f"[optimized] lb / {task}:", f"[optimize] lb / {task} dev baseline:",
                       f"[optimize] lb / {task} seed 10 ", f"[optimize] lb / {task} seed 20 ",
                       f"[optimize] lb / {task}: chose seed"):
            assert sum(1 for x in err if x.startswith(prefix)) == 1, (prefix, r.stderr)

    # The built-in samples warning names the built-in task only, in one line (the file task reads the user's CSV)
    if not hub_reachable():
        smoke = [x for x in err if "SMOKE" in x]
        assert len(smoke) == 1 and "task math runs on the built-in SMOKE samples" in smoke[0], r.stderr

    # Per stage: what the result files hold, and at least one parse failure in each (else this proves nothing)
    lines = {x.strip().split(":")[0]: x.strip() for x in r.stdout.splitlines()
             if x.startswith("  ") and "parse failures," in x}
    for stage, arm in (("baseline", "baseline"), ("eval", "optimized")):
        n, pf, errors = (sum(c) for c in zip(*(_csv_counts(p) for p in res.glob(f"local_{arm}_*_lb.csv"))))
        assert pf > 0, stage
        assert lines[stage] == f"{stage}: {pf} parse failures, {errors} backend errors in {n} examples", r.stdout
    seeds = res / "optimized_programs" / ".seeds"
    metas = [json.loads(p.read_text()) for p in seeds.glob("*/seed*.meta.json")]
    bases = [json.loads(p.read_text()) for p in seeds.glob("*/baseline_dev.json")]
    assert len(metas) == 4 and len(bases) == 2
    found = [m["result"] for m in metas] + bases  # (a sidecar's extra facts sit beside its fields)
    pf = sum(f["dev_parse_failures"] for f in found)
    n = sum(f["dev_examples"] for f in found)
    assert pf > 0 and n == 6 * 4  # the dev set (4 examples) of 2 tasks, scored by 2 seeds and the dev baseline
    assert lines["optimize"] == f"optimize: {pf} parse failures, 0 backend errors in {n} dev examples scored", r.stdout
