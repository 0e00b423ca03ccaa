"""Decisions, action items and open questions, found in each thread by cue rules rather
than by the model, so that every item cites the exact messages it comes from and a small
model's mistakes cannot invent one.

- decision: "we'll go with", "decided", "agreed", "approved", "let's ship", "so X it is";
  a bare "Agreed." or "Approved." decides what the message before it proposed;
- action item: a request ("can you", "please", "@name will", "TODO:") or a commitment
  ("I'll", "will do", "on it"); a commitment right after a request joins it and names
  its owner; a short commitment ("On it.") carries the message it answers;
- open question: a question (not a request) that nobody else answered after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

from bastion.apps.slack_digest.dates import due_date
from bastion.apps.slack_digest.reading import Message, Thread

Kind = Literal["decision", "action", "question"]

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_DECISION = re.compile(
    r"\bwe(?:'ll| will|'re| are)(?: going to)? (?:go|going) with\b"
    r"|\b(?:let's|lets|let us) (?:go with|ship|use|hold|keep|stick with|proceed|move forward"
    r"|switch|drop|cut|skip|postpone|delay|launch|release|roll (?:out|back)|freeze)\b"
    # "agreed", "approved", "decided" said by the people deciding, not reported of others
    r"|^(?:agreed|approved|decided)\b|(?:^|, )approved\b"
    r"|\b(?:we|we've|we have|all|everyone|I|I've|I have) (?:agreed|decided|approve)\b"
    r"|\b(?:is|are|was|were|been) (?:approved|decided|agreed)\b|\bapproved (?:by|at|for)\b"
    r"|\b(?:decision:|final decision|signed off|settled on|going forward|from now on)"
    r"|\b(?:won't|will not) approve\b"
    r"|\bso [^.?!]{1,40} it is\b",
    re.IGNORECASE,
)
_REQUEST = re.compile(
    r"\b(?:can|could|would) you\b"
    r"|\bplease\b(?! (?:welcome|note|see|find|enjoy)\b)"
    r"|^\W*(?:todo|to-do|action item|next step)s?\s*[:\-]",
    re.IGNORECASE,
)
_COMMITMENT = re.compile(
    r"\bI(?:'ll| will| am going to|'m going to)\b(?! be\b)"
    r"|\bI can (?:take|do|handle|look|fix|send|check|cover|draft|write|prepare)\b"
    r"|\b(?:will do|I've got it|leave it with me)\b|(?:^|I'm |I am |working |starting )on it\b"
    r"|^(?:sure|yes|yep|ok|okay)\W+will \w+",
    re.IGNORECASE,
)
# A commitment that opens with an acknowledgement or points back ("On it.", "I'll take
# it") says what it commits to only together with the message it answers.
_BACK_REFERENCE = re.compile(
    r"^(?:yes|yep|sure|ok|okay|will do|on it)\b|\b(?:it|them|those)\b|\b(?:that|this)\W*$"
    r"|\bI(?:'ll| will)\b(?!\s+[a-z])",  # "I will, by Friday": no verb of its own
    re.IGNORECASE,
)
SHORT_WORDS = 2  # "Agreed.", "Yes, approved." decide what was proposed before them
BACK_REFERENCE_WORDS = 8
MAX_TEXT = 300  # an item quotes at most this much of a message


@dataclass(frozen=True)
class Person:
    user: str | None  # Slack user id
    name: str


@dataclass
class Found:
    kind: Kind
    text: str
    messages: list[Message]  # what it cites, in the order written
    owner: Person | None = None
    due: date | None = None
    awaiting_owner: bool = False  # a request nobody has taken on yet


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1].rstrip() + "…"


def _addressee(message: Message, sentence: str, previous: Message | None) -> Person | None:
    """Whom a request asks: someone it mentions (in the request, else in the message),
    else the person it answers."""
    others = [m for m in message.mentions if m.user != message.user]
    if others:
        mention = min(others, key=lambda m: f"@{m.name}" not in sentence)
        return Person(mention.user, mention.name)
    if previous is not None and previous.user != message.user:
        return Person(previous.user, previous.name)
    return None


def _named_owner(message: Message, sentence: str) -> Person | None:
    """Whom a message names to do something: "@Name will ...", "@Name to ..."."""
    for mention in message.mentions:
        if re.search(rf"@{re.escape(mention.name)}\W{{0,2}}(?:will|to)\b", sentence):
            return Person(mention.user, mention.name)
    return None


@dataclass
class _Reading:
    """One pass over a thread, message by message."""

    found: list[Found]
    decided: dict[str, Found]  # message ts -> the decision that cites it

    def decision(self, message: Message, statements: list[str], other: Message | None) -> None:
        cues = [s for s in statements if _DECISION.search(s)]
        if not cues:
            return
        if other is not None and all(len(s.split()) <= SHORT_WORDS for s in cues):
            # "Agreed." decides what the message it answers proposed.
            if other.ts in self.decided:
                self.decided[other.ts].messages.append(message)
                return
            decision = Found("decision", _quote(other.text), [other, message])
            self.decided[other.ts] = decision
        else:
            decision = Found("decision", _quote(message.text), [message])
        self.decided[message.ts] = decision
        self.found.append(decision)

    def action(
        self,
        message: Message,
        parts: list[str],
        statements: list[str],
        previous: Message | None,
        other: Message | None,
    ) -> bool:
        """Add the message's action item, if it has one; True if it asks something."""
        written = message.at.date()
        commitments = [s for s in statements if _COMMITMENT.search(s)]
        requests = [s for s in parts if _REQUEST.search(s)]
        if commitments:
            text = " ".join(commitments)
            me = Person(message.user, message.name)
            due = due_date(text, written)
            asked = next(
                (f for f in self.found if f.awaiting_owner and f.messages[-1] is previous),
                None,
            )
            points_back = (
                len(text.split()) <= BACK_REFERENCE_WORDS
                and _BACK_REFERENCE.search(text) is not None
            )
            if asked is not None and other is not None:  # a request, taken on
                asked.messages.append(message)
                asked.owner, asked.awaiting_owner = me, False
                asked.due = due or asked.due
            elif points_back and other is not None:
                quoted = _quote(f"{other.text} ({message.name}: {text})")
                self.found.append(Found("action", quoted, [other, message], me, due))
            else:
                quoted = _quote(message.text if points_back else text)
                self.found.append(Found("action", quoted, [message], me, due))
            return False
        named = [s for s in statements if _named_owner(message, s)]
        if not requests and not named:
            return False
        text = " ".join(requests or named)
        owner = _named_owner(message, text) or _addressee(message, text, previous)
        due = due_date(text, written)
        self.found.append(Found("action", _quote(text), [message], owner, due, True))
        return bool(requests)

    def question(self, message: Message, parts: list[str], later: list[Message]) -> None:
        questions = [s for s in parts if s.endswith("?") and not _REQUEST.search(s)]
        if questions and not any(m.user != message.user for m in later):
            self.found.append(Found("question", _quote(" ".join(questions)), [message]))


def find_items(thread: Thread) -> list[Found]:
    """The thread's items, citing only its messages inside the window."""
    reading = _Reading([], {})
    for n, message in enumerate(thread.messages):
        previous = thread.messages[n - 1] if n else None
        other = previous if previous is not None and previous.user != message.user else None
        parts = sentences(message.text)
        statements = [s for s in parts if not s.endswith("?")]
        reading.decision(message, statements, other)
        if not reading.action(message, parts, statements, previous, other):
            reading.question(message, parts, thread.messages[n + 1 :])

    window = {m.ts for m in thread.cited}
    kept = []
    for item in reading.found:
        item.messages = [m for m in item.messages if m.ts in window]
        if item.messages:
            kept.append(item)
    return kept
