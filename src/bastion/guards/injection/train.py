"""Training and evaluating the injection classifier (`bastion guards train injection`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bastion.errors import BadRequest
from bastion.guards.artefacts import save_model
from bastion.guards.data import (
    BENIGN_DOCUMENTS_TRAIN,
    BENIGN_MULTILINGUAL_TRAIN,
    BENIGN_SHORT_TRAIN,
    INJECTION_ATTACKS_TRAIN,
    SHIPPED_BENIGN,
    prompt_lines,
)
from bastion.guards.injection.detector import (
    PROMPT_SENTENCE,
    build_classifier,
    combined_score,
    load_rules,
    sentences,
)
from bastion.guards.text_classifier import (
    Example,
    LinearScorer,
    fold_splits,
    origin_groups,
    read_labelled,
    training_card,
)
from bastion.labelled.metrics import binary_scores


def read_unlabelled(path: Path, label: int, source: str | None = None) -> list[Example]:
    """Attack or benign prompts with one label for all: a text file (one per line), a JSON
    list or a JSON object of lists (garak's formats), or a folder of such files."""
    if not path.exists():
        raise BadRequest(f"{path} does not exist")
    source = source or path.name
    if path.is_dir():
        return [e for c in sorted(path.iterdir()) for e in read_unlabelled(c, label, source)]
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            items = data if isinstance(data, list) else [x for v in data.values() for x in v]
            return [Example(str(x), label, source) for x in items if str(x).strip()]
        return [Example(text, label, source) for text in prompt_lines(path)]
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, TypeError) as exc:
        raise BadRequest(f"{path}: expected prompts as text lines or JSON lists ({exc})") from None


def build_training_set(
    labelled: list[Path], attacks: list[Path], benign: list[Path]
) -> list[Example]:
    """The given data with the project's own attacks and benign prompts (which alone make a
    working model), and each sentence of its pasted documents as a benign example."""
    examples = [e for p in labelled for e in read_labelled(p)]
    examples += [e for p in [INJECTION_ATTACKS_TRAIN, *attacks] for e in read_unlabelled(p, 1)]
    shipped_benign = [*SHIPPED_BENIGN, BENIGN_MULTILINGUAL_TRAIN, BENIGN_SHORT_TRAIN]
    examples += [e for p in [*shipped_benign, *benign] for e in read_unlabelled(p, 0)]
    examples += benign_sentences(examples)
    return examples


def benign_sentences(examples: list[Example]) -> list[Example]:
    """Each sentence of the project's pasted documents (those of several sentences), as a
    benign example of its own: the guard scores a prompt sentence by sentence too, and a
    sentence of a benign text is benign (an attack's sentences are not all attacks, so they
    are not split)."""
    return [
        Example(sentence, 0, e.source, "sentence")
        for e in examples
        if e.label == 0
        and e.source == BENIGN_DOCUMENTS_TRAIN.name
        and len(pieces := sentences(e.text, PROMPT_SENTENCE)) > 1
        for sentence in pieces
    ]


def train(examples: list[Example], out_dir: Path, command: str) -> dict[str, Any]:
    """Fit on all examples; write the model and its card (data, hashes, counts, command)."""
    started = time.perf_counter()
    model = build_classifier().fit([e.text for e in examples], [e.label for e in examples])
    card = training_card(
        "TF-IDF (char 1-3 + word 1-2) -> logistic regression; rules.yaml beside it",
        examples,
        ("benign", "injection"),
        time.perf_counter() - started,
        command,
    )
    return save_model(model, out_dir / "injection.joblib", card)


def out_of_fold_guard_scores(
    examples: list[Example], folds: int = 5, seed: int = 0, by_origin: bool = True
) -> list[float]:
    """Each example's score as the guard judges a prompt (the classifier on the whole and on
    each sentence, and the rules), from a model fitted without its fold. `by_origin` holds
    whole origins out of training (`origin_groups`): the figure to expect on data nobody has
    seen; random rows otherwise."""
    rules = load_rules()
    groups = origin_groups(examples) if by_origin else None
    scores = [0.0] * len(examples)
    for train_idx, test_idx in fold_splits(examples, folds, seed, groups):
        fold = [examples[i] for i in train_idx]
        model = build_classifier().fit([e.text for e in fold], [e.label for e in fold])
        probability = LinearScorer(model).probability  # as the shipped model is scored
        for i in test_idx:
            scores[i], _ = combined_score(probability, rules, examples[i].text, PROMPT_SENTENCE)
    return scores


def cross_validate(
    examples: list[Example],
    folds: int = 5,
    seed: int = 0,
    score_sources: set[str] | None = None,
    threshold: float = 0.5,
    by_origin: bool = True,
) -> dict[str, Any]:
    """K-fold figures of the guard at `threshold`, counting only rows from `score_sources`
    (all rows when None) while training on everything else."""
    scores = out_of_fold_guard_scores(examples, folds, seed, by_origin)
    scored = [
        (e.label, s >= threshold)
        for e, s in zip(examples, scores, strict=True)
        if score_sources is None or e.source in score_sources
    ]
    result = binary_scores([y for y, _ in scored], [f for _, f in scored])
    split = "held out by origin" if by_origin else "random rows"
    return {"folds": folds, "split": split, "rows_scored": result.pop("rows"), **result}
