"""Toxicity and hate detection: a TF-IDF classifier over text with obfuscation undone.

Profanity is not hate: the model is trained to separate hateful text from merely
offensive text (Davidson et al.'s "offensive" tweets are negatives), and reads emoji as
words, so "I would love to 🔪 some 👳🏾" is seen as a threat against a group.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import emoji

from bastion.guards.pii.normalize import normalize
from bastion.guards.text_classifier import TrainedModel, tfidf_logistic

SHIPPED_MODEL = Path(__file__).parent / "model" / "toxicity.joblib"
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)
_MENTION_OR_URL = re.compile(r"@\w+|https?://\S+|&amp;|&[a-z]+;|\brt\b")
_SPLIT_LETTERS = re.compile(r"\b(?:[a-z][.\-*_ ]){2,}[a-z]\b")
_REPEATS = re.compile(r"(.)\1{2,}")
# Every emoji has a character from the arrows block (U+2190) up or one of these few below
# it (copyright, registered, trade mark, keycap, !!, !?, information); accented letters
# have none.
_MAYBE_EMOJI = re.compile("[\u00a9\u00ae\u203c\u2049\u20e3\u2122\u2139\u2190-\U0010ffff]")
_WORDISH = re.compile(
    r"\b[a-z0-9@$]*(?:[a-z][a-z0-9@$]*[0-9@$]|[0-9@$][a-z0-9@$]*[a-z])[a-z0-9@$]*"
)


def deobfuscate(text: str) -> str:
    """Undo the spellings people use to slip past filters: look-alike letters, zero-width
    characters, emoji (spelled out), leetspeak inside words (h4te), letters split by
    separators (h.a.t.e) and stretched letters (haaaate); drops @mentions and links."""
    out = normalize(text).text
    if _MAYBE_EMOJI.search(out):  # demojize costs ~0.5 ms a KB even with nothing to do
        out = emoji.demojize(out, delimiters=(" ", " "))
    out = out.lower()
    out = _MENTION_OR_URL.sub(" ", out).replace("_", " ")
    out = _WORDISH.sub(lambda m: m.group(0).translate(_LEET), out)
    out = _SPLIT_LETTERS.sub(lambda m: re.sub(r"[.\-*_ ]", "", m.group(0)), out)
    return _REPEATS.sub(r"\1\1", out)


_NEGATION = re.compile(
    r"\b(?:not|no|never|nobody|nothing|none|neither|nor|cannot|without|dont|doesnt|didnt|"
    r"isnt|arent|wasnt|wont|wouldnt|shouldnt|cant|stop|against)\b|n't\b"
)
_CLAUSE_END = re.compile(r"([.,;:!?()]|\bbut\b)")
_QUOTED = re.compile(r"[\"“”]([^\"“”]{3,200})[\"“”]|'([^']{8,200})'")
_WORD = re.compile(r"\b(\w+)\b")


def mark_negation_and_quotes(text: str) -> str:
    """The word features' view: words after a negation, to the end of the clause, become
    neg_WORD ("they are not vermin"), and quoted words q_WORD (quoted to denounce, not
    asserted), so denials and counter-speech stop sharing features with the hate itself."""
    text = _QUOTED.sub(
        lambda m: " " + " ".join("q_" + w for w in _WORD.findall(m.group(1) or m.group(2))) + " ",
        text.lower(),
    )
    clauses = []
    for clause in _CLAUSE_END.split(text):
        negation = _NEGATION.search(clause)
        if negation:
            end = negation.end()
            clause = clause[:end] + _WORD.sub(r"neg_\1", clause[end:])
        clauses.append(clause)
    return "".join(clauses)


def build_classifier() -> Any:
    return tfidf_logistic(
        deobfuscate,
        char_ngrams=(2, 5),
        char_min_df=3,
        char_max_features=80_000,
        word_min_df=2,
        word_max_features=50_000,
        word_preprocessor=mark_negation_and_quotes,
        c=2.0,
    )


class ToxicityDetector:
    """Probability that a text is hateful or toxic; loads its model once."""

    def __init__(self, model_path: Path = SHIPPED_MODEL) -> None:
        self.model = TrainedModel(model_path, "bastion guards train toxicity")

    def load(self) -> None:
        self.model.load()

    def score(self, text: str) -> float:
        return self.model.probability(text)
