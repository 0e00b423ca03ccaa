"""The console's pages, one module each; each registers its routes on the console app."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from bastion.console.pages import (
    audit,
    cost,
    experiments,
    keys,
    models,
    overview,
    review,
    sources,
    trust,
    tuning,
)
from bastion.console.web import Console

# In the navigation's order (bastion.console.web.NAVIGATION).
PAGES: list[Callable[[FastAPI, Console], None]] = [
    overview.register,
    models.register,
    audit.register,
    trust.register,
    experiments.register,
    review.register,
    tuning.register,
    sources.register,
    cost.register,
    keys.register,
]
