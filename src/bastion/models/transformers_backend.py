"""Local inference with Hugging Face transformers: any causal-LM weights folder.

The registry imports this module only when a local model is first used, so commands that
need no model never pay for importing torch.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

from bastion.errors import BackendError, BadRequest
from bastion.models.base import (
    ChatMessage,
    Generation,
    GenerationParams,
    ModelInfo,
    StopScanner,
    StreamDelta,
    only_text,
    truncate_at_stop,
)


class TransformersBackend:
    """Serves a weights folder (optionally with a PEFT adapter) on the CPU or a GPU.

    Loading is lazy and happens once; generation runs in the caller's thread, which the
    pipeline keeps off the server's event loop.
    """

    def __init__(
        self,
        info: ModelInfo,
        path: Path,
        *,
        adapter: Path | None = None,
        threads: int | None = None,
    ) -> None:
        self.info = info
        self.path = path
        self.adapter = adapter
        self.threads = threads
        self._model: Any = None
        self._tokenizer: Any = None
        self._load_lock = threading.Lock()

    def load(self) -> None:
        with self._load_lock:
            if self._model is not None:
                return
            if self.threads:
                torch.set_num_threads(self.threads)
            if not (self.path / "config.json").exists():
                raise BackendError(
                    f"model '{self.info.name}': {self.path} is not a Hugging Face weights folder "
                    "(no config.json); point `path` at a folder saved with save_pretrained()"
                )
            tokenizer = AutoTokenizer.from_pretrained(self.path)
            model: Any = AutoModelForCausalLM.from_pretrained(self.path, dtype=torch.float32)
            if self.adapter is not None:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, self.adapter)
            model.eval()
            if tokenizer.pad_token_id is None:
                tokenizer.pad_token = tokenizer.eos_token
            self._tokenizer, self._model = tokenizer, model

    def recommended_sampling(self) -> dict[str, float | int]:
        """The settings the weights' generation_config.json sets explicitly (transformers
        would fill in its own generic defaults for the others)."""
        path = self.path / "generation_config.json"
        if not path.exists():
            return {}
        config = json.loads(path.read_text())
        names = {
            "temperature": "temperature",
            "top_p": "top_p",
            "max_new_tokens": "max_tokens",
            "repetition_penalty": "repetition_penalty",
        }
        return {ours: config[k] for k, ours in names.items() if config.get(k) is not None}

    def _prepare(
        self, messages: list[ChatMessage], params: GenerationParams
    ) -> tuple[Any, dict[str, Any]]:
        only_text(self.info, params)
        if params.json_format is not None:
            raise BadRequest(
                f"model '{self.info.name}' (transformers backend) cannot hold its answer to "
                "a JSON response_format; serve its GGUF with the llamacpp backend, or use a "
                "model behind an OpenAI-compatible server"
            )
        self.load()
        inputs = self._tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        prompt_tokens = int(inputs["input_ids"].shape[1])
        sampling = params.sampling()
        if prompt_tokens + sampling.max_tokens > self.info.context_length:
            raise BadRequest(
                f"prompt ({prompt_tokens} tokens) plus max_tokens ({sampling.max_tokens}) "
                f"exceeds the context length of '{self.info.name}' ({self.info.context_length}); "
                "shorten the conversation or lower max_tokens"
            )
        kwargs: dict[str, Any] = {
            **inputs,
            "max_new_tokens": sampling.max_tokens,
            "pad_token_id": self._tokenizer.pad_token_id,
            "repetition_penalty": sampling.repetition_penalty,
        }
        if sampling.temperature > 0:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self._tokenizer)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        return inputs, kwargs

    def generate(self, messages: list[ChatMessage], params: GenerationParams) -> Generation:
        inputs, kwargs = self._prepare(messages, params)
        with torch.inference_mode():
            output = self._model.generate(**kwargs)
        new_tokens = output[0, inputs["input_ids"].shape[1] :]
        text = self._tokenizer.decode(new_tokens, skip_special_tokens=True)
        text, stopped = truncate_at_stop(text, params.stop)
        hit_limit = len(new_tokens) >= kwargs["max_new_tokens"] and not stopped
        return Generation(
            text,
            int(inputs["input_ids"].shape[1]),
            len(new_tokens),
            "length" if hit_limit else "stop",
        )

    def stream(
        self, messages: list[ChatMessage], params: GenerationParams
    ) -> Iterator[StreamDelta]:
        inputs, kwargs = self._prepare(messages, params)
        counter = _TokenCountingStreamer(
            self._tokenizer, skip_prompt=True, skip_special_tokens=True
        )
        error: list[BaseException] = []
        # Set when the consumer stops reading (a client that went away, a stop sequence):
        # generation ends at the next token instead of running on to max_tokens.
        cancelled = threading.Event()
        kwargs["stopping_criteria"] = StoppingCriteriaList([_Cancelled(cancelled)])

        def run() -> None:
            try:
                with torch.inference_mode():
                    self._model.generate(**kwargs, streamer=counter)
            except BaseException as exc:  # surfaced to the consumer below
                error.append(exc)
                counter.end()  # type: ignore[no-untyped-call]

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        scanner = StopScanner(params.stop)
        try:
            for piece in counter:
                out = scanner.feed(piece)
                if out:
                    yield StreamDelta(out)
        finally:
            cancelled.set()
            worker.join()
        if error:
            raise BackendError(f"generation failed: {error[0]}") from error[0]
        tail = scanner.flush()
        if tail:
            yield StreamDelta(tail)
        hit_limit = counter.generated >= kwargs["max_new_tokens"] and not scanner.stopped
        yield StreamDelta(
            "",
            "length" if hit_limit else "stop",
            int(inputs["input_ids"].shape[1]),
            counter.generated,
        )


class _Cancelled(StoppingCriteria):
    """Stops generating once `event` is set."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **_: Any) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool)


class _TokenCountingStreamer(TextIteratorStreamer):
    """Streams text and counts the generated tokens."""

    generated = 0

    def put(self, value: Any) -> None:
        if not (self.skip_prompt and self.next_tokens_are_prompt):
            self.generated += int(value.numel())
        super().put(value)  # type: ignore[no-untyped-call]
