"""A Slack export (folder or zip): channels.json, groups.json, users.json, and one folder
of daily JSON files per channel.

Each thread (parent and replies) becomes one message record, and each channel-day's
messages outside threads another, so a chunk holds a conversation rather than one line.
A record's `posts` field keeps each of its messages (ts, thread, author, cleaned text,
mentions) for programs that cite single messages, such as the Slack digest.
Public channels are readable by everyone in the tenant; a private channel only by its
members (`user:<slack username>`).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bastion.config import SourceConfig
from bastion.grounding.connectors.tree import SourceTree
from bastion.grounding.records import EVERYONE, Skipped, SourceRecord

Item = SourceRecord | Skipped
_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")
_LINK = re.compile(r"<(https?://[^|>]+)(?:\|([^>]*))?>")
_NOISE = {"channel_join", "channel_leave", "channel_purpose", "channel_topic", "bot_add"}


def _parse(data: bytes) -> Any:
    """A JSON file of the export (RecursionError: nested too deeply). A lone surrogate
    escape ("\\ud83d" of a cut emoji) becomes '?': text holding one cannot be stored or
    hashed as UTF-8 (was a UnicodeEncodeError at ingest)."""
    found = json.loads(data.decode("utf-8"))
    text = json.dumps(found, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.loads(text.encode("utf-8", "replace").decode("utf-8"))
    return found


def _nonempty(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _load(tree: SourceTree, name: str) -> tuple[list[Any], Skipped | None]:
    """A listing (users.json, channels.json, groups.json): a JSON list."""
    if not tree.exists(name):
        return [], None
    try:
        found = _parse(tree.read(name))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return [], Skipped(name, f"unreadable ({exc}); its entries are missing")
    if not isinstance(found, list):  # was a TypeError (a number) when iterated
        return [], Skipped(name, "not a JSON list; its entries are missing")
    return found, None


@dataclass(frozen=True)
class SlackChannel:
    name: str
    private: bool
    acl: tuple[str, ...]  # who may read its messages


def slack_users(tree: SourceTree) -> tuple[dict[str, Any], list[Skipped]]:
    """The workspace's users by id (users.json), and a problem if it is unreadable."""
    users_raw, problem = _load(tree, "users.json")
    # An id that is not a string (a list) was a TypeError; an empty one was a contact with
    # no id, whose name every message without a user was shown under.
    users = {u["id"]: u for u in users_raw if isinstance(u, dict) and _nonempty(u.get("id"))}
    return users, [problem] if problem else []


def slack_channels(
    cfg: SourceConfig, tree: SourceTree, users: dict[str, Any]
) -> tuple[list[SlackChannel], list[Skipped]]:
    """The export's channels (channels.json, groups.json for private ones) with their ACL,
    and what could not be read."""
    channels: list[SlackChannel] = []
    problems: list[Skipped] = []
    for listing, private in (("channels.json", False), ("groups.json", True)):
        found, problem = _load(tree, listing)
        if problem:
            problems.append(problem)
        for channel in found:
            if not isinstance(channel, dict) or not channel.get("name"):
                continue
            name = str(channel["name"])
            if "/" in name or name in ("..", "."):
                problems.append(Skipped(name, "channel name is not a folder name; skipped"))
                continue
            # Members that are not a list of user ids were a TypeError; they grant no access.
            members = channel.get("members")
            members = (
                [m for m in members if isinstance(m, str)] if isinstance(members, list) else []
            )
            acl = (
                tuple(sorted(f"user:{_username(users, m)}" for m in members))
                if private
                else ((EVERYONE,) if cfg.acl is None else tuple(cfg.acl))
            )
            channels.append(SlackChannel(name, private, acl))
    return channels, problems


def read_slack(cfg: SourceConfig, tree: SourceTree, *, only: str | None = None) -> Iterator[Item]:
    """Every record of the export; with `only`, the messages of that one channel."""
    users, problems = slack_users(tree)
    yield from problems
    if only is None:
        yield from _people(cfg, users)
    channels, problems = slack_channels(cfg, tree, users)
    yield from problems
    if not channels:
        yield Skipped(str(tree.root), "no channels.json or groups.json: not a Slack export")
        return
    days: dict[str, list[str]] = defaultdict(list)
    for name, unsafe in tree.names():
        if unsafe:
            yield Skipped(name, unsafe)
        elif name.count("/") == 1 and name.endswith(".json"):
            folder, day = name.split("/")
            days[folder].append(day)
    for channel in channels:
        if only is None or channel.name == only:
            days_of = sorted(days.get(channel.name, []))
            yield from _channel(cfg, tree, channel.name, days_of, users, channel.acl)


def _people(cfg: SourceConfig, users: dict[str, Any]) -> Iterator[SourceRecord]:
    """The workspace's members as contacts: the staff directory everyone may read."""
    for uid, user in sorted(users.items()):
        if user.get("is_bot") or user.get("deleted"):
            continue
        profile = _profile(user)
        fields = {
            "username": user.get("name"),
            "full_name": user.get("real_name") or profile.get("real_name"),
            "email": profile.get("email"),
            "phone": profile.get("phone"),
            "job_title": profile.get("title"),
        }
        fields = {k: v for k, v in fields.items() if v}
        body = "\n".join(f"{k.replace('_', ' ')}: {v}" for k, v in fields.items())
        name = str(fields.get("full_name") or uid)
        yield SourceRecord(
            cfg.tenant, cfg.name, uid, "contact", name, body, fields, tuple(cfg.acl or [EVERYONE])
        )


def _username(users: dict[str, Any], uid: str) -> str:
    return str(users.get(uid, {}).get("name") or uid)


def _display(users: dict[str, Any], uid: str | None) -> str:
    user = users.get(uid or "", {})
    return str(user.get("real_name") or _profile(user).get("real_name") or uid or "?")


def _profile(user: dict[str, Any]) -> dict[str, Any]:
    """A user's profile; one that is not an object (was an AttributeError) is empty."""
    profile = user.get("profile")
    return profile if isinstance(profile, dict) else {}


def _clean(text: str, users: dict[str, Any]) -> str:
    text = _MENTION.sub(lambda m: "@" + _display(users, m.group(1)), text)
    return _LINK.sub(lambda m: m.group(2) or m.group(1), text)


def _channel(
    cfg: SourceConfig,
    tree: SourceTree,
    name: str,
    days: list[str],
    users: dict[str, Any],
    acl: tuple[str, ...],
) -> Iterator[Item]:
    threads: dict[str, list[dict[str, Any]]] = defaultdict(list)
    loose: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for day in days:
        where = f"{name}/{day}"
        try:
            messages = _parse(tree.read(where))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            yield Skipped(where, f"unreadable day file ({exc})")
            continue
        if not isinstance(messages, list):
            yield Skipped(where, "expected a list of messages")
            continue
        for m in messages:
            # str(): a subtype that is a list or an object was a TypeError (unhashable)
            if not isinstance(m, dict) or str(m.get("subtype")) in _NOISE or not m.get("text"):
                continue
            if problem := _malformed(m):
                yield Skipped(where, problem)
                continue
            if m.get("thread_ts"):
                threads[m["thread_ts"]].append(m)
            else:
                loose[day.removesuffix(".json")].append(m)
    for thread_ts, messages in threads.items():
        messages.sort(key=lambda m: float(m["ts"]))
        date = _date(thread_ts)
        first = _clean(messages[0]["text"], users)
        yield _record(
            cfg,
            f"{name}/{thread_ts}",
            f"#{name} thread, {date}: {first[:60]}",
            name,
            date,
            messages,
            users,
            acl,
        )
    for day, messages in sorted(loose.items()):
        messages.sort(key=lambda m: float(m["ts"]))
        yield _record(cfg, f"{name}/{day}", f"#{name}, {day}", name, day, messages, users, acl)


def _timestamp(value: Any) -> bool:
    """Whether `value` is a Slack timestamp ("1767600000.000100"): a string of seconds that
    a date can be made of (the digest sorts and dates messages by it)."""
    try:
        datetime.fromtimestamp(float(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return False
    return isinstance(value, str)


def _malformed(message: dict[str, Any]) -> str | None:
    """Why a message cannot be read, if it cannot. Slack writes these fields as strings;
    others were a ValueError or TypeError further on (sorting, dating, cleaning)."""
    if not _timestamp(message.get("ts")):
        return "a message without a valid 'ts' timestamp"
    if not isinstance(message["text"], str):
        return "a message whose 'text' is not a string"
    if message.get("thread_ts") and not _timestamp(message["thread_ts"]):
        return "a message whose 'thread_ts' is not a timestamp"
    if message.get("user") is not None and not isinstance(message["user"], str):
        return "a message whose 'user' is not a user id"
    return None


def _date(ts: str) -> str:
    try:
        return datetime.fromtimestamp(float(ts), UTC).date().isoformat()
    except (ValueError, OverflowError):
        return "unknown date"


def _record(
    cfg: SourceConfig,
    source_id: str,
    title: str,
    channel: str,
    date: str,
    messages: list[dict[str, Any]],
    users: dict[str, Any],
    acl: tuple[str, ...],
) -> SourceRecord:
    posts = [_post(m, users) for m in messages]
    lines = [f"{p['name']}: {p['text']}" for p in posts]
    people = sorted({_username(users, m["user"]) for m in messages if m.get("user")})
    return SourceRecord(
        cfg.tenant,
        cfg.name,
        source_id,
        "message",
        title,
        "\n".join(lines),
        {
            "channel": channel,
            "date": date,
            "users": people,
            "messages": len(messages),
            "posts": posts,
        },
        acl,
    )


def _post(message: dict[str, Any], users: dict[str, Any]) -> dict[str, Any]:
    """One message as the digest cites it: its ts, thread, author and cleaned text."""
    uid = message.get("user")
    return {
        "ts": message["ts"],
        "thread_ts": message.get("thread_ts"),
        "user": uid,
        "username": _username(users, uid) if uid else None,
        "name": _display(users, uid),
        "text": _clean(message["text"], users),
        "mentions": [
            {"user": found, "name": _display(users, found)}
            for found in dict.fromkeys(_MENTION.findall(message["text"]))
        ],
    }
