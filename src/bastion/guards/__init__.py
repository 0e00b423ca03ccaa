"""Guards: small checks on a request's input and a model's output.

Each guard is a plug-in (`GuardSpec`, registered through `bastion.plugins`); `build_chain`
builds the registered guards from their configuration sections, in their declared order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bastion.guards.base import (
    AppEntry,
    Finding,
    Guard,
    GuardContext,
    GuardParts,
    GuardSetup,
    GuardSpec,
    GuardsSettings,
    RequestHooks,
    Verdict,
)
from bastion.guards.size_limit import InputSizeGuard
from bastion.plugins import registry


@dataclass(frozen=True)
class GuardChain:
    """The configured guards in the order they run, and every part with request hooks."""

    input: list[Guard]
    output: list[Guard]
    hooks: list[RequestHooks]


def guard_specs() -> list[GuardSpec]:
    """The registered guards, in the order they run."""
    return sorted(registry.parts("guard", GuardSpec).values(), key=lambda s: (s.order, s.name))


def build_chain(settings: GuardsSettings, apps: Sequence[AppEntry], home: Path) -> GuardChain:
    """Build every registered guard from its `guards.<name>` section and the apps'
    per-app overrides. The size limit comes first: nothing reads an oversized prompt."""
    inputs: list[Guard] = [InputSizeGuard(settings.max_input_chars)]
    outputs: list[Guard] = []
    hooks: list[RequestHooks] = []
    for spec in guard_specs():
        per_app = (
            {a.name: a.part_settings(spec.app_settings) for a in apps} if spec.app_settings else {}
        )
        parts: GuardParts = spec.build(settings.section(spec.name), GuardSetup(home, per_app))
        inputs += parts.input
        outputs += parts.output
        for part in [*parts.input, *parts.output, *parts.hooks]:
            if not any(part is h for h in hooks):
                hooks.append(part)
    return GuardChain(inputs, outputs, hooks)


__all__ = [
    "Finding",
    "Guard",
    "GuardChain",
    "GuardContext",
    "GuardSpec",
    "Verdict",
    "build_chain",
    "guard_specs",
]
