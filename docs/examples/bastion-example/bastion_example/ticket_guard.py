"""A guard: internal ticket numbers (INC-1234) are redacted in prompts and answers, and an
answer that had one says so at its end."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel, Field

from bastion.guards.base import (
    Finding,
    Guard,
    GuardContext,
    GuardParts,
    GuardSetup,
    GuardSpec,
    RequestState,
    Verdict,
)
from bastion.plugins import hookimpl
from bastion.plugins.hookspecs import Register


class TicketSettings(BaseModel):  # guards.ticket_redactor in bastion.yaml
    prefixes: list[str] = Field(["INC"], description="Ticket prefixes, e.g. INC, CHG.")


class TicketAppSettings(BaseModel):  # added to every apps[] entry
    show_tickets: bool = Field(False, description="This app's users may see ticket numbers.")


class TicketRedactor(Guard):
    name = "ticket_redactor"
    window_chars = 16  # a stream holds back enough to see a whole ticket number

    def __init__(self, prefixes: list[str], allowed_apps: set[str]) -> None:
        self.pattern = re.compile(rf"\b(?:{'|'.join(map(re.escape, prefixes))})-\d+\b")
        self.allowed_apps = allowed_apps

    def check(self, text: str, ctx: GuardContext) -> Verdict:
        found = list(self.pattern.finditer(text))
        if not found or ctx.app in self.allowed_apps:
            return Verdict(self.name, stage=ctx.stage)
        ctx.state[self.name] = True  # remembered for this request's notice
        findings = [
            Finding("ticket", "ticket number", m.start(), m.end(), "[TICKET]") for m in found
        ]
        return Verdict(self.name, "redact", 1.0, findings, self.pattern.sub("[TICKET]", text))

    def notice(self, verdicts: Sequence[Verdict], state: RequestState) -> str:
        return "\n\n(Ticket numbers are hidden.)" if state.get(self.name) else ""


def build(settings: TicketSettings, setup: GuardSetup) -> GuardParts:
    allowed = {app for app, s in setup.apps.items() if s.show_tickets}
    guard = TicketRedactor(settings.prefixes, allowed)
    return GuardParts(input=[guard], output=[guard])


@hookimpl
def register_guards(register: Register) -> None:
    register(
        GuardSpec(
            name="ticket_redactor",
            description="Internal ticket numbers redacted in prompts and answers.",
            settings=TicketSettings,
            app_settings=TicketAppSettings,
            order=60,
            build=build,
        )
    )
