"""Every way Bastion can be extended, one hook per kind of part.

A plug-in module implements any of these with `@bastion.plugins.hookimpl` and calls
`register` once per part it adds. Built-in parts use the same hooks (see the `bastion`
entry points in pyproject.toml); docs/extending.md has a complete example of each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("bastion")

Register = Callable[[Any], None]


@hookspec
def register_guards(register: Register) -> None:
    """Add guards: `register(GuardSpec(...))` (bastion.guards.base)."""


@hookspec
def register_connectors(register: Register) -> None:
    """Add source connectors: `register(ConnectorSpec(...))` (bastion.grounding.connectors)."""


@hookspec
def register_backends(register: Register) -> None:
    """Add model backends: `register(BackendSpec(...))` (bastion.models.base)."""


@hookspec
def register_apps(register: Register) -> None:
    """Add applications: `register(AppSpec(...))` (bastion.apps)."""
