"""Helpers for sandbox tests that go through the real runner: a models.json entry for a scripted OpenAI-compatible
endpoint, the function a code-task request asks for, and the built-in HumanEval sample's canonical solutions."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import ROOT


def scripted_models(tmp_path: Path, url: str) -> None:
    (tmp_path / "models.json").write_text(json.dumps({"models": [
        {"key": "scripted", "provider": "openai_compatible", "model_id": "scripted", "kind": "local",
         "api_base": url, "request_timeout_s": 10.0}]}))


def entry_point(request: dict) -> str:
    text = "\n".join(str(m.get("content")) for m in request.get("messages", []))
    names = re.findall(r"def (\w+)\(", text)
    return names[-1] if names else "f"


def builtin_canonical() -> dict[str, tuple[str, str]]:
    rows = [json.loads(ln) for ln in (ROOT / "src/tasks/builtin/openai_humaneval/test.jsonl").open()]
    return {r["entry_point"]: (r["task_id"], r["prompt"] + r["canonical_solution"]) for r in rows}
