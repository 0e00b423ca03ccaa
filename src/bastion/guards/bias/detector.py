"""Bias detection: sentences that generalise about a protected group.

A sentence is only a candidate when it names a group from the lexicon (`lexicon.yaml`, or a
file of the user's). Each group word is then replaced by a placeholder, so the classifier
judges the form of the claim (the group as a whole, a generic verb, a trait) rather than
which group it is, and learns across groups from few examples. The classifier reads word
and character n-grams of the masked sentence plus cue features: where the group word sits,
what follows it, and which of the lexicon's cue lists (quantifiers, traits, refutation,
evidence ...) occur.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from bastion.config import read_yaml
from bastion.errors import ConfigError
from bastion.guards.text_classifier import TrainedModel

HERE = Path(__file__).parent
LEXICON_FILE = HERE / "lexicon.yaml"
SHIPPED_MODEL = HERE / "model" / "bias.joblib"
TRAIN_COMMAND = "bastion guards train bias"
PLACEHOLDER = "grp"
_SEP = "\x1f"  # between the masked sentence and its cue features in the model's input


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _AttributeTerms(_Strict):
    nouns: list[str] = []
    adjectives: list[str] = []
    origins: list[str] = []
    patterns: list[str] = []


class _Cues(_Strict):
    quantifiers: list[str] = []
    generic: list[str] = []
    abilities: list[str] = []
    traits: list[str] = []
    policy: list[str] = []
    refutation: list[str] = []
    evidence: list[str] = []
    specific: list[str] = []
    context: list[str] = []
    reporting: list[str] = []


class _LexiconFile(_Strict):
    person_nouns: list[str]
    followers: list[str] = []
    attributes: dict[str, _AttributeTerms]
    cues: _Cues = _Cues()


_NEVER = r"(?!x)x"
_GAP = r"[\s-]+"


def _units(term: str) -> list[str]:
    """A term as regex pieces: a space or hyphen matches any run of them ("non-binary",
    "non binary"), an apostrophe either kind."""
    units: list[str] = []
    for ch in " ".join(term.split()):
        if ch in " -":
            if units[-1:] != [_GAP]:
                units.append(_GAP)
        else:
            units.append("['’]" if ch in "'’" else re.escape(ch))
    return units


def _trie_regex(node: dict[str, Any]) -> str:
    branches = [unit + _trie_regex(child) for unit, child in sorted(node.items()) if unit]
    body = branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"
    if "" not in node:
        return body
    return f"(?:{body})?" if branches else ""


def _alternation(terms: Iterable[str]) -> str:
    """The terms as one regex, shaped as a trie (prefixes shared): Python's engine tries
    alternatives one by one, so a flat list of hundreds of terms is several times slower."""
    trie: dict[str, Any] = {}
    for term in {t.strip().lower() for t in terms if t.strip()}:
        node = trie
        for unit in _units(term):
            node = node.setdefault(unit, {})
        node[""] = {}
    return _trie_regex(trie) if trie else _NEVER


def _phrases(terms: Iterable[str]) -> re.Pattern[str]:
    """Whole-phrase matching: a term is not found inside a longer word or a hyphenated one."""
    kinds: dict[tuple[bool, bool], list[str]] = {}
    for term in {t.strip().lower() for t in terms if t.strip()}:
        kinds.setdefault((term[0].isalnum(), term[-1].isalnum()), []).append(term)
    parts = [
        ("(?<![\\w-])" if head else "")
        + f"(?:{_alternation(group)})"
        + ("(?![\\w-])" if tail else "")
        for (head, tail), group in kinds.items()
    ]
    return re.compile("|".join(parts) or _NEVER, re.IGNORECASE)


# Before an adjective, these show it may stand for people ("the French are ...", "being
# Asian, ...", "she's Muslim, so ..."); the lexicon's `followers` (or punctuation) after it
# confirm it. A copula counts only after a person ("the case is black" is about a thing).
_NOMINAL_BEFORE = (
    r"(?:(?<![\w-])(?:the|a|an|every|any|each|typical|average|being|"
    r"as\s+a|as\s+an)|(?<![\w-])(?:he|she|they|i|you|we)(?:['’](?:s|m|re)|\s+(?:is|are|was|"
    r"were|am)))\s+"
)


@dataclass(frozen=True)
class Mention:
    """A group named in the text: [start, end) in the text, the words, the attribute."""

    start: int
    end: int
    term: str
    attribute: str


@dataclass(frozen=True)
class Candidate:
    """A sentence that names a group, with what the classifier reads of it."""

    start: int
    end: int
    mentions: tuple[Mention, ...]
    model_input: str


@dataclass(frozen=True)
class Generalisation:
    """A scored candidate sentence."""

    start: int
    end: int
    score: float
    mentions: tuple[Mention, ...]

    @property
    def group(self) -> str:
        return ", ".join(dict.fromkeys(m.term for m in self.mentions))

    @property
    def attribute(self) -> str:
        return ", ".join(dict.fromkeys(m.attribute for m in self.mentions))


_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s|$)|\n")
_CLAUSE_BREAK = re.compile(
    r"[,;:!?\"“”()\[\]—–]|\s-\s|(?<![\w-])(?:but|and|because|that|so|since|cause|while|if|when|"
    r"why|though|although|then|honestly|yes|no|well|lol|tbh)(?![\w-])"
)
_WORD = re.compile(r"\w+")
_TOKEN = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?|['’]s?|[^\sa-z0-9]")
_SUBJECT_LEAD = {
    "all", "most", "every", "the", "many", "nearly", "almost", "typical", "your", "average",
    "a", "an", "any", "each", "like", "of", "these", "those", "our", "some", "no", "not",
}  # fmt: skip
_NEXT_CLASS = {
    **dict.fromkeys(("are", "is", "aren't", "isn't", "'re", "be", "am"), "be"),
    **dict.fromkeys(
        ("can", "can't", "cannot", "will", "won't", "would", "wouldn't", "should", "shouldn't",
         "must", "could", "couldn't", "may", "might", "need", "cant", "wont", "r"),
        "modal",
    ),
    **dict.fromkeys(("do", "don't", "does", "doesn't", "dont"), "do"),
    **dict.fromkeys(("have", "has", "haven't", "hasn't"), "have"),
    **dict.fromkeys(
        ("was", "were", "had", "did", "didn't", "wasn't", "weren't", "got", "went", "came",
         "made", "won", "left", "met", "took", "gave", "told", "said", "ran", "found"),
        "past",
    ),
    **dict.fromkeys(
        ("in", "on", "at", "from", "of", "with", "for", "by", "to", "into", "across", "who",
         "whose", "that", "which", "living", "working", "aged", "under", "over", "about",
         "during", "after", "before", "here", "there", "like"),
        "prep",
    ),
    **dict.fromkeys(("'s", "'"), "poss"),
    **dict.fromkeys(("and", "or", "&", "nor"), "and"),
    **dict.fromkeys(
        ("always", "never", "just", "all", "really", "simply", "naturally", "typically",
         "usually", "generally", "often", "only", "tend", "tends", "honestly", "basically",
         "inherently", "clearly", "obviously", "mostly", "seem", "seems", "also", "too"),
        "adv",
    ),
}  # fmt: skip
_COMPARATIVE = re.compile(
    r"(?<![\w-])(?:better|worse|more|less|smarter|faster|slower|stronger|weaker)(?![\w-])"
    r".{0,60}(?<![\w-])than(?![\w-])"
)
_INFERENCE = re.compile(
    r"(?<![\w-])(?:so|therefore|of course|which is why|that's why)(?![\w-]).{0,40}"
    r"(?<![\w-])(?:must|probably|bound to|surely|obviously|will|won['’]t|can['’]t|of course)"
    r"(?![\w-])"
)
_REQUEST = re.compile(
    r"^\s*(?:please\s+)?(?:write|draft|create|translate|summari[sz]e|list|plan|prepare|design|"
    r"find|suggest|explain|book|schedule|send|make|add|compare|describe|help|give|tell|show|"
    r"how|what|which|where|when|can you|could you|is it|are there|do|does|should (?:i|we)|"
    r"can (?:i|we))(?![\w-])"
)
_VOCATIVE = re.compile(
    rf"^(?:(?:hi|hey|hello|dear|thanks|thank\s+you|welcome|morning|evening|ok|okay|so)\W+)?"
    rf"(?:the\s+)?{PLACEHOLDER}\s*[,!:]|(?<![\w-])(?:hi|hey|hello|dear|thanks|thank\s+you|"
    rf"welcome|bye)\W+(?:the\s+)?{PLACEHOLDER}(?![\w-])"
)
_WHY = re.compile(r"\s*(?:but\s+|so\s+)?(?:why|how come)(?![\w-])")
_YEAR = re.compile(r"(?<!\d)(?:1[5-9]|20)\d\d(?!\d)")
_NEGATED = re.compile(
    rf"(?<![\w-])(?:not\s+all|not\s+every|no)\s+{PLACEHOLDER}(?![\w-])|"
    rf"{PLACEHOLDER}\s+(?:are|is|do|can|will)\s*(?:not|n['’]t)(?![\w-])"
)
_SELF = re.compile(
    rf"(?<![\w-])(?:as\s+an?|i['’]m\s+an?|i\s+am\s+an?|i['’]m|i\s+am)\s+{PLACEHOLDER}(?![\w-])"
)


class Lexicon:
    """The group terms and generalisation cues, compiled."""

    def __init__(self, data: _LexiconFile, source: str) -> None:
        person = _alternation(data.person_nouns)
        any_adjective = _alternation(a for t in data.attributes.values() for a in t.adjectives)
        bounded = r"(?<![\w-])(?P<g>{})(?![\w-])"
        nominal_after = r"(?=\s*(?:[.,;:!?)]|$){})".format(
            f"|\\s+(?:{_alternation(data.followers)})(?![\\w-])" if data.followers else ""
        )
        self._mentions: list[tuple[re.Pattern[str], str]] = []
        for attribute, terms in data.attributes.items():
            found = []
            if terms.nouns:
                nouns = _alternation(terms.nouns)
                found.append(bounded.format(f"(?:{nouns})(?:\\s+(?:{person}))?"))
            if terms.adjectives:
                adjectives = _alternation(terms.adjectives)
                found.append(
                    bounded.format(f"(?:{adjectives})(?:\\s+(?:{any_adjective}))?\\s+(?:{person})")
                )
                found.append(f"{_NOMINAL_BEFORE}(?P<g>{adjectives}){nominal_after}")
            if terms.origins:
                origins = _alternation(terms.origins)
                found.append(bounded.format(f"(?:{person})\\s+from\\s+(?:{origins})"))
            compiled = [re.compile(f, re.IGNORECASE) for f in found]
            for n, pattern in enumerate(terms.patterns):
                try:
                    regex = bounded.format(pattern.replace("{person}", f"(?:{person})"))
                    compiled.append(re.compile(regex, re.IGNORECASE))
                except re.error as exc:
                    raise ConfigError(
                        f"bias lexicon {source}: attributes.{attribute}.patterns[{n}] is not a "
                        f"regular expression: {exc}"
                    ) from None
            self._mentions += [(regex, attribute) for regex in compiled]
        if not self._mentions:
            raise ConfigError(f"bias lexicon {source} names no group terms")
        self.cues = {
            name: _phrases(terms) for name, terms in data.cues.model_dump().items() if terms
        }
        self._before = {
            name: re.compile(
                f"(?:{_alternation(getattr(data.cues, name))})(?:\\s+[\\w'’-]+){{0,2}}\\s*$",
                re.IGNORECASE,
            )
            for name in ("quantifiers", "specific")
            if getattr(data.cues, name)
        }

    @classmethod
    def load(cls, path: Path = LEXICON_FILE) -> Lexicon:
        """Read and check a lexicon file; every problem is a `ConfigError` naming the key."""
        raw = read_yaml(path, "bias lexicon")
        try:
            data = _LexiconFile.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ConfigError(
                f"bias lexicon {path} is malformed ({problems}); expected person_nouns, "
                "attributes (nouns, adjectives, origins, patterns per attribute) and cues"
            ) from None
        return cls(data, str(path))

    def mentions(self, text: str) -> list[Mention]:
        """Every group named in `text`; of overlapping matches the longest wins."""
        found = [
            Mention(m.start("g"), m.end("g"), " ".join(m.group("g").lower().split()), attribute)
            for pattern, attribute in self._mentions
            for m in pattern.finditer(text)
        ]
        found.sort(key=lambda m: (m.start, m.start - m.end))
        kept: list[Mention] = []
        for m in found:
            if not kept or m.start >= kept[-1].end:
                kept.append(m)
        return kept

    def candidates(self, text: str) -> list[Candidate]:
        """The sentences of `text` that name a group, ready for the classifier. A sentence of
        fewer than three words ("Women!") makes no claim to judge."""
        mentions = self.mentions(text)
        if not mentions:
            return []
        out = []
        for start, end in sentence_spans(text):
            inside = tuple(m for m in mentions if start <= m.start and m.end <= end)
            if inside and len(_WORD.findall(text, start, end)) >= 3:
                out.append(
                    Candidate(start, end, inside, self.model_input(text, start, end, inside))
                )
        return out

    def model_input(self, text: str, start: int, end: int, mentions: tuple[Mention, ...]) -> str:
        """The masked sentence and its cue features, as one string the model reads."""
        pieces, at = [], start
        for m in mentions:
            pieces += [text[at : m.start].lower(), PLACEHOLDER]
            at = m.end
        pieces.append(text[at:end].lower())
        masked = " ".join("".join(pieces).split())
        # whitespace was collapsed: find the placeholders again in the masked text
        positions = [m.start() for m in re.finditer(rf"(?<![\w-]){PLACEHOLDER}(?![\w-])", masked)]
        features = self._features(masked, positions or [0])
        return f"{masked}{_SEP}{' '.join(sorted(features))}"

    def _features(self, masked: str, positions: list[int]) -> set[str]:
        features = {f"cue:{name}" for name, regex in self.cues.items() if regex.search(masked)}
        first = positions[0]
        after_first = masked[first + len(PLACEHOLDER) :]
        features |= {f"after:{n}" for n, r in self.cues.items() if r.search(after_first)}
        # "the idea that women ...", "it's a myth that women ...": the claim is reported
        features |= {f"earlier:{n}" for n, r in self.cues.items() if r.search(masked[:first])}
        for pos in positions:
            prefix = masked[:pos]
            for name, regex in self._before.items():
                if regex.search(prefix):
                    features.add(f"before:{name}")
            # the group word opens its clause, alone or after "all", "the", "most" ...
            lead = _CLAUSE_BREAK.split(prefix)[-1].split()
            subject = not lead or (len(lead) <= 3 and all(w in _SUBJECT_LEAD for w in lead))
            if subject:
                features.add("subject" if not lead else "subject_after_determiner")
            following = _TOKEN.findall(masked[pos + len(PLACEHOLDER) :])[:3]
            classes = [_token_class(t) for t in following] or ["end"]
            features.add(f"next:{classes[0]}")
            if classes[0] == "adv" and len(classes) > 1:
                features.add(f"next2:{classes[1]}")
            if subject and classes[0] in ("be", "modal", "do", "have", "adv", "verb"):
                features.add("subject_generic")
        if len(positions) > 1:
            features.add("several_groups")
        checks = (
            ("question", masked.rstrip().endswith("?")),
            ("why", bool(_WHY.match(masked))),
            ("comparative", bool(_COMPARATIVE.search(masked))),
            ("inference", bool(_INFERENCE.search(masked))),
            ("request", bool(_REQUEST.search(masked))),
            ("year", bool(_YEAR.search(masked))),
            ("number", any(c.isdigit() for c in masked)),
            ("negated", bool(_NEGATED.search(masked))),
            ("self", bool(_SELF.search(masked))),
            ("vocative", bool(_VOCATIVE.search(masked))),
            ("quoted", any(q in masked for q in '"“”‘')),
        )
        return features | {name for name, hit in checks if hit}


def _token_class(token: str) -> str:
    token = token.replace("’", "'")
    if token in _NEXT_CLASS:
        return _NEXT_CLASS[token]
    if not token[0].isalnum():
        return "punct"
    if token.isdigit():
        return "number"
    return "past" if token.endswith("ed") else "verb"


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """[start, end) of each sentence: text up to . ! ? followed by a space, or a line end."""
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        end = m.start() if m.group() == "\n" else m.end()
        spans.append((start, end))
        start = m.end()
    spans.append((start, len(text)))
    out = []
    for s, e in spans:
        chunk = text[s:e]
        if chunk.strip():
            lead = len(chunk) - len(chunk.lstrip())
            out.append((s + lead, s + len(chunk.rstrip())))
    return out


def text_part(rows: list[str]) -> list[str]:
    return [r.partition(_SEP)[0] for r in rows]


def cue_part(rows: list[str]) -> list[str]:
    return [r.partition(_SEP)[2] for r in rows]


CUE_WEIGHT = 0.5  # cue features against the n-grams: chosen by cross-validation on the train set


def weighted_cues(counts: Any) -> Any:
    return counts * CUE_WEIGHT


def build_classifier() -> Any:
    """Word 1-2 and character 3-5 n-grams of the masked sentence, plus the cue features,
    into a class-balanced logistic regression."""
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2)
    cues = CountVectorizer(binary=True, token_pattern=r"\S+", lowercase=False)
    return make_pipeline(
        FeatureUnion(
            [
                ("words", make_pipeline(FunctionTransformer(text_part), words)),
                ("chars", make_pipeline(FunctionTransformer(text_part), chars)),
                (
                    "cues",
                    make_pipeline(
                        FunctionTransformer(cue_part),
                        cues,
                        FunctionTransformer(weighted_cues, accept_sparse=True),
                    ),
                ),
            ]
        ),
        LogisticRegression(C=5.0, class_weight="balanced", max_iter=3000),
    )


class BiasDetector:
    """Scores each sentence that names a protected group; loads its model once and caches
    sentence scores, since a stream re-checks the same sentences as it grows."""

    CACHE_SIZE = 4096

    def __init__(self, model_path: Path = SHIPPED_MODEL, lexicon: Lexicon | None = None) -> None:
        self.model = TrainedModel(model_path, TRAIN_COMMAND)
        self.lexicon = lexicon or Lexicon.load()
        self._cache: dict[str, float] = {}
        self._lock = threading.Lock()

    def load(self) -> None:
        self.model.load()

    def detect(self, text: str) -> list[Generalisation]:
        """Every candidate sentence of `text` with its probability of being a generalisation."""
        candidates = self.lexicon.candidates(text)
        with self._lock:
            known = {
                c.model_input: self._cache[c.model_input]
                for c in candidates
                if c.model_input in self._cache
            }
        missing = list(
            dict.fromkeys(c.model_input for c in candidates if c.model_input not in known)
        )
        if missing:
            scores = self.model.load().predict_proba(missing)[:, 1]
            fresh = dict(zip(missing, map(float, scores), strict=True))
            known.update(fresh)
            with self._lock:
                if len(self._cache) + len(fresh) > self.CACHE_SIZE:
                    self._cache.clear()
                self._cache.update(fresh)
        return [
            Generalisation(c.start, c.end, known[c.model_input], c.mentions) for c in candidates
        ]
