"""Guards: small checks on a request's input and a model's output."""

from pathlib import Path

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
    masker = PiiMasker(
        detector, dict(pii.actions), pii.default_action, app_actions, output_ner=pii.output_ner
    )
    return [masker]


def _injection_guard(config: BastionConfig) -> list[Guard]:
    settings = config.guards.injection
    if not settings.enabled:
        return []
    from pathlib import Path

    from bastion.guards.injection.detector import SHIPPED_MODEL, InjectionDetector
    from bastion.guards.injection.guard import InjectionGuard

    path = Path(settings.model_path).expanduser() if settings.model_path else SHIPPED_MODEL
    return [
        InjectionGuard(
            InjectionDetector(path),
            settings.threshold,
            settings.action,
            settings.retrieved_threshold,
            {a.name: a.injection_action for a in config.apps if a.injection_action},
        )
    ]


def _toxicity_guard(config: BastionConfig, stage: str) -> list[Guard]:
    settings = config.guards.toxicity
    if not settings.enabled or not getattr(settings, stage):
        return []
    from pathlib import Path

    from bastion.guards.toxicity.detector import SHIPPED_MODEL, ToxicityDetector
    from bastion.guards.toxicity.guard import ToxicityGuard

    path = Path(settings.model_path).expanduser() if settings.model_path else SHIPPED_MODEL
    per_app = {
        a.name: (
            a.toxicity_threshold if a.toxicity_threshold is not None else settings.threshold,
            a.toxicity_action or settings.action,
        )
        for a in config.apps
        if a.toxicity_threshold is not None or a.toxicity_action is not None
    }
    return [ToxicityGuard(ToxicityDetector(path), settings.threshold, settings.action, per_app)]


def _bias_guard(config: BastionConfig) -> list[Guard]:
    settings = config.guards.bias
    if not settings.enabled:
        return []
    from bastion.guards.bias.detector import SHIPPED_MODEL, BiasDetector, Lexicon
    from bastion.guards.bias.guard import BiasGuard

    model = Path(settings.model_path).expanduser() if settings.model_path else SHIPPED_MODEL
    lexicon = (
        Lexicon.load(Path(settings.lexicon_path).expanduser()) if settings.lexicon_path else None
    )
    return [BiasGuard(BiasDetector(model, lexicon), settings.threshold, settings.action)]


def copyright_guard(config: BastionConfig, home: Path) -> list[Guard]:
    settings = config.guards.copyright
    if not settings.enabled:
        return []
    from bastion.copyright.matcher import Matcher, MatchRules
    from bastion.copyright.registry import ProtectedRegistry
    from bastion.guards.copyright import CopyrightGuard

    rules = MatchRules(
        min_chars=settings.min_chars,
        near_similarity=settings.near_similarity,
        near_min_chars=settings.near_min_chars,
    )
    path = Path(settings.index_path).expanduser()
    registry = ProtectedRegistry(path if path.is_absolute() else home / path)
    per_app = {a.name: a.copyright_action for a in config.apps if a.copyright_action}
    return [CopyrightGuard(Matcher(registry, rules), settings.action, per_app)]


def input_guards(config: BastionConfig) -> list[Guard]:
    """The input guards the configuration asks for, in the order they run. Injection runs
    before PII masking, so it reads what the caller wrote."""
    guards = config.guards
    deny = DenyListGuard(guards.deny_list.terms, guards.deny_list.action)
    return [
        InputSizeGuard(guards.max_input_chars),
        deny,
        *_injection_guard(config),
        *_toxicity_guard(config, "input"),
        *_pii_guard(config),
    ]


def output_guards(config: BastionConfig, home: Path) -> list[Guard]:
    """The output guards the configuration asks for, in the order they run (`home` holds
    the protected-works registry)."""
    from bastion.guards.injection.guard import CanaryGuard

    guards = config.guards
    canary: list[Guard] = [CanaryGuard()] if guards.injection.canary else []
    deny = DenyListGuard(guards.deny_list.terms, guards.deny_list.action)
    return [
        deny,
        *canary,
        *_toxicity_guard(config, "output"),
        *_bias_guard(config),
        *copyright_guard(config, home),
        *_pii_guard(config),
    ]


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
