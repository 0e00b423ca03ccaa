"""Other readings of a text, for the guards that judge what it means (injection, toxicity):
what an attacker hid by encoding it in base64, spelling it letter by letter (i g n o r e) or
writing it in leetspeak (1gn0r3). A guard scores every reading and keeps the worst, so a
disguise costs an attacker the disguise and not the detection.

Looking costs a few regular-expression scans; a text with nothing hidden has one reading,
itself, and the classifiers run once as before.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
from dataclasses import dataclass
from functools import cache
from itertools import islice
from pathlib import Path

import wordninja

_SPACED_LETTERS = re.compile(r"(?<!\w)(?:\w[ .\-*_]){3,}\w(?!\w)")
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)
# A word that mixes letters with digits or @ $ (h4te, 1gn0r3).
_MIXED = re.compile(r"(?<![\w@$])[A-Za-z0-9@$]*(?:[A-Za-z][0-9@$]|[0-9@$][A-Za-z])[A-Za-z0-9@$]*")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")
_MIN_PRINTABLE = 0.9
_COMMON = 60_000


@dataclass(frozen=True)
class Reading:
    how: str  # "as written", or the disguise undone
    text: str


def readings(text: str) -> list[Reading]:
    """The text as written, then each different reading of it."""
    found = [Reading("as written", text)]
    joined = _SPACED_LETTERS.sub(_join_letters, text)
    if joined != text:
        found.append(Reading("with its spaced-out letters joined", joined))
    unleeted = _MIXED.sub(_unleet, joined)
    if unleeted != joined:
        found.append(Reading("with its leetspeak spelled out", unleeted))
    decoded = [d for d in (_decoded(m.group(0)) for m in _BASE64.finditer(text)) if d]
    if decoded:
        found.append(Reading("decoded from base64", "\n".join(decoded)))
    return found


def _join_letters(match: re.Match[str]) -> str:
    letters = re.sub(r"[ .\-*_]", "", match.group(0))
    # The word breaks went with the spaces: put them back by word frequency.
    return " ".join(wordninja.split(letters)) if letters.isalpha() else letters


def _unleet(match: re.Match[str]) -> str:
    word = match.group(0)
    spelled = word.translate(_LEET).lower()
    # Only when that spells a common word: codes (Q3, CD4, IL-6, B2B) stay what they are.
    return spelled if spelled in _common_words() else word


@cache
def _common_words() -> frozenset[str]:
    """English words of three letters or more, the most frequent first (wordninja's list,
    from Wikipedia), down to "pathetic" and "worthless" but not to rare ones like "cda"."""
    listed = Path(wordninja.__file__).parent / "wordninja" / "wordninja_words.txt.gz"
    with gzip.open(listed, "rt", encoding="utf-8") as lines:
        words = (line.strip() for line in lines)
        return frozenset(w for w in islice(words, _COMMON) if len(w) >= 3)


def _decoded(candidate: str) -> str | None:
    """The text a base64 run encodes, when it is text (not an image, a key or a hash)."""
    try:
        raw = base64.b64decode(candidate + "=" * (-len(candidate) % 4), validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    printable = sum(c.isprintable() or c.isspace() for c in text)
    if not text.strip() or printable / len(text) < _MIN_PRINTABLE or " " not in text:
        return None
    return text
