"""Trained guard models on disk: a joblib file plus a JSON card holding its provenance and
SHA-256, checked on every load so a swapped or truncated file is refused."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from bastion.errors import BackendError


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def card_path(model_path: Path) -> Path:
    return model_path.with_suffix(".card.json")


def save_model(model: Any, path: Path, card: dict[str, Any]) -> dict[str, Any]:
    """Write the model atomically, then its card with the model's hash; return the card."""
    import joblib

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    joblib.dump(model, tmp, compress=3)
    tmp.replace(path)
    card = {**card, "sha256": file_sha256(path)}
    card_path(path).write_text(json.dumps(card, indent=2) + "\n")
    return card


_loaded: dict[tuple[Path, str], Any] = {}
_loaded_lock = threading.Lock()


def load_model(path: Path, train_command: str) -> Any:
    """Load a model written by `save_model`, refusing one that does not match its card.

    Models are read-only once trained, so each file is loaded once per process and shared.
    """
    import joblib

    if not path.exists() or not card_path(path).exists():
        raise BackendError(
            f"model {path} (or its card) is missing; train one with `{train_command}`"
        )
    card = json.loads(card_path(path).read_text())
    digest = file_sha256(path)
    if card.get("sha256") != digest:
        raise BackendError(f"{path} does not match the hash in its card; retrain it")
    key = (path.resolve(), digest)
    with _loaded_lock:
        if key not in _loaded:
            _loaded[key] = joblib.load(path)
        return _loaded[key]
