"""Models: the registry, their prices, and the backends that run them."""

from bastion.models.base import (
    ChatMessage,
    Generation,
    GenerationParams,
    JsonFormat,
    ModelBackend,
    ModelInfo,
    Price,
    Sampling,
    StreamDelta,
    TokenLogprob,
)
from bastion.models.registry import ModelRegistry

__all__ = [
    "ChatMessage",
    "Generation",
    "GenerationParams",
    "JsonFormat",
    "ModelBackend",
    "ModelInfo",
    "ModelRegistry",
    "Price",
    "Sampling",
    "StreamDelta",
    "TokenLogprob",
]
