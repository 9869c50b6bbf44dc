"""Consolidation owns turning result files into evidence, in two steps: a pure analysis, then its rendering.

inputs.py (result CSVs and sidecars, validated) and programs.py (optimization sidecars) read; comparability.py,
arms.py, scoreboard.py, variance.py, economics.py compute, and analysis.py gathers them into one Analysis;
document.py and findings.py build the report's document from it, studies.py the later studies' sections;
golden.py writes the golden CSVs from the Analysis alone, SUMMARY.md and report.html from the document, and swaps
the folder in whole. format.py says how numbers are written.
"""
