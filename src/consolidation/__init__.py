"""Consolidation owns turning result files into evidence: reading and validating them (inputs.py), the analysis
(arms, paired deltas, scoreboard, variance, economics), the later studies' tables (studies.py), number formatting
(format.py), and the golden files."""
