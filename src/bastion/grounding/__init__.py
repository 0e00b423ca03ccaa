"""Grounding: company data from many sources, harmonized, indexed and retrieved with permissions."""
