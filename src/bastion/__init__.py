"""Bastion: put open-source language models to work inside a company, safely."""

__version__ = "0.1.0"
