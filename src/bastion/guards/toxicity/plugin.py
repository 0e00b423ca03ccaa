"""The toxicity guard as a part: its settings, per-app overrides and how it is built."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bastion.guards.base import GuardParts, GuardSetup, GuardSpec
from bastion.plugins import hookimpl
from bastion.plugins.hookspecs import Register

ToxicityAction = Literal["block", "flag"]


class ToxicitySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Screen for hateful or toxic language.")
    threshold: float = Field(0.55, ge=0, le=1, description="Score at which the action applies.")
    action: ToxicityAction = Field("block", description="What a detection does.")
    input: bool = Field(True, description="Screen the caller's messages.")
    output: bool = Field(True, description="Screen the model's answers (streams included).")
    model_path: str | None = Field(
        None, description="A model from `bastion guards train toxicity`; default: the shipped one."
    )


class ToxicityAppSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    toxicity_threshold: float | None = Field(
        None, ge=0, le=1, description="Overrides guards.toxicity.threshold for this app."
    )
    toxicity_action: ToxicityAction | None = Field(
        None, description="Overrides guards.toxicity.action for this app."
    )


def build(settings: ToxicitySettings, setup: GuardSetup) -> GuardParts:
    if not settings.enabled or not (settings.input or settings.output):
        return GuardParts()
    from bastion.guards.toxicity.detector import SHIPPED_MODEL, ToxicityDetector
    from bastion.guards.toxicity.guard import ToxicityGuard

    path = Path(settings.model_path).expanduser() if settings.model_path else SHIPPED_MODEL
    per_app = {
        name: (
            s.toxicity_threshold if s.toxicity_threshold is not None else settings.threshold,
            s.toxicity_action or settings.action,
        )
        for name, s in setup.apps.items()
        if s.toxicity_threshold is not None or s.toxicity_action is not None
    }
    guard = ToxicityGuard(ToxicityDetector(path), settings.threshold, settings.action, per_app)
    return GuardParts(
        input=[guard] if settings.input else [], output=[guard] if settings.output else []
    )


@hookimpl
def register_guards(register: Register) -> None:
    register(
        GuardSpec(
            name="toxicity",
            description="hateful or toxic language in prompts and answers (shipped classifier).",
            settings=ToxicitySettings,
            app_settings=ToxicityAppSettings,
            order=30,
            build=build,
        )
    )
