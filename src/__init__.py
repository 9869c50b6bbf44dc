"""Intelligence Arbitrage: do DSPy-optimized small local models match frontier APIs, on which tasks, at what cost?"""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# These must be set before dspy/litellm are imported anywhere: LiteLLM otherwise fetches a
# cost map from the internet at import (5 s timeout on an offline machine), and DSPy's
# response cache would land in the user's home instead of the project folder.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# Likewise its Anthropic beta-header table: fetched from GitHub on the first Claude call unless told to use its copy.
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
os.environ.setdefault("DSPY_CACHEDIR", str(PROJECT_ROOT / ".cache" / "dspy"))
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
