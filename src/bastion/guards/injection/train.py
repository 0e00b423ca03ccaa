"""Training and evaluating the injection classifier (`bastion guards train injection`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bastion.errors import BadRequest
from bastion.guards.artefacts import save_model
from bastion.guards.data import SHIPPED_BENIGN, prompt_lines
from bastion.guards.injection.detector import build_classifier, load_rules, rule_hits
from bastion.guards.text_classifier import Example, out_of_fold_scores, read_labelled, training_card
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
    examples = [e for p in labelled for e in read_labelled(p)]
    examples += [e for p in attacks for e in read_unlabelled(p, 1)]
    examples += [e for p in [*SHIPPED_BENIGN, *benign] for e in read_unlabelled(p, 0)]
    attacks_n = sum(e.label for e in examples)
    benign_n = len(examples) - attacks_n
    if min(attacks_n, benign_n) < 10:
        raise BadRequest(
            f"training needs at least 10 examples of each class; got {attacks_n} injections "
            f"and {benign_n} benign prompts"
        )
    return examples


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


def cross_validate(
    examples: list[Example],
    folds: int = 5,
    seed: int = 0,
    score_sources: set[str] | None = None,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Stratified k-fold scores of the guard (classifier and rules together), counting only
    rows from `score_sources` (all rows when None) while training on everything else."""

    def fit(fold: list[Example]) -> Any:
        return build_classifier().fit([e.text for e in fold], [e.label for e in fold])

    rules = load_rules()
    probabilities = out_of_fold_scores(examples, fit, folds, seed)
    scored = [
        (e.label, max([p, *(r.score for r in rule_hits(rules, e.text))]) >= threshold)
        for e, p in zip(examples, probabilities, strict=True)
        if score_sources is None or e.source in score_sources
    ]
    result = binary_scores([y for y, _ in scored], [f for _, f in scored])
    return {"folds": folds, "rows_scored": result.pop("rows"), **result}
