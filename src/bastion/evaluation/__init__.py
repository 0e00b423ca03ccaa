"""Evaluation: guard, retrieval and bias evaluations that print JSON (the labelled-data
readers and metrics they score with are in `bastion.labelled`)."""
