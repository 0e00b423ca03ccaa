"""The console's pages, one module each; each registers its routes on the console app."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from bastion.console.pages import audit, keys, overview
from bastion.console.web import Console

PAGES: list[Callable[[FastAPI, Console], None]] = [
    overview.register,
    audit.register,
    keys.register,
]
