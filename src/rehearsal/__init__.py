"""Rehearsal: the full study's own model keys (Ollama tags, OpenAI and Anthropic models) answered by a local stand-in.

Nothing on this machine can reach Ollama, OpenAI or Anthropic, so the study's real configuration is rehearsed
against protocol-faithful fronts over the embedded llama.cpp server: the OpenAI protocol is the server's own, the
Ollama protocol (ollama_front) and the Anthropic Messages protocol (anthropic_front) are translated onto it. The
code under rehearsal (backends, LiteLLM, DSPy, every stage) is exactly the code users run against the real services;
only the answers come from a small model, so a rehearsal proves the path, never a verdict.
"""
