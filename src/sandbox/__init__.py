"""The sandbox owns running untrusted, model-generated code: host.py starts and judges each run, child.py (a
standard-library-only script) isolates and executes it."""

from src.sandbox.host import DEFAULT_LIMITS, ExecResult, Isolation, Limits, isolation, run_python

__all__ = ["DEFAULT_LIMITS", "ExecResult", "Isolation", "Limits", "isolation", "run_python"]
