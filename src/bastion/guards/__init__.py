"""Guards: small checks on a request's input and a model's output."""

from bastion.config import BastionConfig
from bastion.guards.base import Finding, Guard, GuardContext, Verdict
from bastion.guards.deny_list import DenyListGuard
from bastion.guards.size_limit import InputSizeGuard


def _pii_guard(config: BastionConfig) -> list[Guard]:
    pii = config.guards.pii
    if not pii.enabled:
        return []
    from bastion.guards.pii.detector import DEFAULT_ENTITIES, PiiDetector
    from bastion.guards.pii.guard import PiiMasker

    detector = PiiDetector(tuple(pii.entities or DEFAULT_ENTITIES), pii.threshold)
    app_actions = {a.name: dict(a.pii_actions) for a in config.apps if a.pii_actions}
    return [PiiMasker(detector, dict(pii.actions), pii.default_action, app_actions)]


def input_guards(config: BastionConfig) -> list[Guard]:
    """The input guards the configuration asks for, in the order they run."""
    guards = config.guards
    deny = DenyListGuard(guards.deny_list.terms, guards.deny_list.action)
    return [InputSizeGuard(guards.max_input_chars), deny, *_pii_guard(config)]


def output_guards(config: BastionConfig) -> list[Guard]:
    """The output guards the configuration asks for, in the order they run."""
    guards = config.guards
    return [DenyListGuard(guards.deny_list.terms, guards.deny_list.action), *_pii_guard(config)]


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
