"""Contradiction checks with a natural-language-inference (NLI) cross-encoder from a folder.

Similarity cannot tell "X increases Y" from "X decreases Y" against a source that says one of
them; an NLI model reads evidence and claim together and says entailment, neutral or
contradiction. None ships in any package here (see BENCHMARKS.md: what MiniLM and word cues
trained on the project's own pairs reach, and why neither is on by default), so the check
runs when `grounding.nli_model` names a local folder in transformers' format holding a
sequence classifier whose labels include entailment and contradiction (an MNLI-trained
cross-encoder, for example). Nothing is downloaded: the folder is read as it is.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bastion.errors import BadRequest

MAX_LENGTH = 256  # word pieces of evidence + claim; the longer of the two is cut


class NliModel:
    """P(contradiction) of a claim given its evidence (the premise)."""

    def __init__(self, folder: Path, *, max_length: int = MAX_LENGTH) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if not (folder / "config.json").is_file():
            raise BadRequest(
                f"{folder} is not a model folder (no config.json): point grounding.nli_model "
                "at a local NLI cross-encoder saved with save_pretrained"
            )
        self.model = AutoModelForSequenceClassification.from_pretrained(
            folder, local_files_only=True
        )
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        labels = {str(n).lower(): int(i) for i, n in self.model.config.id2label.items()}
        self.contradiction = _label(labels, "contradict", folder)
        _label(labels, "entail", folder)  # checked: a sentiment or topic model is refused
        self.max_length = max_length
        self.model.eval()
        self._lock = threading.Lock()

    def contradicted(self, claims: Sequence[str], evidence: Sequence[str]) -> np.ndarray:
        """For each claim, the probability that its evidence contradicts it."""
        import torch

        if not claims:
            return np.zeros(0)
        batch = self.tokenizer(
            list(evidence),
            list(claims),
            truncation="longest_first",
            max_length=self.max_length,
            padding=True,
            return_tensors="pt",
        )
        with self._lock, torch.inference_mode():
            probabilities = torch.softmax(self.model(**batch).logits, dim=-1)
        return np.asarray(probabilities[:, self.contradiction].numpy(), dtype=np.float64)


def _label(labels: dict[str, int], prefix: str, folder: Path) -> int:
    found = [i for name, i in labels.items() if name.startswith(prefix)]
    if len(found) != 1:
        raise BadRequest(
            f"{folder}: the model's labels {sorted(labels)} need exactly one starting with "
            f"'{prefix}' (an NLI model labels entailment, neutral and contradiction)"
        )
    return found[0]


_loaded: dict[Path, NliModel] = {}
_loaded_lock = threading.Lock()


def load_nli(folder: str | Path) -> NliModel:
    """The NLI model in `folder`, loaded once per process."""
    path = Path(folder).expanduser().resolve()
    with _loaded_lock:
        if path not in _loaded:
            _loaded[path] = NliModel(path)
        return _loaded[path]
