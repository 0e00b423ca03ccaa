"""Undo common PII evasions before detection, keeping a map back to the original text.

- invisible characters (zero-width spaces and joiners, soft hyphens, BOM) are dropped;
- compatibility forms (fullwidth, mathematical, circled) fold by NFKC, and Cyrillic or Greek
  letters that look Latin fold to Latin: everywhere in a mostly Latin text, and only inside
  words that mix scripts in a text that is not (a Russian sentence stays Russian);
- digits written one at a time with separators ("4 1 1 1 . 1 1 1 1 ...") are joined.

`NormalizedText.span` maps a span found in the normalized text to the original text, so
masking replaces exactly what the user wrote.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\u2061\u2062\u2063\u2064")
LOOKALIKES = str.maketrans(
    "АВЕЅІЈКМНОРСТХУаеіјорсуххѕԁɡΑΒΕΖΗΙΚΜΝΟΡΤΥΧοαν",
    "ABESIJKMHOPCTXYaeijopcyxxsdgABEZHIKMNOPTYXoav",
)
_LOOKALIKE = re.compile("[" + "".join(chr(c) for c in LOOKALIKES) + "]")
_WORD = re.compile(r"\w+")
# Single digits joined by one to three separator characters, at least six of them in a row.
_SPACED_DIGITS = re.compile(r"(?<![\d])\d(?:[ .·_\-/]{1,3}\d){5,}(?![\d])")
_SEPARATORS = re.compile(r"[ .·_\-/]")


@dataclass(frozen=True)
class NormalizedText:
    text: str
    offsets: tuple[int, ...]  # offsets[i]: index in the original of normalized character i
    original_length: int

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Map a normalized [start, end) span to the original text."""
        if start >= end:
            return (self.offsets[start] if start < len(self.offsets) else self.original_length,) * 2
        return self.offsets[start], self.offsets[end - 1] + 1


def normalize(text: str) -> NormalizedText:
    chars: list[str] = []
    offsets: list[int] = []
    for i, ch in enumerate(text):
        if ch in INVISIBLE:
            continue
        folded = unicodedata.normalize("NFKC", ch) if ord(ch) > 127 else ch
        for out in folded:
            chars.append(out)
            offsets.append(i)
    joined = _fold_lookalikes("".join(chars))  # one letter for one: offsets still hold
    if _SPACED_DIGITS.search(joined):
        keep = [True] * len(joined)
        for match in _SPACED_DIGITS.finditer(joined):
            for sep in _SEPARATORS.finditer(joined, match.start(), match.end()):
                keep[sep.start()] = False
        chars = [c for c, k in zip(joined, keep, strict=True) if k]
        offsets = [o for o, k in zip(offsets, keep, strict=True) if k]
        joined = "".join(chars)
    return NormalizedText(joined, tuple(offsets), len(text))


def _fold_lookalikes(text: str) -> str:
    if not _LOOKALIKE.search(text):
        return text
    latin = sum(c.isascii() and c.isalpha() for c in text)
    if latin * 2 >= sum(c.isalpha() for c in text):
        return text.translate(LOOKALIKES)
    return _WORD.sub(
        lambda m: m.group(0).translate(LOOKALIKES) if _mixes_scripts(m.group(0)) else m.group(0),
        text,
    )


def _mixes_scripts(word: str) -> bool:
    return any(c.isascii() and c.isalpha() for c in word) and not word.isascii()
