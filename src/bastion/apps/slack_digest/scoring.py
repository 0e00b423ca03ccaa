"""The labelled channels the digest is measured on (eval/channels.jsonl), and the score of
a digest's items against them (and of its summary against a reference, `summaries.py`).

Each line of channels.jsonl is one small channel written for this project: its people,
its messages (`id`, `at` in UTC, `user`, `text` in Slack's markup, `reply_to` for thread
replies) and the gold items, which cite message ids:

- a decision is a choice the messages settle (the proposal and the message settling it);
- an action item is a task someone is asked to do or takes on; `owner` is the username of
  who is to do it (null when nobody is), `due` the date the messages state (else null);
- an open question is a question nobody else answered in the channel afterwards.

A predicted item matches a gold item of the same kind when they cite at least one common
message (each matched once, largest overlap first). Precision is matched / predicted,
recall matched / gold; for action items, owner and due date are scored on the matched
items that have them in the gold.

`write_cases` turns the channels into exports and cases for `bastion eval app
slack-digest --data CASES`, which scores each run with `case_scores`; or, from a shell:

    python -m bastion.apps.slack_digest.scoring BASTION_HOME READER
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bastion.labelled.metrics import rouge

CHANNELS = Path(__file__).with_name("eval") / "channels.jsonl"
KINDS = ("decisions", "action_items", "open_questions")


@dataclass(frozen=True)
class GoldItem:
    ts: frozenset[str]
    owner: str | None = None  # display name
    due: date | None = None


@dataclass(frozen=True)
class LabelledChannel:
    name: str
    private: bool
    users: list[dict[str, str]]  # id, name (username), real_name
    messages: list[dict[str, Any]]  # Slack export messages: ts, user, text, thread_ts
    gold: dict[str, list[GoldItem]]

    @property
    def first_day(self) -> date:
        return min(_at(m["ts"]) for m in self.messages).date()

    @property
    def last_day(self) -> date:
        return max(_at(m["ts"]) for m in self.messages).date()


def _at(ts: str) -> datetime:
    return datetime.fromtimestamp(float(ts), UTC)


def load_channels(path: Path = CHANNELS) -> list[LabelledChannel]:
    channels = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            channels.append(channel_from_json(json.loads(line)))
    return channels


def channel_from_json(raw: dict[str, Any]) -> LabelledChannel:
    """A channel as channels.jsonl writes it (people, messages with `at`, gold items)."""
    ts: dict[str, str] = {}
    messages = []
    for n, m in enumerate(raw["messages"], 1):
        moment = datetime.fromisoformat(m["at"]).replace(tzinfo=UTC)
        ts[m["id"]] = f"{int(moment.timestamp())}.{n:06d}"
        message = {"type": "message", "user": m["user"], "text": m["text"], "ts": ts[m["id"]]}
        if "reply_to" in m:
            message["thread_ts"] = ts[m["reply_to"]]
        messages.append(message)
    for message in messages:  # a parent's own thread_ts is its ts, as Slack exports it
        if any(r.get("thread_ts") == message["ts"] for r in messages):
            message["thread_ts"] = message["ts"]
    names = {u["name"]: u["real_name"] for u in raw["users"]}
    gold = {
        kind: [
            GoldItem(
                frozenset(ts[i] for i in item["messages"]),
                names[item["owner"]] if item.get("owner") else None,
                date.fromisoformat(item["due"]) if item.get("due") else None,
            )
            for item in raw["gold"][kind]
        ]
        for kind in KINDS
    }
    return LabelledChannel(raw["channel"], raw.get("private", False), raw["users"], messages, gold)


def write_export(channel: LabelledChannel, folder: Path, reader: str | None = None) -> None:
    """The channel as a Slack export folder (users.json, channels.json or groups.json, one
    file of messages per day) that `slack-digest --export` reads; `reader`, a username,
    joins it as a member who wrote nothing."""
    folder.mkdir(parents=True, exist_ok=True)
    people = [*channel.users]
    if reader is not None and reader not in {u["name"] for u in people}:
        people.append({"id": "UREADER", "name": reader, "real_name": reader})
    users = [
        {"id": u["id"], "name": u["name"], "real_name": u["real_name"], "profile": {}}
        for u in people
    ]
    (folder / "users.json").write_text(json.dumps(users, indent=2))
    listing = [{"id": "C1", "name": channel.name, "members": [u["id"] for u in people]}]
    (folder / ("groups.json" if channel.private else "channels.json")).write_text(
        json.dumps(listing, indent=2)
    )
    days: dict[str, list[dict[str, Any]]] = {}
    for message in channel.messages:
        days.setdefault(_at(message["ts"]).date().isoformat(), []).append(message)
    (folder / channel.name).mkdir(exist_ok=True)
    for day, messages in days.items():
        (folder / channel.name / f"{day}.json").write_text(json.dumps(messages, indent=2))


@dataclass
class Counts:
    predicted: int = 0
    gold: int = 0
    matched: int = 0

    @property
    def precision(self) -> float:
        return self.matched / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.matched / self.gold if self.gold else 1.0

    def add(self, other: Counts) -> None:
        self.predicted += other.predicted
        self.gold += other.gold
        self.matched += other.matched

    def to_dict(self) -> dict[str, Any]:
        return {
            "predicted": self.predicted,
            "gold": self.gold,
            "matched": self.matched,
            "precision": round(self.precision, 3),
            "recall": round(self.recall, 3),
        }


@dataclass
class Agreement:
    """Of the matched items whose gold states it, how many got it right."""

    right: int = 0
    stated: int = 0

    def add(self, other: Agreement) -> None:
        self.right += other.right
        self.stated += other.stated

    def to_dict(self) -> dict[str, Any]:
        share = self.right / self.stated if self.stated else 1.0
        return {"right": self.right, "stated": self.stated, "accuracy": round(share, 3)}


@dataclass
class Scores:
    kinds: dict[str, Counts] = field(default_factory=lambda: {k: Counts() for k in KINDS})
    owners: Agreement = field(default_factory=Agreement)
    dues: Agreement = field(default_factory=Agreement)

    @property
    def items(self) -> Counts:
        total = Counts()
        for counts in self.kinds.values():
            total.add(counts)
        return total

    def add(self, other: Scores) -> None:
        for kind, counts in other.kinds.items():
            self.kinds[kind].add(counts)
        self.owners.add(other.owners)
        self.dues.add(other.dues)

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items.to_dict(),
            **{kind: counts.to_dict() for kind, counts in self.kinds.items()},
            "owner": self.owners.to_dict(),
            "due": self.dues.to_dict(),
        }


def _matches(predicted: list[frozenset[str]], gold: list[frozenset[str]]) -> list[tuple[int, int]]:
    """(predicted, gold) index pairs that share a cited message, each used once, the
    largest overlaps first."""
    pairs = sorted(
        ((len(p & g), i, j) for i, p in enumerate(predicted) for j, g in enumerate(gold) if p & g),
        key=lambda x: (-x[0], x[1], x[2]),
    )
    used_p: set[int] = set()
    used_g: set[int] = set()
    matched = []
    for _, i, j in pairs:
        if i not in used_p and j not in used_g:
            used_p.add(i)
            used_g.add(j)
            matched.append((i, j))
    return matched


def expected(channel: LabelledChannel) -> dict[str, list[dict[str, Any]]]:
    """The channel's gold items as JSON: the `expected` of its evaluation case."""
    return {
        kind: [
            {
                "sources": sorted(g.ts),
                "owner": g.owner,
                "due": g.due.isoformat() if g.due else None,
            }
            for g in items
        ]
        for kind, items in channel.gold.items()
    }


def score(output: Mapping[str, Any], gold: Mapping[str, Any]) -> Scores:
    """How a digest's output (its JSON) compares with gold items (`expected`)."""
    scores = Scores()
    for kind in KINDS:
        items: list[Mapping[str, Any]] = output[kind]
        golden: list[Mapping[str, Any]] = gold[kind]
        predicted = [frozenset(s["ts"] for s in item["sources"]) for item in items]
        matched = _matches(predicted, [frozenset(g["sources"]) for g in golden])
        scores.kinds[kind] = Counts(len(predicted), len(golden), len(matched))
        if kind != "action_items":
            continue
        for i, j in matched:
            owner = (items[i].get("owner") or {}).get("name")
            if golden[j]["owner"] is not None:
                scores.owners.stated += 1
                scores.owners.right += (owner or "").lower() == golden[j]["owner"].lower()
            if golden[j]["due"] is not None:
                scores.dues.stated += 1
                scores.dues.right += items[i].get("due") == golden[j]["due"]
    return scores


def case_scores(output: BaseModel, gold: dict[str, Any]) -> dict[str, float | None]:
    """One case's scores for `bastion eval app` (None where the gold has nothing to score):
    the summary's ROUGE where the case has a reference summary, the items' precision and
    recall where it has gold items."""
    named: dict[str, float | None] = {}
    if "summary" in gold:
        named.update(rouge(output.model_dump()["summary"], gold["summary"]))
    if all(kind in gold for kind in KINDS):
        named.update(_item_scores(output, gold))
    return named


def _item_scores(output: BaseModel, gold: dict[str, Any]) -> dict[str, float | None]:
    found = score(output.model_dump(mode="json"), gold)
    counts = {"items": found.items, **found.kinds}
    named: dict[str, float | None] = {}
    for name, c in counts.items():
        named[f"{name}_precision"] = c.precision if c.predicted else None
        named[f"{name}_recall"] = c.recall if c.gold else None
    for name, agreement in (("owner", found.owners), ("due", found.dues)):
        named[f"{name}_accuracy"] = agreement.right / agreement.stated if agreement.stated else None
    return named


def write_cases(
    channels: Iterable[LabelledChannel],
    folder: Path,
    reader: str,
    expect: Callable[[LabelledChannel], dict[str, Any]] = expected,
) -> list[dict[str, Any]]:
    """Each channel written as an export under `folder`, and its evaluation case (the whole
    channel as the window; `expect` gives what it is scored against, by default its gold
    items). `reader` (the username the cases run as) is made a member of the private
    channels, so that they are read at all."""
    cases = []
    for channel in channels:
        export = folder / channel.name
        write_export(channel, export, reader)
        given = {
            "channel": channel.name,
            "export": str(export),
            "since": channel.first_day.isoformat(),
            "until": channel.last_day.isoformat(),
        }
        cases.append({"id": channel.name, "input": given, "expected": expect(channel)})
    return cases


def total(scores: Iterable[Scores]) -> Scores:
    summed = Scores()
    for s in scores:
        summed.add(s)
    return summed


def main(argv: list[str]) -> None:
    """Write the labelled channels' exports under HOME/exports/slack-digest-eval and their
    cases next to them; print the cases file's path."""
    if len(argv) != 2:
        raise SystemExit("usage: python -m bastion.apps.slack_digest.scoring BASTION_HOME READER")
    folder = Path(argv[0]).expanduser() / "exports" / "slack-digest-eval"
    cases = write_cases(load_channels(), folder, argv[1])
    path = folder / "cases.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
