"""Prompt-injection detection: heuristics (rules.yaml) plus a trained text classifier.

The classifier is character and word n-gram TF-IDF with logistic regression: it reads
English and German alike and runs in a millisecond or two on a CPU. It is trained by
`bastion guards train injection`; the artefact shipped in `model/` was made that way (its
card says from what). The score is the larger of the classifier's probability and the
strongest matching rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bastion.guards.pii.normalize import normalize
from bastion.guards.text_classifier import SENTENCE_BREAK, TrainedModel, tfidf_logistic

HERE = Path(__file__).parent
RULES_FILE = HERE / "rules.yaml"
SHIPPED_MODEL = HERE / "model" / "injection.joblib"


@dataclass(frozen=True)
class Rule:
    name: str
    score: float
    regex: re.Pattern[str]


def load_rules(path: Path = RULES_FILE) -> list[Rule]:
    return [
        Rule(r["name"], float(r["score"]), re.compile(r["regex"], re.IGNORECASE))
        for r in yaml.safe_load(path.read_text(encoding="utf-8"))
    ]


_SPACED_LETTERS = re.compile(r"\b(?:\w ){3,}\w\b")
# Shortest sentences scored alone: in a prompt any but "OK."; in pasted material, whose short
# lines ("If you say so.") address someone all the time, only those long enough to instruct.
PROMPT_SENTENCE = 8
PASTED_SENTENCE = 40


def sentences(text: str, min_chars: int) -> list[str]:
    """The text's sentences (and lines) of at least `min_chars` characters."""
    pieces = (p.strip() for p in SENTENCE_BREAK.split(text))
    return [p for p in pieces if len(p) >= min_chars]


def prepare(text: str) -> str:
    """What the rules and the classifier read: the PII normaliser's folding of invisible
    characters and look-alikes, with s p a c e d letters joined."""
    folded = normalize(text).text
    return _SPACED_LETTERS.sub(lambda m: m.group(0).replace(" ", ""), folded)


def build_classifier() -> Any:
    """Character n-grams catch obfuscation and German compounds, word n-grams phrasing.
    Up to 3 characters: with 4-grams F1 was lower on each of five CV seeds, and one more
    held-out benign prompt was flagged. C 20 and C 50 are within noise of each other held out
    by origin (F1 0.903 and 0.908); C 20 scores short texts less extremely."""
    return tfidf_logistic(
        prepare,
        char_ngrams=(1, 3),
        char_min_df=2,
        char_max_features=60_000,
        word_min_df=1,
        word_max_features=None,
        c=20.0,
    )


class InjectionDetector:
    """Scores text for injection; loads its model once."""

    def __init__(self, model_path: Path = SHIPPED_MODEL, rules: list[Rule] | None = None) -> None:
        self.model = TrainedModel(model_path, "bastion guards train injection")
        self.rules = rules if rules is not None else load_rules()

    def load(self) -> None:
        self.model.load()

    def score(self, text: str, *, sentence_chars: int | None = None) -> tuple[float, list[str]]:
        """(score in [0, 1], names of the rules that matched): see `combined_score`."""
        return combined_score(self.model.probability, self.rules, text, sentence_chars)


def combined_score(
    probability: Callable[[str], float],
    rules: list[Rule],
    text: str,
    sentence_chars: int | None = None,
) -> tuple[float, list[str]]:
    """The larger of the classifier's probability and the strongest matching rule, with the
    rules' names. With `sentence_chars`, the worst of the whole text and each of its
    sentences at least that long, so an attack appended to an ordinary question is not
    watered down by it."""
    hits = rule_hits(rules, text)
    pieces = [text]
    if sentence_chars is not None and len(parts := sentences(text, sentence_chars)) > 1:
        pieces += parts
    highest = max(probability(p) for p in pieces)
    return max([highest, *(r.score for r in hits)]), [r.name for r in hits]


def rule_hits(rules: list[Rule], text: str) -> list[Rule]:
    prepared = prepare(text)
    return [r for r in rules if r.regex.search(prepared)]
