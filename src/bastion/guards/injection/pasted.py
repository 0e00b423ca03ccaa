"""Telling what a sender asks of the model from material pasted in for it to work on.

"Summarize the dialogue:" followed by a dialogue is an instruction and a document. The
document is full of instructions to people ("call me back", "forget it"), and scored as a
prompt it reads as an attack: whole DialogSum dialogues were blocked that way. So the guard
scores the two apart: the sender's own words as a prompt, the pasted bodies the way it scores
retrieved documents (an explicit attack phrasing, or a near-certain score).

What counts as pasted, in the order it is looked for:
- a fenced block (```, \"\"\", ''') or a run of "> " quoted lines;
- a quotation that runs from after a short lead to the end ('What does this mean? "...."');
- a run of speaker turns ("#Person1#: ...", "Anna: ...", "[10:02] Anna: ...");
- the body after a short lead that ends with a colon ("Summarize this e-mail:");
- the body before a short closing paragraph that points back at it ("Summarize the above.");
- the body after a short first paragraph that points at it ("What does this study find?");
- a quotation in double quotes inside what is left.
Each only when it is long enough to be a document (MIN_BODY characters): a short "quoted"
attack stays part of the prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_BODY = 150  # characters; below this a "document" is as short as a prompt
MAX_LEAD = 300  # characters of an introducing or closing instruction
MAX_COLON_LEAD = 160  # "Summarize ...:" is short; prose may have a colon further on
MIN_TURNS = 3  # speaker turns that make a transcript

# The fence's language tag is bounded: an unbounded one made an unclosed fence quadratic.
_FENCED = re.compile(r"(```|\"\"\"|''')[\w+.-]{0,20}[ \t]*\n?(.*?)\1", re.DOTALL)
_QUOTED_LINES = re.compile(r"(?:^[ \t]*>.*(?:\n|$))+", re.MULTILINE)
_QUOTATION = re.compile(rf"[\"“„«]([^\"“”„«»]{{{MIN_BODY},}})[\"”“»]")
_TURN = re.compile(  # [10:02] optional, then "#Person1#", "Anna Berg" or "A", a colon
    r"^[ \t]*(?:\[[\d:.\s]+\][ \t]*)?"
    r"(?:#[\w ]{1,20}#|[A-Z][\w.'\- ]{0,30}|[A-Z]{1,3}\d?)[ \t]*:[ \t]*\S"
)
_QUOTED_TO_END = re.compile(
    rf"^([^\"“„«]{{1,{MAX_LEAD}}})[\"“„«](.{{{MIN_BODY},}})[\"”“»]\s*$", re.DOTALL
)
_SENTENCE_END = re.compile(r"[.?!][\"”’']?\s")
_QUOTES = re.compile(r"[\"“”„«»]")
_PARAGRAPHS = re.compile(r"\n[ \t]*\n")
_LEAD_COLON = re.compile(rf"^([^\n:]{{1,{MAX_COLON_LEAD}}}:)\s*(?=\S)")
_POINTS_BACK = re.compile(
    r"\b(?:above|below|following|this|these|that|those|it|"
    r"the (?:text|passage|dialogue|conversation|e-?mail|"
    r"message|transcript|abstract|article|story|document|excerpt|chat|thread|letter|notes?))\b|"
    r"\b(?:oben|diese[nmrs]?|das|den (?:text|dialog))\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Parts:
    """A message cut into the sender's instructions and the bodies pasted into it."""

    instructions: str
    pasted: tuple[str, ...] = ()


def split_pasted(text: str) -> Parts:
    """The instructions (everything not recognised as pasted) and the pasted bodies."""
    pasted: list[str] = []

    def take(match: re.Match[str], group: int = 0) -> str:
        body = match.group(group)
        if len(body.strip()) < MIN_BODY:
            return match.group(0)
        pasted.append(body.strip())
        return "\n"

    rest = _FENCED.sub(lambda m: take(m, 2), text)
    rest = _QUOTED_LINES.sub(take, rest)
    rest = _QUOTED_TO_END.sub(lambda m: m.group(1) if take(m, 2) == "\n" else m.group(0), rest)
    rest = _take_turns(rest, pasted)
    rest = _take_after_lead(rest, pasted)
    rest = _take_before_closing(rest, pasted)
    rest = _take_after_pointer(rest, pasted)
    rest = _QUOTATION.sub(lambda m: take(m, 1), rest)  # a quotation inside the instructions
    return Parts(rest.strip(), tuple(pasted))


def _take_turns(text: str, pasted: list[str]) -> str:
    """Runs of speaker turns (a dialogue, a chat log, a meeting transcript), with the
    lines that continue a turn."""
    lines = text.split("\n")
    kept: list[str] = []
    run: list[str] = []
    turns = 0

    def close() -> None:
        nonlocal run, turns
        body = "\n".join(run).strip()
        if turns >= MIN_TURNS and len(body) >= MIN_BODY:
            pasted.append(body)
            kept.append("")
        else:
            kept.extend(run)
        run, turns = [], 0

    for line in lines:
        if _TURN.match(line):
            run.append(line)
            turns += 1
        elif run and line.strip():
            run.append(line)  # a turn that goes on over several lines
        else:
            close()
            kept.append(line)
    close()
    return "\n".join(kept)


def _take_after_lead(text: str, pasted: list[str]) -> str:
    """A short instruction ending with a colon, then the material it introduces."""
    stripped = text.strip()
    lead = _LEAD_COLON.match(stripped)
    # An instruction is a sentence or two; prose with a colon early on has more, or quotes.
    if not lead or len(_SENTENCE_END.findall(lead.group(1))) > 1 or _QUOTES.search(lead.group(1)):
        return text
    body = stripped[lead.end() :].strip()
    if len(body) < MIN_BODY:
        return text
    # The closing line of the message may be an instruction again ("Keep it short.").
    paragraphs = _PARAGRAPHS.split(body)
    closing = paragraphs[-1] if len(paragraphs) > 1 and len(paragraphs[-1]) <= MAX_LEAD else ""
    if closing:
        body = body[: body.rfind(closing)].strip()
    pasted.append(body)
    return f"{lead.group(1)}\n{closing}"


def _take_before_closing(text: str, pasted: list[str]) -> str:
    """Material first, then a short closing paragraph that points back at it."""
    paragraphs = [p for p in _PARAGRAPHS.split(text.strip()) if p.strip()]
    if len(paragraphs) < 2:
        return text
    closing = paragraphs[-1]
    body = "\n\n".join(paragraphs[:-1]).strip()
    if len(closing) > MAX_LEAD or len(body) < MIN_BODY or not _POINTS_BACK.search(closing):
        return text
    pasted.append(body)
    return closing


def _take_after_pointer(text: str, pasted: list[str]) -> str:
    """A short first paragraph that points at what follows, then the material."""
    paragraphs = [p for p in _PARAGRAPHS.split(text.strip()) if p.strip()]
    if len(paragraphs) < 2:
        return text
    lead = paragraphs[0]
    body = "\n\n".join(paragraphs[1:]).strip()
    if len(lead) > MAX_LEAD or len(body) < MIN_BODY or not _POINTS_BACK.search(lead):
        return text
    pasted.append(body)
    return lead
