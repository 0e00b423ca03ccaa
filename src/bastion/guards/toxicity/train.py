"""Training the toxicity classifier (`bastion guards train toxicity`) from labelled files.

The format of each file is recognised from its columns: Davidson et al. 2017 (`class`,
0 = hate), HatemojiBuild (`label_gold`), de Gibert et al. 2018 Stormfront (`label` hate or
noHate), Jigsaw (`identity_hate`), or `{"text", "label"}` JSON lines.
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import Any

from bastion.errors import BadRequest
from bastion.guards.artefacts import save_model
from bastion.guards.data import SHIPPED_BENIGN, prompt_lines
from bastion.guards.text_classifier import Example, read_labelled, training_card
from bastion.guards.toxicity import functional
from bastion.guards.toxicity.detector import build_classifier


def read_examples(path: Path, split: str | None = None) -> list[Example]:
    """Read one labelled file; `split` keeps only rows of that split where the data has one."""
    if not path.is_file():
        raise BadRequest(f"{path} does not exist")
    if path.suffix == ".jsonl":
        return read_labelled(path)
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
# (the public data is tweets and forum posts), and the generated functional examples what
# separates hate from its contrasts; each counts this many times.
BUSINESS_WEIGHT = 5.0
FUNCTIONAL_WEIGHT = 3.0


def business_examples() -> list[Example]:
    return [Example(text, 0, path.name) for path in SHIPPED_BENIGN for text in prompt_lines(path)]


def shipped_examples() -> list[tuple[Example, float]]:
    """What every model is trained on besides the user's data, with each example's weight."""
    return [(e, BUSINESS_WEIGHT) for e in business_examples()] + [
        (e, FUNCTIONAL_WEIGHT) for e in functional.generate()
    ]


def fit(examples: list[Example], shipped: list[tuple[Example, float]] | None = None) -> Any:
    """Fit the classifier on `examples` plus the shipped examples (generated unless given)."""
    shipped = shipped_examples() if shipped is None else shipped
    rows = examples + [e for e, _ in shipped]
    weights = [1.0] * len(examples) + [w for _, w in shipped]
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
    shipped = shipped_examples()
    model = fit(examples, shipped)
    card = training_card(
        "TF-IDF (char 2-5 + word 1-2 with negation and quote marks, over de-obfuscated "
        "text) -> logistic regression",
        examples + [e for e, _ in shipped],
        ("other", "hateful"),
        time.perf_counter() - started,
        command,
        licences=licences,
    )
    return save_model(model, out_dir / "toxicity.joblib", card)
