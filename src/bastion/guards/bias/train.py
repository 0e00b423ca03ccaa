"""Training the bias classifier (`bastion guards train bias`) from `{"text", "label"}` JSON lines.

Only sentences that name a group reach the classifier, so it learns from those: each row
gives its candidate sentences with the row's label (the project's rows hold one claim
each). Positive rows that name no group from the lexicon are counted in the card as
lexicon misses: no classifier can catch them.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from bastion.errors import BadRequest
from bastion.guards.artefacts import save_model
from bastion.guards.bias.detector import (
    LEXICON_FILE,
    Lexicon,
    build_classifier,
    sentence_spans,
)
from bastion.guards.data import HERE as DATA_DIR
from bastion.guards.text_classifier import Example, read_labelled, training_card
from bastion.labelled.metrics import binary_scores

SHIPPED_TRAIN = DATA_DIR / "bias_generalisations_train.jsonl"
THRESHOLD = 0.6  # the default threshold; the card's figures are measured at it


def sentence_rows(examples: list[Example], lexicon: Lexicon) -> tuple[list[str], list[int]]:
    """The classifier's inputs (candidate sentences) and labels, from labelled rows."""
    inputs, labels = [], []
    for e in examples:
        for c in lexicon.candidates(e.text):
            inputs.append(c.model_input)
            labels.append(e.label)
    return inputs, labels


# Each one-sentence generalisation is also a negative inside a frame that reports or refutes
# it, so the classifier learns that the frame, not the claim's words, decides.
FRAMES = (
    "Some people think {}, which is a stereotype.",
    "It is a myth that {}.",
    "The claim that {} is false.",
    "There is no evidence that {}.",
    "She was criticised for saying that {}.",
    "The workshop explains why the belief that {} is harmful.",
    "It's unfair to assume that {}.",
    "The article debunks the idea that {}.",
    "Saying that {} is prejudice, not fact.",
    "Nobody should assume that {}.",
    "The moderator removed a post claiming that {}.",
    "Researchers found no support for the notion that {}.",
)


def framed(examples: list[Example]) -> list[Example]:
    """Negatives made from every other one-sentence generalisation, framed in turn."""
    claims = [
        e.text.strip().rstrip(".!")
        for e in examples
        if e.label and e.text.strip().endswith((".", "!")) and len(sentence_spans(e.text)) == 1
    ][::2]
    return [
        Example(FRAMES[i % len(FRAMES)].format(c[0].lower() + c[1:]), 0, "framed generalisations")
        for i, c in enumerate(claims)
    ]


def fit(examples: list[Example], lexicon: Lexicon) -> Any:
    inputs, labels = sentence_rows(examples + framed(examples), lexicon)
    if min(sum(labels), len(labels) - sum(labels)) < 10:
        raise BadRequest(
            "training needs at least 10 generalisations and 10 other sentences that name a "
            "group from the lexicon"
        )
    return build_classifier().fit(inputs, labels)


def row_scores(model: Any, examples: list[Example], lexicon: Lexicon) -> list[float]:
    """A row's score is its most biased sentence's; a row naming no group scores 0."""
    scores = []
    for e in examples:
        inputs = [c.model_input for c in lexicon.candidates(e.text)]
        scores.append(float(max(model.predict_proba(inputs)[:, 1])) if inputs else 0.0)
    return scores


def measure(
    model: Any, examples: list[Example], lexicon: Lexicon, threshold: float = THRESHOLD
) -> dict[str, Any]:
    scores = row_scores(model, examples, lexicon)
    labels = [e.label for e in examples]
    return binary_scores(labels, [s >= threshold for s in scores])


def cross_validate(
    examples: list[Example], lexicon: Lexicon, folds: int = 5, seed: int = 0
) -> dict[str, Any]:
    """Row-level precision and recall of models fitted without each row's fold."""
    from sklearn.model_selection import StratifiedKFold

    labels = [e.label for e in examples]
    scores = [0.0] * len(examples)
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train_idx, test_idx in split.split(labels, labels):
        model = fit([examples[i] for i in train_idx], lexicon)
        held = [examples[i] for i in test_idx]
        for i, score in zip(test_idx, row_scores(model, held, lexicon), strict=True):
            scores[i] = score
    result = binary_scores(labels, [s >= THRESHOLD for s in scores])
    return {"method": f"{folds}-fold cross-validation over rows", **result}


def train(
    out_dir: Path,
    data_path: Path = SHIPPED_TRAIN,
    command: str = "bastion guards train bias",
    lexicon_path: Path = LEXICON_FILE,
    eval_path: Path | None = None,
) -> dict[str, Any]:
    """Cross-validate, fit on every row and write `bias.joblib` with its card; with
    `eval_path`, the card also holds the figures on that held-out file."""
    lexicon = Lexicon.load(lexicon_path)
    examples = read_labelled(data_path)
    misses = sum(1 for e in examples if e.label and not lexicon.candidates(e.text))
    validation = cross_validate(examples, lexicon)
    started = time.perf_counter()
    model = fit(examples, lexicon)
    seconds = time.perf_counter() - started
    extra: dict[str, Any] = {
        "threshold": THRESHOLD,
        "validation": validation,
        "lexicon": lexicon_path.name,
        "lexicon_sha256": hashlib.sha256(lexicon_path.read_bytes()).hexdigest(),
        "lexicon_misses": misses,
        "licences": ["Bastion bias sentences (written by the project): Apache-2.0"],
    }
    if eval_path is not None:
        held_out = read_labelled(eval_path)
        extra["held_out"] = {"data": eval_path.name, **measure(model, held_out, lexicon)}
    card = training_card(
        "lexicon-gated sentences, group words masked -> TF-IDF (word 1-2 + char 3-5) + cue "
        "features -> logistic regression",
        examples + framed(examples),
        ("other", "generalisation"),
        seconds,
        command,
        **extra,
    )
    return save_model(model, out_dir / "bias.joblib", card)
