"""Evaluation: readers for labelled data, metrics, and guard evaluations that print JSON."""
