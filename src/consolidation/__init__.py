"""Consolidation of result files: inputs, statistics per arm, the golden tables, SUMMARY.md and the report."""
