"""One module per dataset: how its records become examples, the signature the model answers, and its metric.

Task keys (classification, math, qa, ...) stay as the study named them; modules are named after their datasets.
"""
