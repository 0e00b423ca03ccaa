"""The bias guard as a part: its settings and how it is built."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bastion.guards.base import GuardParts, GuardSetup, GuardSpec
from bastion.plugins import hookimpl
from bastion.plugins.hookspecs import Register

BiasAction = Literal["flag", "block"]


class BiasSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Flag answers that generalise about a protected group.")
    threshold: float = Field(
        0.6, ge=0, le=1, description="Sentence score at which the action applies."
    )
    action: BiasAction = Field("flag", description="flag (the answer is unchanged) or block.")
    lexicon_path: str | None = Field(
        None,
        description="Group terms and cues (YAML like guards/bias/lexicon.yaml); default: the "
        "shipped one.",
    )
    model_path: str | None = Field(
        None, description="A model from `bastion guards train bias`; default: the shipped one."
    )


def build(settings: BiasSettings, setup: GuardSetup) -> GuardParts:
    if not settings.enabled:
        return GuardParts()
    from bastion.guards.bias.detector import SHIPPED_MODEL, BiasDetector, Lexicon
    from bastion.guards.bias.guard import BiasGuard

    model = Path(settings.model_path).expanduser() if settings.model_path else SHIPPED_MODEL
    lexicon = (
        Lexicon.load(Path(settings.lexicon_path).expanduser()) if settings.lexicon_path else None
    )
    guard = BiasGuard(BiasDetector(model, lexicon), settings.threshold, settings.action)
    return GuardParts(output=[guard])


@hookimpl
def register_guards(register: Register) -> None:
    register(
        GuardSpec(
            name="bias",
            description="answers that generalise about a protected group (flagged by default).",
            settings=BiasSettings,
            order=40,
            build=build,
        )
    )
