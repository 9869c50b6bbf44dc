"""Optional experiment tracking with MLflow (--mlflow [TRACKING_URI]): each evaluation unit as a run (parameters,
metrics with their intervals, the result CSV and sidecar as artifacts) and each optimization unit as a run with
DSPy's own mlflow.dspy.autolog, so every optimizer trial is browsable. Nothing is logged unless asked, and MLflow
is imported only then (requirements/mlflow.txt is an optional extra)."""
