"""Experiments: statistics for A/B tests of competing model variants."""
