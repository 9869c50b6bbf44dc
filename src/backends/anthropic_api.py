"""Anthropic backend (Claude) through DSPy/LiteLLM's anthropic provider."""

from __future__ import annotations

from src.backends.hosted import HostedAPIBackend


class AnthropicBackend(HostedAPIBackend):
    provider = "anthropic"
    key_env = "ANTHROPIC_API_KEY"
    base_env = "ANTHROPIC_BASE_URL"
    litellm_prefix = "anthropic"
    default_endpoint = "https://api.anthropic.com"
