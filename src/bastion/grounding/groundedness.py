"""Groundedness: how much of an answer its cited passages support.

Each answer sentence is compared with every sentence of the passages: its support is the
mean of (a) the best cosine similarity of MiniLM embeddings and (b) the share of its
content words (stemmed, stopwords out) that occur in the passages. A sentence at or above
the threshold counts as supported; the score is the supported share.

Similarity tells an answer drawn from the sources from one about something else (measured
on SciFact in BENCHMARKS.md), but not a sentence that contradicts its source with the same
words ("X increases Y" against "X decreases Y"). With an NLI model configured
(`grounding.nli_model`, see `nli.py`), each sentence is also read with its evidence, the
two sentences of the closest passage nearest to it, and one its evidence contradicts is
unsupported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bastion.grounding.embedding import Embedder
from bastion.grounding.nli import NliModel

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|\n+")
_CITATION = re.compile(r"\[\d+(?:,\s*\d+)*\]")
MIN_WORDS = 4  # shorter fragments ("Sure!", "[1]") carry no claim
SUPPORT_THRESHOLD = 0.55
EVIDENCE_SENTENCES = 2  # of the closest passage, read with the claim for contradictions
CONTRADICTION_THRESHOLD = 0.5


def sentences(text: str) -> list[str]:
    parts = (p.strip(" -*\t") for p in _SENTENCE.split(_CITATION.sub("", text)))
    return [p for p in parts if len(p.split()) >= MIN_WORDS]


def nearest_evidence(evidence: Sequence[str], mine: np.ndarray, similarity: np.ndarray) -> str:
    """The EVIDENCE_SENTENCES sentences of one passage (`mine` marks them) most similar to a
    claim, in the passage's order."""
    (indexes,) = np.nonzero(mine)
    closest = indexes[np.argsort(-similarity[indexes])][:EVIDENCE_SENTENCES]
    return " ".join(evidence[i] for i in sorted(closest))


@dataclass(frozen=True)
class SentenceSupport:
    sentence: str
    support: float  # similarity to the passages, 0-1
    passage: int | None  # index of the passage with the closest sentence
    contradiction: float | None = None  # P(its evidence contradicts it); None: not checked
    supported: bool = False

    @property
    def contradicted(self) -> bool:
        return self.contradiction is not None and self.contradiction >= CONTRADICTION_THRESHOLD

    @property
    def score(self) -> float:
        """Support, scaled down by the probability of a contradiction: one number that is low
        for a sentence off the sources' topic and for one they contradict."""
        if self.contradiction is None:
            return self.support
        return self.support * (1 - self.contradiction)


@dataclass(frozen=True)
class Groundedness:
    score: float  # share of claim sentences supported; 1.0 when there are none
    threshold: float
    sentences: tuple[SentenceSupport, ...]

    @property
    def unsupported(self) -> list[str]:
        return [s.sentence for s in self.sentences if not s.supported]

    @property
    def contradicted(self) -> list[str]:
        return [s.sentence for s in self.sentences if s.contradicted]

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": round(self.score, 3),
            "threshold": self.threshold,
            "sentences": len(self.sentences),
            "unsupported": self.unsupported,
            "contradicted": self.contradicted,
        }


class GroundednessScorer:
    """`nli`, when given, reads each sentence with its evidence for contradictions."""

    def __init__(
        self,
        embedder: Embedder | None = None,
        threshold: float = SUPPORT_THRESHOLD,
        *,
        nli: NliModel | None = None,
    ) -> None:
        from bastion.grounding.keyword import english_stemmer, tokenize

        self.embedder = embedder or Embedder()
        self.threshold = threshold
        self.nli = nli
        self._stemmer = english_stemmer()
        self._tokenize = tokenize

    def support(self, claims: Sequence[str], passages: Sequence[str]) -> np.ndarray:
        """Similarity support in [0, 1] of each claim by the passages."""
        return np.array([s.support for s in self.judge(claims, passages)])

    def judge(self, claims: Sequence[str], passages: Sequence[str]) -> list[SentenceSupport]:
        """Each claim's support, closest passage and, with an NLI model, the probability
        that its evidence contradicts it."""
        evidence: list[str] = []
        owner: list[int] = []
        for i, passage in enumerate(passages):
            parts = sentences(passage) or [passage]
            evidence += parts
            owner += [i] * len(parts)
        if not claims or not evidence:
            return [SentenceSupport(c, 0.0, None) for c in claims]
        vectors = self.embedder.embed([*claims, *evidence])
        similarity = vectors[: len(claims)] @ vectors[len(claims) :].T
        cosine = np.clip(similarity.max(axis=1), 0.0, 1.0)
        vocabulary = {t for tokens in self._tokenize(list(passages), self._stemmer) for t in tokens}
        overlap = np.array(
            [
                (sum(t in vocabulary for t in tokens) / len(tokens)) if tokens else 0.0
                for tokens in self._tokenize(list(claims), self._stemmer)
            ]
        )
        support = (cosine + overlap) / 2
        best_passage = [owner[b] for b in similarity.argmax(axis=1)]
        contradiction: list[float | None] = [None] * len(claims)
        if self.nli is not None:
            owners = np.array(owner)
            nearest = [
                nearest_evidence(evidence, owners == p, row)
                for row, p in zip(similarity, best_passage, strict=True)
            ]
            contradiction = [float(k) for k in self.nli.contradicted(claims, nearest)]
        return [
            SentenceSupport(
                c,
                round(float(s), 3),
                p,
                None if k is None else round(k, 3),
                bool(s >= self.threshold and (k is None or k < CONTRADICTION_THRESHOLD)),
            )
            for c, s, p, k in zip(claims, support, best_passage, contradiction, strict=True)
        ]

    def score(self, answer: str, passages: Sequence[str]) -> Groundedness:
        claims = sentences(answer)
        if not claims:
            return Groundedness(1.0, self.threshold, ())
        rows = tuple(self.judge(claims, passages))
        return Groundedness(sum(s.supported for s in rows) / len(rows), self.threshold, rows)
