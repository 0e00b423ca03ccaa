"""The injection guard as a part: the classifier on prompts and retrieved sources, the
canary against system-prompt leaks, and spotlighting of tool output and sources."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bastion.guards.base import Guard, GuardParts, GuardSetup, GuardSpec
from bastion.plugins import hookimpl
from bastion.plugins.hookspecs import Register

InjectionAction = Literal["block", "flag"]


class InjectionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Screen the caller's messages for injections.")
    threshold: float = Field(0.5, ge=0, le=1, description="Score at which the action applies.")
    retrieved_threshold: float = Field(
        0.97,
        ge=0,
        le=1,
        description="Score at which a retrieved source is withheld (any rule hit also withholds "
        "it): company documents are full of instructions, so the prompt threshold would "
        "withhold a quarter of them.",
    )
    pasted_threshold: float = Field(
        0.97,
        ge=0,
        le=1,
        description="Score at which material pasted into a prompt (a dialogue, a transcript, an "
        "e-mail after 'Summarize this:') counts as an injection (any rule hit also counts); the "
        "sender's own words are held to `threshold`.",
    )
    action: InjectionAction = Field("block", description="What a detection does.")
    model_path: str | None = Field(
        None, description="A model from `bastion guards train injection`; default: the shipped one."
    )
    canary: bool = Field(
        True, description="Plant a canary in system prompts and block answers that leak it."
    )
    spotlight: bool = Field(
        True, description="Delimit tool output as data, with a per-request boundary."
    )


class InjectionAppSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    injection_action: InjectionAction | None = Field(
        None,
        description="Overrides guards.injection.action for this app (flag suits an app whose "
        "prompts are whole documents with no instruction of their own).",
    )


def build(settings: InjectionSettings, setup: GuardSetup) -> GuardParts:
    from bastion.guards.injection.guard import CanaryGuard, InjectionGuard, Spotlight

    inputs: list[Guard] = []
    if settings.enabled:
        from bastion.guards.injection.detector import SHIPPED_MODEL, InjectionDetector

        path = Path(settings.model_path).expanduser() if settings.model_path else SHIPPED_MODEL
        per_app = {n: s.injection_action for n, s in setup.apps.items() if s.injection_action}
        inputs.append(
            InjectionGuard(
                InjectionDetector(path),
                settings.threshold,
                settings.action,
                retrieved_threshold=settings.retrieved_threshold,
                pasted_threshold=settings.pasted_threshold,
                per_app=per_app,
            )
        )
    # Retrieved sources are always marked as data; tool output when `spotlight` is on.
    return GuardParts(
        input=inputs,
        output=[CanaryGuard()] if settings.canary else [],
        hooks=[Spotlight(tools=settings.spotlight)],
    )


@hookimpl
def register_guards(register: Register) -> None:
    register(
        GuardSpec(
            name="injection",
            description="prompt injections and jailbreaks in prompts and retrieved sources; "
            "system-prompt leaks in answers.",
            settings=InjectionSettings,
            app_settings=InjectionAppSettings,
            order=20,
            build=build,
        )
    )
