"""Evaluation owns running programs on examples: the engine (one example -> one record, concurrently), the unit
(one (model, task, arm) -> journal -> CSV + sidecar, resumable), and the model x task matrix the runners share."""
