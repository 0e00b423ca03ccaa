"""Guards: small checks on a request's input and a model's output."""

from bastion.config import GuardsConfig
from bastion.guards.base import Finding, Guard, GuardContext, Verdict
from bastion.guards.deny_list import DenyListGuard
from bastion.guards.size_limit import InputSizeGuard


def input_guards(config: GuardsConfig) -> list[Guard]:
    """The input guards the configuration asks for, in the order they run."""
    return [
        InputSizeGuard(config.max_input_chars),
        DenyListGuard(config.deny_list.terms, config.deny_list.action),
    ]


def output_guards(config: GuardsConfig) -> list[Guard]:
    """The output guards the configuration asks for, in the order they run."""
    return [DenyListGuard(config.deny_list.terms, config.deny_list.action)]


__all__ = [
    "DenyListGuard",
    "Finding",
    "Guard",
    "GuardContext",
    "InputSizeGuard",
    "Verdict",
    "input_guards",
    "output_guards",
]
