"""Entry points of the tipping-point study (python -m src.tipping_point.runner / .analyzer); the study itself lives
in src.studies.tipping_point."""
