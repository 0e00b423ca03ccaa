"""Bias: flags answers that generalise about a protected group (gender, race and ethnicity,
age, religion, disability, nationality, sexual orientation)."""
