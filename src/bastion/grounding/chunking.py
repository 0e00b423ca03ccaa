"""Structure-aware chunking: split on headings first, then paragraphs (or chat lines),
and only cut inside a paragraph when it alone is longer than a chunk.

Each chunk's indexed text starts with the record title and its section path, so a
passage out of context still says what it is about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Passage:
    section: str  # heading path, e.g. "Pairing > Troubleshooting"; "" before any heading
    body: str

    def indexed_text(self, title: str) -> str:
        section = self.section
        if section == title or section.startswith(f"{title} > "):  # the top heading is the title
            section = section[len(title) + 3 :]
        return f"{title} > {section}\n{self.body}" if section else f"{title}\n{self.body}"


def _sections(text: str) -> list[tuple[str, list[str]]]:
    """(heading path, lines) per section."""
    path: list[tuple[int, str]] = []
    sections: list[tuple[str, list[str]]] = [("", [])]
    in_code = False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            in_code = not in_code
        match = None if in_code else _HEADING.match(line)
        if match:
            level = len(match.group(1))
            path = [(lvl, name) for lvl, name in path if lvl < level] + [(level, match.group(2))]
            sections.append((" > ".join(name for _, name in path), []))
        else:
            sections[-1][1].append(line)
    return [(name, lines) for name, lines in sections if any(ln.strip() for ln in lines)]


def _paragraphs(lines: list[str]) -> list[str]:
    text = "\n".join(lines).strip()
    if "\n\n" not in text:  # chat transcripts and lists: every line stands alone
        return [ln.strip() for ln in lines if ln.strip()]
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def _split_long(paragraph: str, words: int, overlap: int) -> list[str]:
    sentences = _SENTENCE_END.split(paragraph)
    pieces: list[str] = []
    current: list[str] = []
    for sentence in sentences:
        tokens = sentence.split()
        while len(tokens) > words:  # a sentence longer than a chunk: cut by words
            head, tokens = tokens[:words], tokens[words - overlap :]
            if current:
                pieces.append(" ".join(current))
                current = []
            pieces.append(" ".join(head))
        if current and len(current) + len(tokens) > words:
            pieces.append(" ".join(current))
            current = current[-overlap:] if overlap else []
        current += tokens
    if current:
        pieces.append(" ".join(current))
    return pieces


def chunk_text(text: str, words: int = 180, overlap: int = 30) -> list[Passage]:
    """Passages of at most about `words` words each, in reading order."""
    overlap = min(overlap, words // 2)
    passages: list[Passage] = []
    for section, lines in _sections(text):
        current: list[str] = []
        size = 0
        for paragraph in _paragraphs(lines):
            n = len(paragraph.split())
            if current and size + n > words:
                passages.append(Passage(section, "\n\n".join(current)))
                current, size = [], 0
            if n > words:
                passages += [Passage(section, p) for p in _split_long(paragraph, words, overlap)]
                continue
            current.append(paragraph)
            size += n
        if current:
            passages.append(Passage(section, "\n\n".join(current)))
    return passages
