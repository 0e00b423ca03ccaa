"""Finding copies of registered works in a text.

Every word 5-shingle of the text is looked up among the registry's fingerprints. A hit is
verified on the stored text and grown character by character on its diagonal (the
registered text aligned with the answer): a verbatim run at least `min_chars` long is an
exact copy.

Edited copies break runs, and reordered sentences break diagonals, so the hits on one
document are also grouped by place alone: a hit joins a group when it is near the group's
last hits in the text (`MAX_GAP`) and in the document (`REORDER_SPAN`), whatever the
diagonal. Each group is checked on the stored text: the words around it are aligned with
the registered words around its hits (longest common subsequence, rapidfuzz), and the
best-scoring aligned stretch (a word matched +1, a word left out -0.5) is one piece; its
words are set aside and the rest aligned again, so sentences in another order are found
piece by piece. Pieces next to each other in the text make a near copy when, over the
stretch of text they span and the registered stretch they span, matched words are a share
of at least `near_similarity` (2 * matched / (text words + registered words)) and the text
stretch is at least `near_min_chars` long. A word replaced, inserted or dropped costs one
or two words of that share, so one word in ten edited keeps it near 0.9; text that merely
shares a phrase with the work aligns a few words, not a passage.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Literal

from rapidfuzz.distance import Indel

from bastion.copyright.fingerprint import I64, SHINGLE_WORDS, as_signed, shingle_hashes, tokens
from bastion.copyright.normalise import (
    blank_generic_comments,
    looks_like_code,
    normalise_with_map,
)
from bastion.copyright.registry import Document, ProtectedRegistry

MAX_GAP = 250  # characters of text between a group's hits
REORDER_SPAN = 600  # characters of the document between a hit and its group's (reordering)
GROUP_TAIL = 16  # a hit is compared with this many of its group's last hits
PAD_WORDS = 40  # text words aligned beyond a group's first and last hits
PAD_CHARS = 300  # document characters aligned beyond them
MAX_PIECES = 12  # aligned pieces looked for in one group
MIN_PIECE_WORDS = 4  # matched words in a piece
GAP_COST = 0.5  # score of a word left out of an alignment (a matched word scores 1)
MAX_SKIP = 3  # words one side of an aligned piece may skip in a row


@dataclass(frozen=True)
class MatchRules:
    min_chars: int = 160
    near_similarity: float = 0.8
    near_min_chars: int = 120
    near_min_hits: int = 1
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
    word: int  # index of its first word among the text's words


@dataclass(frozen=True)
class _Piece:
    """An aligned stretch: text words [q_lo, q_hi), document words [w_lo, w_hi)."""

    q_lo: int
    q_hi: int
    w_lo: int
    w_hi: int
    matched: int


def _best_stretch(a: list[int], b: list[int]) -> _Piece | None:
    """The best-scoring stretch of the alignment of `a` with `b` (a word matched +1, a word
    of either side left out -GAP_COST), cut where either side skips more than MAX_SKIP
    words (a sentence from elsewhere, not an edit); None when no words match."""
    best: _Piece | None = None
    best_score = score = 0.0
    start = (0, 0)
    matched = 0
    end: tuple[int, int] | None = None  # where the stretch so far ends
    for op in Indel.opcodes(a, b):
        if op.tag != "equal":
            continue
        if end is not None:
            skipped = (op.src_start - end[0], op.dest_start - end[1])
            score -= GAP_COST * (skipped[0] + skipped[1])
            if score <= 0 or max(skipped) > MAX_SKIP:
                end = None
        if end is None:
            start, score, matched = (op.src_start, op.dest_start), 0.0, 0
        score += op.src_end - op.src_start
        matched += op.src_end - op.src_start
        end = (op.src_end, op.dest_end)
        if score > best_score:
            best_score = score
            best = _Piece(start[0], op.src_end, start[1], op.dest_end, matched)
    return best


def _similarity(pieces: list[_Piece]) -> float:
    """Matched words as a share of the words the pieces span on both sides."""
    q = max(p.q_hi for p in pieces) - min(p.q_lo for p in pieces)
    w = max(p.w_hi for p in pieces) - min(p.w_lo for p in pieces)
    return 2 * sum(p.matched for p in pieces) / (q + w)


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
        words, starts = tokens(normal)
        hits = self._hits(words, starts)
        if not hits:
            return []
        exact = self._exact(normal, source, hits)
        near = self._near(source, words, starts.tolist(), hits, exact)
        return exact + near

    def _hits(self, words: list[str], starts: I64) -> list[_Hit]:
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
                hits.append(_Hit(int(starts[i]), q_end, doc, pos, i))
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
        self,
        source: list[int],
        words: list[str],
        starts: list[int],
        hits: list[_Hit],
        exact: list[Match],
    ) -> list[Match]:
        by_doc: dict[int, list[_Hit]] = defaultdict(list)
        for hit in hits:
            by_doc[hit.doc].append(hit)
        found = []
        for doc, doc_hits in by_doc.items():
            document = self.registry.document(doc)
            if document.kind == "code":
                continue  # code copies must be exact; near chains there are shared idioms
            for group in self._groups(doc_hits):
                if len(group) < self.rules.near_min_hits or all(
                    any(
                        m.document.id == doc
                        and m.start <= source[h.q_start]
                        and source[h.q_end - 1] < m.end
                        for m in exact
                    )
                    for h in group
                ):
                    continue  # inside an exact copy already
                for match in self._near_matches(source, words, starts, document, group):
                    if not any(
                        m.document.id == doc and m.start < match.end and match.start < m.end
                        for m in exact
                    ):
                        found.append(match)
        return found

    @staticmethod
    def _groups(hits: list[_Hit]) -> list[list[_Hit]]:
        """Hits (in text order) near each other in the text and in the document."""
        groups: list[list[_Hit]] = []
        ends: list[int] = []
        for hit in hits:
            for n in range(len(groups) - 1, -1, -1):
                if hit.q_start - ends[n] <= MAX_GAP and any(
                    abs(hit.w_start - h.w_start) <= REORDER_SPAN for h in groups[n][-GROUP_TAIL:]
                ):
                    groups[n].append(hit)
                    ends[n] = max(ends[n], hit.q_end)
                    break
            else:
                groups.append([hit])
                ends.append(hit.q_end)
        return groups

    def _near_matches(
        self,
        source: list[int],
        words: list[str],
        starts: list[int],
        document: Document,
        group: list[_Hit],
    ) -> list[Match]:
        # the text's words around the group, and the document's words around its hits
        q_first = max(0, min(h.word for h in group) - PAD_WORDS)
        q_last = min(len(words), max(h.word for h in group) + SHINGLE_WORDS + PAD_WORDS)
        w_from = max(0, min(h.w_start for h in group) - PAD_CHARS)
        w_to = max(h.w_start + h.q_end - h.q_start for h in group) + PAD_CHARS
        registered = self.registry.text(document.id, w_from, w_to)
        r_words, r_offsets = registered.split(" "), [w_from]
        for word in r_words[:-1]:
            r_offsets.append(r_offsets[-1] + len(word) + 1)
        if w_from > 0:  # the window may cut a word at either end
            r_words, r_offsets = r_words[1:], r_offsets[1:]
        if len(registered) == w_to - w_from:
            r_words, r_offsets = r_words[:-1], r_offsets[:-1]
        ids: dict[str, int] = {}
        a = [ids.setdefault(w, len(ids)) for w in words[q_first:q_last]]
        b = [ids.setdefault(w, len(ids)) for w in r_words]
        # aligned pieces, best first; each one's words are set aside (-1, -2, ... match none)
        pieces: list[_Piece] = []
        unused = -1
        while len(pieces) < MAX_PIECES:
            piece = _best_stretch(a, b)
            if piece is None or piece.matched < MIN_PIECE_WORDS:
                break
            pieces.append(piece)
            for i in range(piece.q_lo, piece.q_hi):
                a[i], unused = unused, unused - 1
            for i in range(piece.w_lo, piece.w_hi):
                b[i], unused = unused, unused - 1
        pieces.sort(key=lambda p: p.q_lo)
        found = []
        todo = [pieces]
        while todo:
            # the run of pieces, consecutive in the text, that matches the most words while
            # similar enough over what it spans; the pieces either side of it are looked at
            # on their own
            pieces = todo.pop()
            best: tuple[int, int, int] | None = None
            for i in range(len(pieces)):
                for j in range(i, len(pieces)):
                    matched = sum(p.matched for p in pieces[i : j + 1])
                    if (best is None or matched > best[0]) and _similarity(
                        pieces[i : j + 1]
                    ) >= self.rules.near_similarity:
                        best = (matched, i, j)
            if best is None:
                continue
            _, i, j = best
            run = pieces[i : j + 1]
            todo += [part for part in (pieces[:i], pieces[j + 1 :]) if part]
            q_lo = q_first + min(p.q_lo for p in run)
            q_hi = q_first + max(p.q_hi for p in run)
            start = source[starts[q_lo]]
            end = source[starts[q_hi - 1] + len(words[q_hi - 1]) - 1] + 1
            if end - start < self.rules.near_min_chars:
                continue
            w_hi = max(p.w_hi for p in run) - 1
            w_start = r_offsets[min(p.w_lo for p in run)]
            w_end = r_offsets[w_hi] + len(r_words[w_hi])
            similarity = round(_similarity(run), 3)
            found.append(Match("near", start, end, similarity, document, w_start, w_end))
        return found
