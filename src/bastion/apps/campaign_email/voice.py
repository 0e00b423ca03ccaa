"""The brand's voice, read from its guide and its past campaigns, and the rules an email is
held to: what the model is told, what is added by construction (greeting, sign-off,
unsubscribe footer) and what is checked after (banned terms, length, exclamation marks)."""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field

from pydantic import BaseModel


@dataclass(frozen=True)
class VoiceProfile:
    tone: list[str]  # the guide's tone rules, one line each
    use: list[str]  # words and names the brand uses
    avoid: list[str]  # words it never uses (checked, case-insensitive, whole words)
    products: list[str]  # product names, spelled exactly
    sign_off: str  # the lines every campaign email ends with
    greeting: str  # "Hi {first_name}," as past campaigns open
    words: int  # the median length of a past campaign's body
    subject_chars: int = 60
    examples: list[str] = field(default_factory=list)  # past subject lines

    def instructions(self) -> str:
        return "\n".join(
            [
                "Tone: " + " ".join(self.tone),
                "Use words like: " + ", ".join(self.use) + ".",
                "Never use: " + ", ".join(self.avoid) + ".",
                "Write product names exactly: " + ", ".join(self.products) + ".",
                f"Body: about {self.words} words, short sentences, at most one exclamation mark.",
                f"Subject: under {self.subject_chars} characters, sentence case, no "
                "exclamation mark, the benefit first. Past subjects: "
                + "; ".join(self.examples[:4]),
            ]
        )


def _sections(markdown: str) -> dict[str, str]:
    parts = re.split(r"^## +(.+)$", markdown, flags=re.MULTILINE)
    return {
        title.strip().lower(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)
    }


def _bullets(text: str) -> list[str]:
    """A list's items, each with its continuation lines joined."""
    items: list[str] = []
    for line in text.splitlines():
        if re.match(r"^\s*- +", line):
            items.append(re.sub(r"^\s*- +", "", line).strip())
        elif items and line.startswith("  ") and line.strip():
            items[-1] += " " + line.strip()
    return items


def _terms(text: str) -> list[str]:
    """Terms of a list item: its quoted phrases if it quotes, else its comma-separated
    words (asides in parentheses dropped)."""
    text = re.sub(r"\([^)]*\)", "", text)
    quoted = re.findall(r'"([^"]+)"', text)
    parts = quoted or re.split(r"[,;]", text)
    return [t.strip().strip("*") for t in parts if t.strip().strip("*")]


def read_profile(guide: str, campaigns: list[str]) -> VoiceProfile:
    """A profile from the guide's sections (Tone, Words we use, Words we avoid, Product
    names, Sign-off) and the past campaigns (their length, greeting, subjects)."""
    sections = _sections(guide)
    tone = [  # the rule's name and its first sentence
        " ".join(re.split(r"(?<=\.) ", re.sub(r"\*\*(.+?)\*\*", r"\1", b))[:2])
        for b in _bullets(sections.get("tone", ""))
    ]
    use = [t for b in _bullets(sections.get("words we use", "")) for t in _terms(b)]
    avoid = []
    for row in re.findall(r"^\|([^|]+)\|", sections.get("words we avoid", ""), re.MULTILINE):
        if row.strip().lower() not in ("avoid", "---") and not set(row.strip()) <= {"-"}:
            avoid += _terms(row)
    products_text = sections.get("product names", "")
    first = products_text.split(".")[0]
    products = _terms(first.split(":", 1)[-1]) if ":" in first else []
    quote = re.findall(r"^> ?(.*)$", sections.get("sign-off", ""), re.MULTILINE)
    sign_off = "\n".join(quote).strip()
    bodies, subjects, greeting = [], [], "Hi {first_name},"
    for text in campaigns:
        head, _, body = text.partition("\n\n")
        subject = re.search(r"^Subject: *(.+)$", head, re.MULTILINE)
        if subject:
            subjects.append(subject.group(1).strip())
        lines = body.strip().splitlines()
        if lines and lines[0].startswith("Hi "):
            greeting = lines[0].replace("{{first_name}}", "{first_name}")
        bodies.append(len(body.split()))
    return VoiceProfile(
        tone=tone,
        use=use,
        avoid=[a for a in avoid if a],
        products=products,
        sign_off=sign_off,
        greeting=greeting,
        words=int(statistics.median(bodies)) if bodies else 150,
        examples=subjects,
    )


class RuleChecks(BaseModel):
    """How a finished email stands against the brand rules."""

    banned_terms: list[str]  # the avoided words it uses
    words: int
    too_long: bool
    subject_ok: bool  # under the limit, no exclamation mark
    exclamations_ok: bool  # at most one in the body
    footer: bool  # the unsubscribe footer is there
    sign_off: bool

    @property
    def passed(self) -> bool:
        return (
            not self.banned_terms
            and not self.too_long
            and self.subject_ok
            and self.exclamations_ok
            and self.footer
            and self.sign_off
        )


def banned_in(text: str, profile: VoiceProfile) -> list[str]:
    low = text.lower()
    return [t for t in profile.avoid if re.search(rf"\b{re.escape(t.lower())}\b", low)]


def check_rules(subject: str, body: str, footer: str, profile: VoiceProfile) -> RuleChecks:
    words = len(body.split())
    return RuleChecks(
        banned_terms=banned_in(f"{subject}\n{body}", profile),
        words=words,
        too_long=words > 2 * profile.words + 80,  # the message itself plus what is added
        subject_ok=len(subject) <= profile.subject_chars and "!" not in subject,
        exclamations_ok=body.count("!") <= 1,
        footer=footer in body,
        sign_off=profile.sign_off in body,
    )


def trim_words(text: str, limit: int) -> str:
    """At most `limit` words, cut at the end of a sentence where one is near."""
    words = text.split()
    if len(words) <= limit:
        return text.strip()
    cut = " ".join(words[:limit])
    end = max(cut.rfind(". "), cut.rfind("? "), cut.rfind("! "))
    return cut[: end + 1] if end > len(cut) // 2 else cut + " ..."


def assemble(first_name: str, message: str, footer: str, profile: VoiceProfile) -> str:
    """The email body: the brand's greeting, the message (trimmed to the brand's length),
    its sign-off and the unsubscribe footer, the last three added by construction."""
    greeting = profile.greeting.format(first_name=first_name or "there")
    text = trim_words(message, profile.words + 40)
    return f"{greeting}\n\n{text}\n\n{profile.sign_off}\n\n--\n{footer}"
