"""Acme Corp's Slack workspace export: users, channels and ten business days of messages, drawn
from the channel scripts in data/slack/ and filled with the company's accounts and cases."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bastion.demo.content import CHANNELS, ChannelPlan
from bastion.demo.files import write_json
from bastion.demo.records import BASE_DATE, EMAIL_DOMAIN, Account, Case, Contact, Employee, Order
from bastion.demo.templates import case_context, fill

SLACK_DAYS = 10  # business days from BASE_DATE


def slack_id(rng: random.Random, prefix: str) -> str:
    return prefix + "0" + "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(9))


@dataclass
class _Message:
    user: str
    text: str
    second: int
    subtype: str | None = None
    bot_id: str | None = None
    replies: list[_Message] = field(default_factory=list)
    ts: str = ""


@dataclass(frozen=True)
class _Channel:
    channel_id: str
    plan: ChannelPlan


class SlackExport:
    """Writes the export; `count` scales a number of messages like every other record count."""

    def __init__(
        self,
        rng: random.Random,
        count: Callable[[int], int],
        *,
        employees: Sequence[Employee],
        accounts: Sequence[Account],
        contacts: Sequence[Contact],
        orders: Sequence[Order],
        cases: Sequence[Case],
    ) -> None:
        self.rng = rng
        self.count = count
        self.employees = employees
        self.by_username = {e.username: e for e in employees}
        self.accounts = accounts
        self.contacts = contacts
        self.contacts_by_account: dict[str, list[Contact]] = {}
        for contact in contacts:
            self.contacts_by_account.setdefault(contact.account.account_id, []).append(contact)
        self.orders = orders
        self.cases = cases

    def write(self, folder: Path) -> tuple[int, int]:
        """Write the export into `folder`; returns the number of channels and of messages."""
        rng = self.rng
        ids = {e.username: e.slack_id for e in self.employees}
        created = int(datetime(2021, 3, 1, 17, tzinfo=UTC).timestamp())
        write_json(
            folder / "users.json",
            [
                {
                    "id": e.slack_id,
                    "team_id": "T01ACMECORP",
                    "name": e.username,
                    "real_name": e.real_name,
                    "deleted": False,
                    "is_bot": e.team == "bot",
                    "is_admin": e.username == "alice",
                    "tz": "America/Los_Angeles",
                    "profile": _profile(e),
                }
                for e in self.employees
            ],
        )
        channels = [_Channel(slack_id(rng, "G" if p.private else "C"), p) for p in CHANNELS]
        for private in (False, True):
            write_json(
                folder / ("groups.json" if private else "channels.json"),
                [
                    {
                        "id": c.channel_id,
                        "name": c.plan.name,
                        "created": created + i * 86_400,
                        "creator": ids["alice"],
                        "is_archived": False,
                        "is_general": c.plan.name == "general",
                        "members": [ids[m] for m in c.plan.members],
                        "purpose": {
                            "value": c.plan.purpose,
                            "creator": ids["alice"],
                            "last_set": 0,
                        },
                        "topic": {"value": c.plan.topic, "creator": ids["alice"], "last_set": 0},
                    }
                    for i, c in enumerate(channels)
                    if c.plan.private == private
                ],
            )
        calendar = (BASE_DATE + timedelta(days=i) for i in range(SLACK_DAYS * 2))
        days = [d for d in calendar if d.weekday() < 5][:SLACK_DAYS]
        total = 0
        for channel in channels:
            decks = _Decks(rng, channel.plan.threads, channel.plan.singles)
            for day in days:
                messages = self._day(channel, day, decks)
                write_json(
                    folder / channel.plan.name / f"{day.isoformat()}.json", messages, indent=4
                )
                total += len(messages)
        return len(channels), total

    def _day(self, channel: _Channel, day: date, decks: _Decks) -> list[dict[str, Any]]:
        rng = self.rng
        low, high = channel.plan.volume
        target = self.count(rng.randint(low, high))
        start = int(datetime(day.year, day.month, day.day, 14, tzinfo=UTC).timestamp())
        used: set[int] = set()

        def second(at: int) -> int:
            while at in used:
                at += 1
            used.add(at)
            return at

        people = [m for m in channel.plan.members if self.by_username[m].team != "bot"]

        def speaker(spec: str, thread: Sequence[tuple[str, str]], previous: str) -> str:
            """The username for `spec`; "+team" avoids whoever the thread names or just spoke."""
            if not spec.startswith("+"):
                return spec
            team = [m for m in people if self.by_username[m].team == spec[1:]] or people
            avoid = {s for s, _ in thread if not s.startswith("+")} | {previous}
            return rng.choice([m for m in team if m not in avoid] or team)

        messages: list[_Message] = []
        if day == BASE_DATE:
            for username in channel.plan.joins:
                uid = self.by_username[username].slack_id
                messages.append(
                    _Message(uid, f"<@{uid}> has joined the channel", second(start), "channel_join")
                )
        count = len(messages)
        while count < target:
            context = self._context()
            if target - count >= 3 and rng.random() < 0.45:
                lines = decks.thread()[: target - count]
            else:
                lines = (decks.single(),)
            at = second(start + rng.randrange(7 * 3600 if len(lines) > 1 else 9 * 3600))
            parent: _Message | None = None
            author = previous = ""
            for spec, text in lines:
                username = author if spec == "op" else speaker(spec, lines, previous)
                employee = self.by_username[username]
                text = self._text(text, context, channel, parent, username)
                message = _Message(employee.slack_id, text, at)
                if employee.team == "bot":
                    message.bot_id = "B01PULSEBOT"
                if parent is None:
                    parent, author = message, username
                    messages.append(message)
                else:
                    parent.replies.append(message)
                previous = username
                at = second(at + rng.randrange(60, 25 * 60))
            count += len(lines)
        for m in (m for top in messages for m in (top, *top.replies)):
            m.ts = f"{m.second}.{rng.randrange(1_000_000):06d}"
        records = [record for top in messages for record in _records(top)]
        return sorted(records, key=lambda r: float(r["ts"]))

    def _text(
        self,
        text: str,
        context: dict[str, str],
        channel: _Channel,
        parent: _Message | None,
        author: str,
    ) -> str:
        def mention(match: re.Match[str]) -> str:
            spec = match[1]
            if spec == "op" and parent is not None:
                return f"<@{parent.user}>"
            if spec.startswith("+"):  # someone from the team other than the author
                team = [m for m in channel.plan.members if self.by_username[m].team == spec[1:]]
                spec = self.rng.choice([m for m in team if m != author] or team or [author])
            return f"<@{self.by_username[spec].slack_id}>"

        return fill(self.rng, re.sub(r"\{@([+\w]+)\}", mention, text), context)

    def _context(self) -> dict[str, str]:
        rng = self.rng
        case = rng.choice(self.cases)
        account = case.customer.account or rng.choice(self.accounts)
        contact = rng.choice(self.contacts_by_account.get(account.account_id, self.contacts))
        pct = rng.choice((22, 24, 25, 28, 30))
        context = case_context(rng)
        context.update(
            account=account.short_name,
            account2=rng.choice(self.accounts).short_name,
            contact=f"{contact.first} {contact.last}",
            case=case.case_id,
            order=rng.choice(self.orders).order_id,
            pct=str(pct),
            pct_ok=str(pct - rng.choice((3, 4, 6))),
            pct_small=str(rng.choice((5, 6, 8, 10))),
            amount=str(rng.choice((48, 72, 96, 135, 180, 240, 310, 420))),
            big=str(rng.choice((120, 180, 250, 400, 600))),
        )
        return context


class _Decks:
    """Draws Slack templates without repeats until each pool is used up, then reshuffles."""

    def __init__(
        self,
        rng: random.Random,
        threads: Sequence[tuple[tuple[str, str], ...]],
        singles: Sequence[tuple[str, str]],
    ) -> None:
        self._rng = rng
        self._pools = (list(threads), [(s,) for s in singles])
        self._decks: tuple[list[tuple[tuple[str, str], ...]], ...] = ([], [])

    def _draw(self, which: int) -> tuple[tuple[str, str], ...]:
        deck = self._decks[which]
        if not deck:
            deck.extend(self._pools[which])
            self._rng.shuffle(deck)
        return deck.pop()

    def thread(self) -> tuple[tuple[str, str], ...]:
        return self._draw(0)

    def single(self) -> tuple[str, str]:
        return self._draw(1)[0]


def _records(top: _Message) -> list[dict[str, Any]]:
    """The parent and its replies as Slack export records (each file is sorted after)."""
    record: dict[str, Any] = {"type": "message", "user": top.user, "text": top.text, "ts": top.ts}
    if top.subtype:
        record["subtype"] = top.subtype
    if top.bot_id:
        record["bot_id"] = top.bot_id
    if not top.replies:
        return [record]
    record.update(
        thread_ts=top.ts,
        reply_count=len(top.replies),
        reply_users_count=len({r.user for r in top.replies}),
        reply_users=sorted({r.user for r in top.replies}),
        latest_reply=top.replies[-1].ts,
        replies=[{"user": r.user, "ts": r.ts} for r in top.replies],
    )
    replies = [
        {
            "type": "message",
            "user": r.user,
            "text": r.text,
            "ts": r.ts,
            "thread_ts": top.ts,
            "parent_user_id": top.user,
        }
        for r in top.replies
    ]
    return [record, *replies]


def _profile(e: Employee) -> dict[str, str]:
    first, _, last = e.real_name.partition(" ")
    profile = {
        "title": e.title,
        "real_name": e.real_name,
        "display_name": e.username,
        "first_name": first,
        "last_name": last,
    }
    if e.phone is not None:  # bots have neither an address nor a phone
        profile["email"] = f"{e.username}@{EMAIL_DOMAIN}"
        profile["phone"] = e.phone.format(0)
    return profile
