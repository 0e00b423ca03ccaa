"""Training the toxicity classifier (`bastion guards train toxicity`) from labelled files.

The format of each file is recognised from its columns: Davidson et al. 2017 (`class`,
0 = hate), HatemojiBuild (`label_gold`), de Gibert et al. 2018 Stormfront (`label` hate or
noHate), Jigsaw (`identity_hate`), or `{"text", "label"}` JSON lines.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bastion.errors import BadRequest
from bastion.guards.artefacts import save_model
from bastion.guards.data import SHIPPED_BENIGN
from bastion.guards.toxicity.detector import build_classifier


@dataclass(frozen=True)
class Example:
    text: str
    label: int  # 1: hateful or toxic
    source: str
    note: str = ""  # e.g. "offensive" for Davidson's profane but not hateful tweets


def read_examples(path: Path, split: str | None = None) -> list[Example]:
    """Read one labelled file; `split` keeps only rows of that split where the data has one."""
    if not path.is_file():
        raise BadRequest(f"{path} does not exist")
    if path.suffix == ".jsonl":
        rows = [
            json.loads(line)
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        return [Example(str(r["text"]), int(r["label"]), path.name) for r in rows]
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise BadRequest(f"{path} holds no rows")
    columns = set(rows[0])
    name = f"{path.parent.name}/{path.name}"
    if {"class", "tweet"} <= columns:
        return [
            Example(
                r["tweet"], int(r["class"] == "0"), name, "offensive" if r["class"] == "1" else ""
            )
            for r in rows
        ]
    if "label_gold" in columns:
        return [Example(r["text"], int(r["label_gold"]), name) for r in rows]
    if {"label", "sampled_split"} <= columns:
        return [
            Example(r["text"], int(r["label"] == "hate"), name)
            for r in rows
            if r["label"] in ("hate", "noHate") and (split is None or r["sampled_split"] == split)
        ]
    if "identity_hate" in columns:
        return [Example(r["comment_text"], int(r["identity_hate"] == "1"), name) for r in rows]
    raise BadRequest(
        f"{path}: unknown columns {sorted(columns)}; expected Davidson, HatemojiBuild, "
        'Stormfront, Jigsaw CSV or {"text", "label"} JSON lines'
    )


# The shipped business prompts teach the model what ordinary workplace text looks like
# (the public data is tweets and forum posts); each counts this many times.
BUSINESS_WEIGHT = 5.0


def business_examples() -> list[Example]:
    return [
        Example(line.strip(), 0, path.name)
        for path in SHIPPED_BENIGN
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]


def fit(examples: list[Example]) -> Any:
    """Fit the classifier on `examples` plus the shipped business prompts."""
    rows = examples + business_examples()
    weights = [BUSINESS_WEIGHT if i >= len(examples) else 1.0 for i in range(len(rows))]
    return build_classifier().fit(
        [e.text for e in rows], [e.label for e in rows], logisticregression__sample_weight=weights
    )


def train(
    examples: list[Example], out_dir: Path, command: str, licences: list[str]
) -> dict[str, Any]:
    hateful = sum(e.label for e in examples)
    if min(hateful, len(examples) - hateful) < 10:
        raise BadRequest("training needs at least 10 hateful and 10 other examples")
    started = time.perf_counter()
    model = fit(examples)
    examples = examples + business_examples()
    sources: dict[str, dict[str, int]] = {}
    for e in examples:
        counts = sources.setdefault(e.source, {"hateful": 0, "other": 0})
        counts["hateful" if e.label else "other"] += 1
    card = {
        "model": "TF-IDF (char 2-5 + word 1-2 over de-obfuscated text) -> logistic regression",
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "train_seconds": round(time.perf_counter() - started, 1),
        "examples": len(examples),
        "sources": sources,
        "licences": licences,
        "command": command,
    }
    return save_model(model, out_dir / "toxicity.joblib", card)


def cross_validated_scores(examples: list[Example], folds: int = 5, seed: int = 0) -> list[float]:
    """Out-of-fold probabilities for every example (stratified k-fold)."""
    from sklearn.model_selection import StratifiedKFold

    texts = [e.text for e in examples]
    labels = [e.label for e in examples]
    scores = [0.0] * len(examples)
    for train_idx, test_idx in StratifiedKFold(folds, shuffle=True, random_state=seed).split(
        texts, labels
    ):
        model = fit([examples[i] for i in train_idx])
        for i, p in zip(
            test_idx, model.predict_proba([texts[i] for i in test_idx])[:, 1], strict=True
        ):
            scores[i] = float(p)
    return scores
