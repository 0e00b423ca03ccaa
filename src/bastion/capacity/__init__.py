"""Capacity: what serving a model takes (`bastion plan`).

architecture.py  the model's shape, read from its GGUF or Hugging Face files
hardware.py      the GPU table (hardware.yaml) and a probe of this machine
traffic.py       prompt and answer lengths and the request rate, from the audit trail
planner.py       memory, speed, replicas and monthly cost for a traffic target
"""

from __future__ import annotations

from pathlib import Path

from bastion.config import ModelConfig
from bastion.errors import BadRequest


def weights_path(model: ModelConfig) -> Path:
    """Where a registered model's weights are: its `path`, or the embedded GGUF."""
    if model.path:
        return Path(model.path).expanduser()
    if model.backend in ("llamacpp", "embedded"):
        from bastion.models.embedded import embedded_gguf_path

        return embedded_gguf_path()
    raise BadRequest(
        f"model '{model.name}' ({model.backend}) has no local weights to read its shape from; "
        "give --weights PATH (a .gguf file or a Hugging Face folder)"
    )
