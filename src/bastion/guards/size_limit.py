"""Refuses prompts larger than the configured limit (HTTP 413)."""

from __future__ import annotations

from typing import ClassVar

from bastion.errors import BastionError, PayloadTooLarge
from bastion.guards.base import Finding, Guard, GuardContext, Verdict


class InputSizeGuard(Guard):
    name = "input_size"
    block_error: ClassVar[type[BastionError]] = PayloadTooLarge

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars

    def check(self, text: str, ctx: GuardContext) -> Verdict:
        size = max(len(text), ctx.prompt_chars)
        if size <= self.max_chars:
            return Verdict(self.name, "allow", size / self.max_chars)
        detail = (
            f"prompt has {size} characters, over the limit of {self.max_chars}; "
            "shorten it or raise guards.max_input_chars"
        )
        return Verdict(self.name, "block", 1.0, [Finding("too_large", detail)])
