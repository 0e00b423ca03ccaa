"""Reading a channel's messages as the asking person may: from the harmonized Slack records
(`grounding_records`), or straight from an export folder or zip through the same connector
code. Either way the same ACL rule applies (`readable_by`), and messages come back as
threads: a parent with its replies, or a single message."""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from sqlalchemy import Select, select

from bastion.access import Principal
from bastion.config import BastionConfig, SourceConfig
from bastion.errors import BadRequest, ConfigError, NotFound, PermissionDenied
from bastion.grounding.connectors.slack import read_slack, slack_channels, slack_users
from bastion.grounding.connectors.tree import SourceTree
from bastion.grounding.records import Skipped, SourceRecord
from bastion.grounding.retriever import readable_by
from bastion.storage import Database
from bastion.storage.tables import GroundingRecord

Access = Literal["readable", "denied", "missing"]


@dataclass(frozen=True)
class Mention:
    user: str  # Slack user id
    name: str  # display name, as the cleaned text shows it after '@'


@dataclass(frozen=True)
class Message:
    channel: str
    ts: str
    thread_ts: str | None
    user: str | None  # Slack user id; None for some bots
    name: str  # display name
    text: str  # mentions and links cleaned
    mentions: tuple[Mention, ...]

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(float(self.ts), UTC)


@dataclass
class Thread:
    """A parent and its replies (or one message), in the order written. The first
    `context` messages came before the window: shown to the model so that the replies
    read in context, never cited or counted."""

    channel: str
    messages: list[Message]
    context: int = 0

    @property
    def key(self) -> str:
        first = self.messages[0]
        return f"{self.channel}/{first.thread_ts or first.ts}"

    @property
    def cited(self) -> list[Message]:
        """The messages in the window."""
        return self.messages[self.context :]


@dataclass(frozen=True)
class Window:
    since: datetime  # inclusive
    until: datetime  # exclusive

    def cut(self, thread: Thread) -> Thread | None:
        """The thread as far as the window goes, or None when none of it is inside."""
        kept = [m for m in thread.messages if m.at < self.until]
        context = sum(1 for m in kept if m.at < self.since)
        if context == len(kept):
            return None
        return Thread(thread.channel, kept, context)


class SlackMessages(Protocol):
    """Where the digest reads a channel from."""

    origin: str  # how errors name it: "source 'slack'", "the export acme.zip"
    skipped: list[Skipped]  # what could not be read, for the digest to report

    def access(self, channel: str) -> Access: ...

    def readable_channels(self) -> list[str]: ...

    def threads(self, channel: str) -> Iterator[Thread]:
        """The channel's threads the person may read, each whole, in no set order."""
        ...

    def contact_id(self, user: str) -> str | None:
        """The contact id of a Slack user, when identity resolution gave one the person
        may read."""
        ...


def threads_of(channel: str, posts: Iterable[dict[str, Any]]) -> list[Thread]:
    """A record's messages as threads: a thread record is one, and a channel-day record
    holds single messages, each its own."""
    grouped: dict[str, list[Message]] = {}
    for post in posts:
        message = Message(
            channel,
            str(post["ts"]),
            post.get("thread_ts"),
            post.get("user"),
            str(post.get("name") or post.get("user") or "?"),
            str(post["text"]),
            tuple(Mention(str(m["user"]), str(m["name"])) for m in post.get("mentions", [])),
        )
        grouped.setdefault(message.thread_ts or message.ts, []).append(message)
    return [Thread(channel, sorted(m, key=lambda m: float(m.ts))) for m in grouped.values()]


class StoredSlack:
    """A configured Slack source's harmonized records in `grounding_records`."""

    def __init__(self, db: Database, source: SourceConfig, principal: Principal) -> None:
        self.db = db
        self.source = source
        self.tenant = principal.tenant
        self.allowed = set(readable_by(principal))
        self.origin = f"source '{source.name}'"
        self.skipped: list[Skipped] = []
        self._contacts: dict[str, str | None] = {}

    def _stream(self, query: Select[Any]) -> Iterator[Any]:
        """The query's rows a few hundred at a time (PostgreSQL streams only inside a
        transaction), so a large channel is never all in memory at once."""
        with self.db.transaction() as conn:
            yield from conn.execution_options(yield_per=200).execute(query)

    def _rows(self, *columns: Any, entity: str = "message") -> Select[Any]:
        return select(*columns).where(
            GroundingRecord.tenant_id == self.tenant,
            GroundingRecord.source == self.source.name,
            GroundingRecord.entity == entity,
        )

    def access(self, channel: str) -> Access:
        found = False
        query = self._rows(GroundingRecord.acl).where(
            GroundingRecord.fields["channel"].as_string() == channel
        )
        for (acl,) in self._stream(query):
            if self.allowed & set(acl):
                return "readable"
            found = True
        return "denied" if found else "missing"

    def readable_channels(self) -> list[str]:
        query = self._rows(GroundingRecord.fields["channel"].as_string(), GroundingRecord.acl)
        return sorted({channel for channel, acl in self._stream(query) if self.allowed & set(acl)})

    def threads(self, channel: str) -> Iterator[Thread]:
        query = self._rows(GroundingRecord.source_id, GroundingRecord.fields, GroundingRecord.acl)
        query = query.where(GroundingRecord.fields["channel"].as_string() == channel)
        for source_id, fields, acl in self._stream(query):
            if not self.allowed & set(acl):
                continue
            if "posts" not in fields:
                raise ConfigError(
                    f"record {source_id} of {self.origin} was ingested before messages "
                    f"kept their timestamps; run `bastion ingest {self.source.name}` again"
                )
            yield from threads_of(channel, fields["posts"])

    def contact_id(self, user: str) -> str | None:
        if user not in self._contacts:
            query = self._rows(
                GroundingRecord.contact_id, GroundingRecord.acl, entity="contact"
            ).where(GroundingRecord.source_id == user)
            with self.db.read() as conn:
                row = conn.execute(query).first()
            readable = row is not None and bool(self.allowed & set(row.acl))
            self._contacts[user] = row.contact_id if readable and row is not None else None
        return self._contacts[user]


class ExportedSlack:
    """A Slack export folder or zip, read with the Slack connector's own code and limits.
    Its people are not linked to contacts, so owners carry no contact id."""

    def __init__(self, path: Path, principal: Principal, max_file_mb: float | None) -> None:
        self.path = path
        self.origin = f"the export {path.name}"
        self.allowed = set(readable_by(principal))
        self.skipped: list[Skipped] = []
        limit = {} if max_file_mb is None else {"max_file_mb": max_file_mb}
        self.config = SourceConfig(
            name="export", tenant=principal.tenant, kind="slack", path=str(path), **limit
        )
        self._read: dict[str, list[Thread]] = {}  # the connector holds a channel whole anyway
        try:
            self.tree = SourceTree(path, int(self.config.max_file_mb * 1e6))
        except zipfile.BadZipFile as exc:
            raise BadRequest(f"export: {path} is not a folder or a zip file ({exc})") from None
        users, problems = slack_users(self.tree)
        channels, more = slack_channels(self.config, self.tree, users)
        self.skipped += problems + more
        if not channels:
            self.close()
            raise BadRequest(
                f"export: {path} is not a Slack export (it has no channels.json or "
                "groups.json); export the workspace from Slack and give the zip or its folder"
            )
        self.acl = {c.name: set(c.acl) for c in channels}

    def access(self, channel: str) -> Access:
        if channel not in self.acl:
            return "missing"
        return "readable" if self.allowed & self.acl[channel] else "denied"

    def readable_channels(self) -> list[str]:
        return sorted(name for name, acl in self.acl.items() if self.allowed & acl)

    def threads(self, channel: str) -> Iterator[Thread]:
        if channel not in self._read:
            threads: list[Thread] = []
            for item in read_slack(self.config, self.tree, only=channel):
                if isinstance(item, Skipped):
                    self.skipped.append(item)
                elif isinstance(item, SourceRecord) and self.allowed & set(item.acl):
                    threads += threads_of(channel, item.fields["posts"])
            self._read[channel] = threads
        yield from self._read[channel]

    def contact_id(self, user: str) -> str | None:
        return None

    def close(self) -> None:
        self.tree.close()


def stored_source(config: BastionConfig, principal: Principal, name: str | None) -> SourceConfig:
    """The Slack source to read: the one named, else the tenant's only one."""
    slack = [s for s in config.sources if s.kind == "slack" and s.tenant == principal.tenant]
    names = ", ".join(s.name for s in slack) or "none"
    if name is not None:
        found = next((s for s in slack if s.name == name), None)
        if found is None:
            raise NotFound(f"no Slack source named '{name}'; Slack sources: {names}")
        return found
    if not slack:
        raise NotFound(
            f"tenant '{principal.tenant}' has no Slack source; configure one under `sources` "
            "(kind: slack) or read an export with `export`"
        )
    if len(slack) > 1:
        raise BadRequest(f"several Slack sources; name one with `source`: {names}")
    return slack[0]


def export_path(raw: str, home: Path, folders: list[str]) -> Path:
    """The export the caller named, which must lie under one of `folders`: a server must
    not read any file a caller names."""
    roots = [(home / Path(f).expanduser()).resolve() for f in folders]
    given = Path(raw).expanduser()
    path = (given if given.is_absolute() else home / given).resolve()
    if not any(path.is_relative_to(root) for root in roots):
        where = ", ".join(str(r) for r in roots) or "(none configured)"
        raise PermissionDenied(
            f"export: {raw} is outside the folders exports are read from ({where}); copy it "
            "into one of them, or have an admin add its folder to "
            "apps[slack-digest].settings.export_folders"
        )
    if not path.exists():
        raise BadRequest(f"export: {path} does not exist")
    return path


def check_channel(messages: SlackMessages, channel: str) -> None:
    """Refuse a channel the person may not read (403) or that does not exist (404, naming
    the ones they may read). A private channel's messages are never shown in either."""
    access = messages.access(channel)
    if access == "denied":
        raise PermissionDenied(
            f"#{channel} in {messages.origin} is a private channel you are not a member of; "
            "ask one of its members for what you need"
        )
    if access == "missing":
        readable = ", ".join(f"#{c}" for c in messages.readable_channels()) or "none"
        raise NotFound(
            f"no channel #{channel} in {messages.origin}; channels you may read: {readable}"
        )
