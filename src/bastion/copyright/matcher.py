"""Finding copies of registered works in a text.

Every word 5-shingle of the text is looked up among the registry's fingerprints. A hit is
verified on the stored text and grown character by character on its diagonal (the
registered text aligned with the answer): a verbatim run at least `min_chars` long is an
exact copy. Edited copies break runs, so hits on one work are also chained along a
diagonal that may drift by a few words (insertions, deletions); a chain with enough hits
whose text is similar enough to the registered passage (rapidfuzz ratio) is a near copy.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Literal

from rapidfuzz import fuzz

from bastion.copyright.fingerprint import SHINGLE_WORDS, as_signed, shingle_hashes, tokens
from bastion.copyright.normalise import (
    blank_generic_comments,
    looks_like_code,
    normalise_with_map,
)
from bastion.copyright.registry import Document, ProtectedRegistry

MAX_DRIFT = 80  # characters a diagonal may move between chained hits (edits)
MAX_GAP = 250  # characters between chained hits


@dataclass(frozen=True)
class MatchRules:
    min_chars: int = 160
    near_similarity: float = 0.8
    near_min_chars: int = 120
    near_min_hits: int = 3
    max_postings: int = 64  # fingerprints on more places than this are stock phrases


@dataclass(frozen=True)
class Match:
    """A passage of the text, [start, end), that copies a registered document."""

    kind: Literal["exact", "near"]
    start: int
    end: int
    similarity: float
    document: Document
    work_start: int  # normalised offsets in the registered document
    work_end: int

    @property
    def chars(self) -> int:
        return self.end - self.start


def _trim(normal: str, q_start: int, q_end: int, w_start: int) -> tuple[int, int, int]:
    """A run without the separators at its ends (they stand for the punctuation around
    the passage, not for the passage)."""
    while q_start < q_end and normal[q_start] == " ":
        q_start, w_start = q_start + 1, w_start + 1
    while q_end > q_start and normal[q_end - 1] == " ":
        q_end -= 1
    return q_start, q_end, w_start


@dataclass
class _Hit:
    q_start: int  # normalised offsets in the text
    q_end: int
    doc: int
    w_start: int  # normalised offset in the document


class Matcher:
    def __init__(self, registry: ProtectedRegistry, rules: MatchRules | None = None) -> None:
        self.registry = registry
        self.rules = rules or MatchRules()

    def scan(self, text: str) -> list[Match]:
        """The copies in `text`, longest first, one per passage. Text that may hold code is
        checked again with its comments blanked, as registered code is stored without."""
        matches = self._scan(text)
        if looks_like_code(text):
            blanked = blank_generic_comments(text)
            if blanked != text:
                matches += self._scan(blanked)
        kept: list[Match] = []
        for m in sorted(matches, key=lambda m: (-m.chars, m.start)):
            if not any(
                k.document.id == m.document.id and k.start < m.end and m.start < k.end for k in kept
            ):
                kept.append(m)
        return kept

    def _scan(self, text: str) -> list[Match]:
        normal, source = normalise_with_map(text)
        hits = self._hits(normal)
        if not hits:
            return []
        exact = self._exact(normal, source, hits)
        near = self._near(normal, source, hits, exact)
        return exact + near

    def _hits(self, normal: str) -> list[_Hit]:
        words, starts = tokens(normal)
        hashes = as_signed(shingle_hashes(words))
        rows = self.registry.lookup(hashes)
        if not rows:
            return []
        postings = Counter(h for h, _, _ in rows)
        where: dict[int, list[int]] = defaultdict(list)
        for i, h in enumerate(hashes):
            where[h].append(i)
        hits = []
        for h, doc, pos in rows:
            if postings[h] > self.rules.max_postings:
                continue
            for i in where[h]:
                last = i + SHINGLE_WORDS - 1
                q_end = int(starts[last]) + len(words[last])
                hits.append(_Hit(int(starts[i]), q_end, doc, pos))
        hits.sort(key=lambda x: (x.q_start, x.doc))
        return hits

    def _exact(self, normal: str, source: list[int], hits: list[_Hit]) -> list[Match]:
        runs: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
        found = []
        for hit in hits:
            diagonal = (hit.doc, hit.w_start - hit.q_start)
            if any(a <= hit.q_start < b for a, b in runs[diagonal]):
                continue
            lo = max(0, hit.w_start - hit.q_start)
            work = self.registry.text(hit.doc, lo, hit.w_start + len(normal) - hit.q_start)
            at = hit.w_start - lo
            back = 0
            while (
                back < hit.q_start
                and back < at
                and normal[hit.q_start - back - 1] == work[at - back - 1]
            ):
                back += 1
            ahead = 0
            while (
                hit.q_start + ahead < len(normal)
                and at + ahead < len(work)
                and normal[hit.q_start + ahead] == work[at + ahead]
            ):
                ahead += 1
            if ahead < hit.q_end - hit.q_start:
                continue  # a hash collision, not the registered words
            q_start, q_end = hit.q_start - back, hit.q_start + ahead
            runs[diagonal].append((q_start, q_end))
            q_start, q_end, w_start = _trim(normal, q_start, q_end, hit.w_start - back)
            start, end = source[q_start], source[q_end - 1] + 1
            if end - start >= self.rules.min_chars:
                found.append(
                    Match(
                        "exact",
                        start,
                        end,
                        1.0,
                        self.registry.document(hit.doc),
                        w_start,
                        w_start + q_end - q_start,
                    )
                )
        return found

    def _near(
        self, normal: str, source: list[int], hits: list[_Hit], exact: list[Match]
    ) -> list[Match]:
        by_doc: dict[int, list[_Hit]] = defaultdict(list)
        for hit in hits:
            by_doc[hit.doc].append(hit)
        found = []
        for doc, doc_hits in by_doc.items():
            chains: list[list[_Hit]] = []
            for hit in doc_hits:
                diagonal = hit.w_start - hit.q_start
                for chain in chains:
                    last = chain[-1]
                    if (
                        abs(diagonal - (last.w_start - last.q_start)) <= MAX_DRIFT
                        and hit.q_start - last.q_end <= MAX_GAP
                    ):
                        chain.append(hit)
                        break
                else:
                    chains.append([hit])
            for chain in chains:
                match = self._near_match(normal, source, doc, chain)
                if match is not None and not any(
                    m.document.id == doc and m.start < match.end and match.start < m.end
                    for m in exact
                ):
                    found.append(match)
        return found

    def _near_match(
        self, normal: str, source: list[int], doc: int, chain: list[_Hit]
    ) -> Match | None:
        if len(chain) < self.rules.near_min_hits:
            return None
        q_start = chain[0].q_start
        q_end = max(h.q_end for h in chain)
        start, end = source[q_start], source[q_end - 1] + 1
        if end - start < self.rules.near_min_chars:
            return None
        w_start = min(h.w_start for h in chain)
        w_end = max(h.w_start + h.q_end - h.q_start for h in chain)
        registered = self.registry.text(doc, w_start, w_end)
        similarity = fuzz.ratio(normal[q_start:q_end], registered) / 100
        if similarity < self.rules.near_similarity:
            return None
        document = self.registry.document(doc)
        if document.kind == "code":
            return None  # code copies must be exact; near chains there are shared idioms
        return Match("near", start, end, round(similarity, 3), document, w_start, w_end)
