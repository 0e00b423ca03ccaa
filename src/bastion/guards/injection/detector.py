"""Prompt-injection detection: heuristics (rules.yaml) plus a trained text classifier.

The classifier is character and word n-gram TF-IDF with logistic regression: it reads
English and German alike and runs in a millisecond or two on a CPU. It is trained by
`bastion guards train injection`; the artefact shipped in `model/` was made that way (its
card says from what). The score is the larger of the classifier's probability and the
strongest matching rule.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bastion.guards.artefacts import load_model
from bastion.guards.pii.normalize import normalize

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


def prepare(text: str) -> str:
    """What the rules read: the PII normaliser's folding of invisible characters and
    look-alikes, with s p a c e d letters joined."""
    folded = normalize(text).text
    return _SPACED_LETTERS.sub(lambda m: m.group(0).replace(" ", ""), folded)


def prepare_lower(text: str) -> str:
    """What the classifier reads (a named function, so trained models can be pickled)."""
    return prepare(text).lower()


def build_classifier() -> Any:
    """The untrained model: char n-grams catch obfuscation and German compounds, word
    n-grams catch phrasing; balanced classes because attacks are the minority."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, make_pipeline

    features = FeatureUnion(
        [
            (
                "chars",
                TfidfVectorizer(
                    analyzer="char_wb",
                    preprocessor=prepare_lower,
                    ngram_range=(1, 4),
                    sublinear_tf=True,
                    min_df=2,
                    max_features=60_000,
                ),
            ),
            (
                "words",
                TfidfVectorizer(
                    analyzer="word",
                    preprocessor=prepare_lower,
                    ngram_range=(1, 2),
                    sublinear_tf=True,
                ),
            ),
        ]
    )
    return make_pipeline(
        features, LogisticRegression(C=20.0, class_weight="balanced", max_iter=3000)
    )


class InjectionDetector:
    """Scores text for injection; loads its model once per process."""

    def __init__(self, model_path: Path = SHIPPED_MODEL, rules: list[Rule] | None = None) -> None:
        self.model_path = model_path
        self.rules = rules if rules is not None else load_rules()
        self._model: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._model is None:
                self._model = load_model(self.model_path, "bastion guards train injection")

    def rule_hits(self, text: str) -> list[Rule]:
        return rule_hits(self.rules, text)

    def score(self, text: str) -> tuple[float, list[str]]:
        """(score in [0, 1], names of the rules that matched)."""
        self.load()
        hits = self.rule_hits(text)
        probability = float(self._model.predict_proba([text])[0][1])
        return max([probability, *(r.score for r in hits)]), [r.name for r in hits]


def rule_hits(rules: list[Rule], text: str) -> list[Rule]:
    prepared = prepare(text)
    return [r for r in rules if r.regex.search(prepared)]
