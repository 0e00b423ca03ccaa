"""Labelled data and how predictions are scored against it: readers for the JSON-lines and
PII gold-span formats, and classification, span and latency metrics. Ground level, so the
guards' training and the evaluations both use it."""
