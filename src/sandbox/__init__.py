"""The sandbox owns running untrusted, model-generated code and judging it: host.py starts each run and reads its
authenticated verdict, child.py (standard library only) isolates it, judge.py runs the program and its tests in
two processes that exchange only plain data, lifetime.py ties every run to the host, and policy.py holds the
opt-in for running without kernel isolation."""

from src.sandbox.host import DEFAULT_LIMITS, Check, ExecResult, Isolation, Limits, isolation, run_checked, run_python

__all__ = ["DEFAULT_LIMITS", "Check", "ExecResult", "Isolation", "Limits", "isolation", "run_checked", "run_python"]
