"""The digest's settings, input and output (the JSON that `--format json` prints)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class DigestSettings(BaseModel):  # apps[].settings of the slack-digest entry
    window_days: int = Field(
        7, ge=1, le=366, description="Default window: this many days up to the newest message."
    )
    batch_tokens: int = Field(
        1500,
        ge=200,
        description="Most tokens of messages shown to the model in one call (less when the "
        "model's context_length leaves less); longer windows are summarized in batches.",
    )
    summary_tokens: int = Field(
        120, ge=16, le=1024, description="Most tokens the model writes per summary."
    )
    parallel: int = Field(
        4,
        ge=1,
        le=32,
        description="Partial summaries asked for at once: a model that decodes requests "
        "together (llamacpp) writes several in little more than the time of one.",
    )
    export_folders: list[str] = Field(
        ["exports"],
        description="Folders (relative paths start at BASTION_HOME) that `export` paths may "
        "name; the server reads nothing else on a caller's say-so.",
    )


class DigestInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str = Field(min_length=1, description="Channel name, with or without '#'.")
    since: date | datetime | None = Field(
        None, description="Start (ISO date or datetime, UTC); default: `until` minus 7 days."
    )
    until: date | datetime | None = Field(
        None,
        description="End, inclusive (a date includes its whole day); default: the newest message.",
    )
    source: str | None = Field(
        None, description="The Slack source (sources[].name); default: the tenant's one."
    )
    export: str | None = Field(
        None,
        description="A Slack export folder or zip to read instead of the harmonized data "
        "(under apps[].settings.export_folders).",
    )

    @field_validator("channel")
    @classmethod
    def _bare_name(cls, value: str) -> str:
        name = value.strip().removeprefix("#").strip()
        if not name:
            raise ValueError("name a channel, e.g. general or #general")
        return name

    @model_validator(mode="after")
    def _one_origin(self) -> DigestInput:
        if self.source is not None and self.export is not None:
            raise ValueError("give `source` (harmonized data) or `export` (a file), not both")
        return self


class Cited(BaseModel):
    channel: str
    ts: str  # the message's Slack timestamp, its id within the channel


class Item(BaseModel):
    text: str
    sources: list[Cited]


class Owner(BaseModel):
    """Who is to do an action item: their Slack display name, and their contact id when
    identity resolution linked them to one the reader may see (else null)."""

    name: str
    contact_id: str | None


class ActionItem(Item):
    owner: Owner | None  # null: nobody was named or asked
    due: date | None  # an ISO date when the messages state one


class Digest(BaseModel):
    summary: str
    decisions: list[Item]
    action_items: list[ActionItem]
    open_questions: list[Item]
    messages: int  # messages in the window that were read
