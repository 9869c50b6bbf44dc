"""The nine task domains of the study, as TaskSpecs: which domain module scores them and where their splits are."""

from __future__ import annotations

from src.registry.specs import SplitRef, TaskSpec

def _ref(hub_id: str, split: str, config: str | None = None, folder: str | None = None) -> SplitRef:
    return SplitRef(hub_id, folder or hub_id.split("/")[-1], split, config)


BUILTIN_TASKS = [
    TaskSpec("classification", "src.tasks.domains.banking77", "Banking77 intent", "accuracy",
             _ref("PolyAI/banking77", "train", folder="banking77"), _ref("PolyAI/banking77", "test", folder="banking77")),
    TaskSpec("math", "src.tasks.domains.gsm8k", "GSM8K", "numeric exact match",
             _ref("openai/gsm8k", "train", "main", "gsm8k"), _ref("openai/gsm8k", "test", "main", "gsm8k")),
    TaskSpec("qa", "src.tasks.domains.hotpot_qa", "HotpotQA closed-book", "exact match",
             _ref("hotpotqa/hotpot_qa", "train", "distractor", "hotpot_qa"),
             _ref("hotpotqa/hotpot_qa", "validation", "distractor", "hotpot_qa")),
    TaskSpec("extraction", "src.tasks.domains.conll2003", "CoNLL-2003 NER", "entity micro-F1",
             _ref("eriktks/conll2003", "train", "conll2003", "conll2003"),
             _ref("eriktks/conll2003", "test", "conll2003", "conll2003")),
    TaskSpec("analysis", "src.tasks.domains.boolq", "BoolQ", "accuracy",
             _ref("google/boolq", "train", folder="boolq"), _ref("google/boolq", "validation", folder="boolq")),
    TaskSpec("synthesis", "src.tasks.domains.xsum", "XSum", "ROUGE-L F1",
             _ref("EdinburghNLP/xsum", "train", folder="xsum"), _ref("EdinburghNLP/xsum", "test", folder="xsum")),
    TaskSpec("agentic", "src.tasks.domains.strategy_qa", "StrategyQA", "accuracy",
             _ref("metaeval/strategy-qa", "train", folder="metaeval__strategy-qa"),
             _ref("metaeval/strategy-qa", "train", folder="metaeval__strategy-qa")),
    TaskSpec("rag", "src.tasks.domains.squad", "SQuAD with context", "SQuAD F1",
             _ref("rajpurkar/squad", "train", "plain_text", "squad"),
             _ref("rajpurkar/squad", "validation", "plain_text", "squad")),
    TaskSpec("code", "src.tasks.domains.humaneval", "MBPP -> HumanEval", "pass@1",
             _ref("google-research-datasets/mbpp", "train", "full", "mbpp"),
             _ref("openai/openai_humaneval", "test", "openai_humaneval", "openai_humaneval")),
]
