"""Groundedness: how much of an answer its cited passages support.

Each answer sentence is compared with every sentence of the passages: its support is the
mean of (a) the best cosine similarity of MiniLM embeddings and (b) the share of its
content words (stemmed, stopwords out) that occur in the passages. A sentence at or above
the threshold counts as supported; the score is the supported share.

What it can and cannot tell (measured in BENCHMARKS.md on SciFact): it separates answers
drawn from the sources from answers about something else, but it does not read logic, so
a sentence that contradicts its source with the same words ("X increases Y" against
"X decreases Y") looks supported. An entailment model would be needed for that.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bastion.grounding.embedding import Embedder

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|\n+")
_CITATION = re.compile(r"\[\d+(?:,\s*\d+)*\]")
MIN_WORDS = 4  # shorter fragments ("Sure!", "[1]") carry no claim


def sentences(text: str) -> list[str]:
    parts = (p.strip(" -*\t") for p in _SENTENCE.split(_CITATION.sub("", text)))
    return [p for p in parts if len(p.split()) >= MIN_WORDS]


@dataclass(frozen=True)
class SentenceSupport:
    sentence: str
    support: float
    passage: int | None  # index of the passage with the closest sentence


@dataclass(frozen=True)
class Groundedness:
    score: float  # share of claim sentences supported; 1.0 when there are none
    threshold: float
    sentences: tuple[SentenceSupport, ...]

    @property
    def unsupported(self) -> list[str]:
        return [s.sentence for s in self.sentences if s.support < self.threshold]

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": round(self.score, 3),
            "threshold": self.threshold,
            "sentences": len(self.sentences),
            "unsupported": self.unsupported,
        }


class GroundednessScorer:
    def __init__(self, embedder: Embedder | None = None, threshold: float = 0.55) -> None:
        from bastion.grounding.keyword import english_stemmer, tokenize

        self.embedder = embedder or Embedder()
        self.threshold = threshold
        self._stemmer = english_stemmer()
        self._tokenize = tokenize

    def support(self, claims: Sequence[str], passages: Sequence[str]) -> np.ndarray:
        """Support in [0, 1] of each claim by the passages, and the best passage per claim."""
        return self._support(claims, passages)[0]

    def _support(
        self, claims: Sequence[str], passages: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        evidence: list[str] = []
        owner: list[int] = []
        for i, passage in enumerate(passages):
            parts = sentences(passage) or [passage]
            evidence += parts
            owner += [i] * len(parts)
        if not claims or not evidence:
            return np.zeros(len(claims)), np.full(len(claims), -1)
        vectors = self.embedder.embed([*claims, *evidence])
        similarity = vectors[: len(claims)] @ vectors[len(claims) :].T
        best = similarity.argmax(axis=1)
        cosine = np.clip(similarity.max(axis=1), 0.0, 1.0)
        vocabulary = {t for tokens in self._tokenize(list(passages), self._stemmer) for t in tokens}
        overlap = np.array(
            [
                (sum(t in vocabulary for t in tokens) / len(tokens)) if tokens else 0.0
                for tokens in self._tokenize(list(claims), self._stemmer)
            ]
        )
        return (cosine + overlap) / 2, np.array([owner[b] for b in best])

    def score(self, answer: str, passages: Sequence[str]) -> Groundedness:
        claims = sentences(answer)
        if not claims:
            return Groundedness(1.0, self.threshold, ())
        support, best = self._support(claims, passages)
        rows = tuple(
            SentenceSupport(c, round(float(s), 3), int(b) if b >= 0 else None)
            for c, s, b in zip(claims, support, best, strict=True)
        )
        supported = sum(s.support >= self.threshold for s in rows)
        return Groundedness(supported / len(rows), self.threshold, rows)
