"""Training and evaluating the injection classifier (`bastion guards train injection`)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bastion.errors import BadRequest
from bastion.guards.artefacts import save_model
from bastion.guards.data import SHIPPED_BENIGN
from bastion.guards.injection.detector import build_classifier, load_rules, rule_hits


@dataclass(frozen=True)
class Example:
    text: str
    label: int
    source: str


def _lines(path: Path) -> list[str]:
    return [
        line.strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]


def read_labelled(path: Path) -> list[Example]:
    """`{"text", "label"}` JSON lines (label 1 = injection)."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append(Example(str(row["text"]), int(row["label"]), path.name))
        except (json.JSONDecodeError, KeyError, ValueError, TypeError) as exc:
            raise BadRequest(f'{path}:{n}: expected {{"text", "label"}} ({exc})') from None
    return rows


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
        return [Example(text, label, source) for text in _lines(path)]
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
    model = build_classifier()
    started = time.perf_counter()
    model.fit([e.text for e in examples], [e.label for e in examples])
    sources: dict[str, dict[str, int]] = {}
    for e in examples:
        counts = sources.setdefault(e.source, {"injection": 0, "benign": 0})
        counts["injection" if e.label else "benign"] += 1
    card = {
        "model": "TF-IDF (char 1-4 + word 1-2) -> logistic regression; rules.yaml beside it",
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "train_seconds": round(time.perf_counter() - started, 2),
        "examples": len(examples),
        "sources": sources,
        "command": command,
    }
    return save_model(model, out_dir / "injection.joblib", card)


def cross_validate(
    examples: list[Example],
    folds: int = 5,
    seed: int = 0,
    score_sources: set[str] | None = None,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Stratified k-fold F1 and false-positive rate, scoring only rows from `score_sources`
    (all rows when None) while training on everything else in the fold."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    texts = np.array([e.text for e in examples], dtype=object)
    labels = np.array([e.label for e in examples])
    scored = np.array([score_sources is None or e.source in score_sources for e in examples])
    predicted = np.zeros(len(examples), dtype=int)
    rules = load_rules()
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train_idx, test_idx in split.split(texts, labels):
        model = build_classifier().fit(list(texts[train_idx]), labels[train_idx])
        probabilities = model.predict_proba(list(texts[test_idx]))[:, 1]
        for i, p in zip(test_idx, probabilities, strict=True):
            rule = max((r.score for r in rule_hits(rules, texts[i])), default=0.0)
            predicted[i] = int(max(p, rule) >= threshold)
    y, p = labels[scored], predicted[scored]
    tp = int(((p == 1) & (y == 1)).sum())
    fp = int(((p == 1) & (y == 0)).sum())
    fn = int(((p == 0) & (y == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "folds": folds,
        "rows_scored": int(scored.sum()),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "false_positive_rate": round(fp / max(1, int((y == 0).sum())), 4),
    }
