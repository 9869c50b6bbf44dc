"""Commands own the command line: argument parsing and orchestration only, one module per entry point
(src/run_*.py, src/*_eval.py and the others are thin shims onto these), the shared flags in common.py."""
