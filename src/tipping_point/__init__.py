"""Phase 5, the tipping point: from how many optimization examples does a model's score start to improve?"""
