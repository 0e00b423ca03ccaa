"""A model's shape, read from its files: a GGUF's metadata and tensors, or a Hugging Face
folder's config.json and safetensors headers. The planner needs the layers, the key/value
heads and their width (the KV cache), the parameter count (compute) and the bytes of the
weights as stored (memory, and what each decoded token reads)."""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bastion.errors import BadRequest

# Bytes per parameter of the precisions a server may load weights in. int4 carries its
# group scales (about 0.5 bits a weight at a group of 32-64), as GPTQ/AWQ and Q4_K store.
BYTES_PER_PARAMETER = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5625,
}
_SAFETENSORS_BYTES = {"F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1, "U8": 1}


@dataclass(frozen=True)
class Architecture:
    name: str
    family: str  # llama, qwen2, ...
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    context_length: int
    vocab: int  # tokens: the output layer's width, and the engine's logits buffer
    parameters: int
    stored_bytes: int  # the weights as the file holds them
    stored_as: str  # e.g. "GGUF Q4_1", "safetensors bf16"

    def kv_bytes_per_token(self, bytes_per_value: float = 2.0) -> float:
        """Keys and values of one token in every layer (fp16 cache by default)."""
        return 2 * self.layers * self.kv_heads * self.head_dim * bytes_per_value

    def weight_bytes(self, precision: str) -> float:
        """The weights in `precision`, or as stored ("stored")."""
        if precision == "stored":
            return float(self.stored_bytes)
        if precision not in BYTES_PER_PARAMETER:
            known = ", ".join(["stored", *BYTES_PER_PARAMETER])
            raise BadRequest(f"unknown precision '{precision}'; use one of {known}")
        return self.parameters * BYTES_PER_PARAMETER[precision]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_architecture(path: Path) -> Architecture:
    """The shape of the model at `path`: a .gguf file or a folder with config.json."""
    if path.is_file() and path.suffix == ".gguf":
        return _from_gguf(path)
    if path.is_dir() and (path / "config.json").is_file():
        return _from_hf_folder(path)
    raise BadRequest(
        f"{path}: not a .gguf file or a folder with config.json; point the model's `path` at "
        "its weights (an API-served model has no architecture to plan: price it per token)"
    )


def _from_gguf(path: Path) -> Architecture:
    from gguf import GGUFReader, LlamaFileType  # parses the whole vocabulary: seconds

    try:
        reader = GGUFReader(path)
    except (ValueError, OSError) as exc:
        raise BadRequest(f"{path} is not a readable GGUF file ({exc})") from None

    def field(key: str, default: Any = None) -> Any:
        found = reader.fields.get(key)
        if found is None or not found.data:
            if default is None:
                raise BadRequest(f"{path}: the GGUF metadata has no '{key}'")
            return default
        value = found.parts[found.data[0]]
        return bytes(value).decode() if found.types[0].name == "STRING" else value.tolist()[0]

    family = field("general.architecture")
    heads = int(field(f"{family}.attention.head_count"))
    hidden = int(field(f"{family}.embedding_length"))
    file_type = LlamaFileType(int(field("general.file_type", 0))).name.removeprefix("MOSTLY_")
    return Architecture(
        name=str(field("general.name", path.stem)),
        family=family,
        layers=int(field(f"{family}.block_count")),
        hidden=hidden,
        heads=heads,
        kv_heads=int(field(f"{family}.attention.head_count_kv", heads)),
        head_dim=int(field(f"{family}.attention.key_length", hidden // heads)),
        context_length=int(field(f"{family}.context_length")),
        vocab=_gguf_vocab(reader, family),
        parameters=sum(int(t.n_elements) for t in reader.tensors),
        stored_bytes=sum(int(t.n_bytes) for t in reader.tensors),
        stored_as=f"GGUF {file_type}",
    )


def _gguf_vocab(reader: Any, family: str) -> int:
    """The vocabulary's size: stated, else the tokenizer's token list's length."""
    stated = reader.fields.get(f"{family}.vocab_size")
    if stated is not None and stated.data:
        return int(stated.contents())
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    return len(tokens.data) if tokens is not None else 0


def _from_hf_folder(folder: Path) -> Architecture:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BadRequest(f"{folder}/config.json is not readable JSON ({exc})") from None
    config = config.get("text_config", config)  # multimodal configs nest the language model
    try:
        heads = int(config["num_attention_heads"])
        hidden = int(config["hidden_size"])
        layers = int(config["num_hidden_layers"])
    except KeyError as exc:
        raise BadRequest(f"{folder}/config.json has no {exc}: not a decoder we can plan") from None
    parameters, stored, dtypes = 0, 0, set()
    for shard in sorted(folder.glob("*.safetensors")):
        for tensor in _safetensors_header(shard).values():
            count = 1
            for size in tensor["shape"]:
                count *= size
            parameters += count
            stored += count * _SAFETENSORS_BYTES.get(tensor["dtype"], 2)
            dtypes.add(tensor["dtype"].lower())
    if not parameters:
        raise BadRequest(f"{folder} has config.json but no .safetensors weights to count")
    return Architecture(
        name=str(config.get("_name_or_path") or folder.name),
        family=str(config.get("model_type", "unknown")),
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=int(config.get("num_key_value_heads") or heads),
        head_dim=int(config.get("head_dim") or hidden // heads),
        context_length=int(config.get("max_position_embeddings", 0)),
        vocab=int(config.get("vocab_size", 0)),
        parameters=parameters,
        stored_bytes=stored,
        stored_as="safetensors " + "/".join(sorted(dtypes)),
    )


def _safetensors_header(path: Path) -> dict[str, Any]:
    """The tensors' names, dtypes and shapes: the file's JSON header, without the weights."""
    with path.open("rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header: dict[str, Any] = json.loads(f.read(size))
    header.pop("__metadata__", None)
    return header
