"""The PII guard as a part: its settings, per-app overrides and how it is built."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bastion.guards.base import GuardParts, GuardSetup, GuardSpec
from bastion.plugins import hookimpl
from bastion.plugins.hookspecs import Register

PiiAction = Literal["mask", "block", "allow"]


def _reported_not_masked() -> dict[str, PiiAction]:
    # Places, organisations, groups and links are detected and reported but not masked by
    # default: masking them would make ordinary questions unanswerable.
    return {"LOCATION": "allow", "ORGANIZATION": "allow", "NRP": "allow", "URL": "allow"}


class PiiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Mask PII in prompts and PII leaked in answers.")
    entities: list[str] | None = Field(
        None, description="Entity types to detect; default: Bastion's list (see the README)."
    )
    default_action: PiiAction = Field("mask", description="For types not listed in `actions`.")
    actions: dict[str, PiiAction] = Field(
        default_factory=_reported_not_masked,
        description="Per entity type, e.g. {US_SSN: block}.",
    )
    threshold: float = Field(0.05, ge=0, le=1, description="Lowest detection score acted on.")
    output_ner: bool = Field(
        False,
        description="Also look for leaked names and places in answers (NER: about 13 ms per "
        "KB); off, the leak check runs the pattern recognizers only.",
    )
    vault_key_env: str = Field(
        "BASTION_VAULT_KEY",
        description="Environment variable with the vault's Fernet keys (comma-separated, the "
        "first seals); "
        "default: BASTION_HOME/vault.key, created on first use.",
    )


class PiiAppSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pii_actions: dict[str, PiiAction] = Field(
        default_factory=dict, description="Overrides guards.pii.actions for this app."
    )


def build(settings: PiiSettings, setup: GuardSetup) -> GuardParts:
    if not settings.enabled:
        return GuardParts()
    from bastion.guards.pii.detector import DEFAULT_ENTITIES, PiiDetector
    from bastion.guards.pii.guard import PiiMasker
    from bastion.guards.pii.vault import vault_keys

    detector = PiiDetector(tuple(settings.entities or DEFAULT_ENTITIES), settings.threshold)
    masker = PiiMasker(
        detector,
        dict(settings.actions),
        settings.default_action,
        {name: dict(s.pii_actions) for name, s in setup.apps.items() if s.pii_actions},
        output_ner=settings.output_ner,
        fernet=vault_keys(setup.home, settings.vault_key_env),
    )
    return GuardParts(input=[masker], output=[masker])


@hookimpl
def register_guards(register: Register) -> None:
    register(
        GuardSpec(
            name="pii",
            description="personal data masked in prompts (restored for the caller) and leaks "
            "masked in answers.",
            settings=PiiSettings,
            app_settings=PiiAppSettings,
            order=90,
            build=build,
        )
    )
