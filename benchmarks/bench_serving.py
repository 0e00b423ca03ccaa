"""Serving speed of the default model, single stream: Bastion's default backend (llama.cpp
on the embedded GGUF, built from the default configuration) against llama-cpp-python called
directly on the same GGUF with the same settings, in the same run, alternating; the
transformers `embedded` backend for reference, and a LoRA adapter on it (how fine-tuned
models are served); time to first token; and the answer to a plain request before and after
per-model sampling defaults.

Tokens/s are completion tokens over the whole call (prompt included), from non-streamed
calls (exact usage on both sides); time to first token from streamed calls. Prints one
JSON object. The prefix cache: time to first token of the segment app's requests (the same
~700-token instructions, a new request each time) with llama.cpp reusing the KV cache of the
shared start, against the same backend evaluating every prompt whole, alternating.

Usage: python benchmarks/bench_serving.py [--rounds 7] [--tokens 128] [--threads 1,2]
    [--only prefix-cache|llamacpp]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from bastion.config import EMBEDDED_MODEL_NAME, BastionConfig
from bastion.models import ChatMessage, GenerationParams, ModelInfo, ModelRegistry
from bastion.models.embedded import embedded_gguf_path, model_cache_root, prepare_embedded_model

# A new request each call, as in serving: each side reuses no more of its previous prompt
# than the chat template's shared start (llama-cpp-python keeps that in its KV cache).
PROMPTS = [
    "Write a short paragraph about why companies keep an audit trail of their software.",
    "Write a short paragraph about how a support team should answer an unhappy customer.",
    "Write a short paragraph about what a sales team does before a product launch.",
    "Write a short paragraph about why engineers review each other's code.",
    "Write a short paragraph about how a warehouse keeps track of its stock.",
    "Write a short paragraph about why a company backs up its data every night.",
    "Write a short paragraph about what makes a good meeting agenda.",
    "Write a short paragraph about how to welcome a new colleague on their first day.",
]
HELLO = "Say hello to the sales team."
SEED = 1234


def first_text(pieces: Iterator[str]) -> float:
    """Seconds until a stream's first non-empty text; the rest is read to the end."""
    start = time.perf_counter()
    ttft = float("nan")
    for piece in pieces:
        if piece and ttft != ttft:  # still NaN: this is the first text
            ttft = time.perf_counter() - start
    return ttft


class Bastion:
    """The default model as the registry builds it from the default configuration."""

    def __init__(self, threads: int, cache: Path) -> None:
        default = BastionConfig().models[0]
        self.registry = ModelRegistry([default.model_copy(update={"threads": threads})], cache)
        self.backend = self.registry.backend(EMBEDDED_MODEL_NAME)

    def params(self, tokens: int) -> GenerationParams:
        asked = GenerationParams(max_tokens=tokens, seed=SEED)  # no temperature: the model's
        return self.registry.sampling_params(EMBEDDED_MODEL_NAME, asked)[0]

    def generate(self, prompt: str, tokens: int) -> tuple[int, str]:
        answer = self.backend.generate([ChatMessage("user", prompt)], self.params(tokens))
        return answer.completion_tokens, answer.text

    def stream(self, prompt: str, tokens: int) -> Iterator[str]:
        deltas = self.backend.stream([ChatMessage("user", prompt)], self.params(tokens))
        return (d.text for d in deltas)


class Direct:
    """llama-cpp-python's own chat completion on the same GGUF and settings."""

    def __init__(self, threads: int, sampling: GenerationParams) -> None:
        from llama_cpp import Llama

        self.llm = Llama(
            model_path=str(embedded_gguf_path()),
            n_ctx=8192,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
        self.sampling = sampling

    def _call(self, prompt: str, tokens: int, stream: bool) -> Any:
        s = self.sampling
        return self.llm.create_chat_completion(
            messages=[{"role": "user", "content": prompt}],
            temperature=s.temperature,
            top_p=s.top_p,
            repeat_penalty=s.repetition_penalty,
            max_tokens=tokens,
            seed=SEED,
            stream=stream,
        )

    def generate(self, prompt: str, tokens: int) -> tuple[int, str]:
        out = self._call(prompt, tokens, stream=False)
        return out["usage"]["completion_tokens"], out["choices"][0]["message"]["content"]

    def stream(self, prompt: str, tokens: int) -> Iterator[str]:
        chunks = self._call(prompt, tokens, stream=True)
        return (c["choices"][0]["delta"].get("content") or "" for c in chunks)


def measure(side: Bastion | Direct | Transformers, r: int, tokens: int) -> dict[str, float]:
    """Round r: tokens/s of one whole answer, then time to first token of another."""
    start = time.perf_counter()
    count, _ = side.generate(PROMPTS[2 * r % len(PROMPTS)], tokens)
    seconds = time.perf_counter() - start
    ttft = first_text(side.stream(PROMPTS[(2 * r + 1) % len(PROMPTS)], tokens))
    return {"tokens": count, "seconds": seconds, "tokens_per_s": count / seconds, "ttft_s": ttft}


def summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    return {
        "tokens_per_s_median": statistics.median(r["tokens_per_s"] for r in runs),
        "ttft_ms_median": 1000 * statistics.median(r["ttft_s"] for r in runs),
        "completion_tokens": [r["tokens"] for r in runs],
        "tokens_per_s": [round(r["tokens_per_s"], 1) for r in runs],
    }


def compare(bastion: Bastion, direct: Direct, rounds: int, tokens: int) -> dict[str, Any]:
    sides: list[tuple[str, Bastion | Direct]] = [("bastion", bastion), ("direct", direct)]
    for _, side in sides:  # warm-up: load, first allocations
        side.generate("Hello", 4)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in sides}
    for r in range(rounds):
        for name, side in sides if r % 2 == 0 else reversed(sides):
            runs[name].append(measure(side, r, tokens))
    result = {name: summary(rs) for name, rs in runs.items()}
    ratio = result["bastion"]["tokens_per_s_median"] / result["direct"]["tokens_per_s_median"]
    return {"bastion": result["bastion"], "llama_cpp_direct": result["direct"], "ratio": ratio}


class Transformers:
    """The `embedded` backend (transformers on the GGUF's converted weights), same settings;
    with `adapter`, a tuned model as it is served (PEFT adapter on those weights)."""

    def __init__(
        self, threads: int, cache: Path, sampling: GenerationParams, adapter: Path | None = None
    ) -> None:
        from bastion.models.transformers_backend import TransformersBackend

        path = prepare_embedded_model(cache)
        info = ModelInfo("m", "local" if adapter else "embedded", None, 8192)
        self.backend = TransformersBackend(info, path, adapter=adapter, threads=threads)
        self.sampling = sampling

    def params(self, tokens: int) -> GenerationParams:
        return replace(self.sampling, max_tokens=tokens)

    def generate(self, prompt: str, tokens: int) -> tuple[int, str]:
        answer = self.backend.generate([ChatMessage("user", prompt)], self.params(tokens))
        return answer.completion_tokens, answer.text

    def stream(self, prompt: str, tokens: int) -> Iterator[str]:
        deltas = self.backend.stream([ChatMessage("user", prompt)], self.params(tokens))
        return (d.text for d in deltas)


def lora_adapter(cache: Path, folder: Path) -> Path:
    """A LoRA adapter shaped as `bastion tune run` makes by default (r=8 on q_proj and
    v_proj); its B matrices start at zero, which does not change its cost."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(prepare_embedded_model(cache))
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"])
    get_peft_model(model, config).save_pretrained(folder)
    return folder


def sales_hello(cache: Path, samples: int) -> dict[str, list[str]]:
    """'Say hello to the sales team.' with no temperature given. Before: the transformers
    path at the OpenAI default the server used to apply (temperature 1, top_p 1, 256
    tokens). After: the default model with its sampling settings filled in."""
    from bastion.models.transformers_backend import TransformersBackend

    messages = [ChatMessage("user", HELLO)]
    old = TransformersBackend(ModelInfo("m", "embedded", None, 8192), prepare_embedded_model(cache))
    before = [
        old.generate(
            messages, GenerationParams(temperature=1.0, top_p=1.0, max_tokens=256, seed=s)
        ).text
        for s in range(samples)
    ]
    registry = ModelRegistry(BastionConfig().models, cache)
    backend = registry.backend(EMBEDDED_MODEL_NAME)
    after = []
    for s in range(samples):
        params, _ = registry.sampling_params(EMBEDDED_MODEL_NAME, GenerationParams(seed=s))
        after.append(backend.generate(messages, params).text)
    return {"before": before, "after": after}


def prefix_cache(threads: int, requests: int) -> dict[str, Any]:
    from bastion.apps.segment import EVAL_REQUESTS, INSTRUCTIONS
    from bastion.models.llamacpp_backend import LlamaCppBackend

    info = ModelInfo(EMBEDDED_MODEL_NAME, "llamacpp", None, 4096)
    sides = {
        on: LlamaCppBackend(info, embedded_gguf_path(), threads=threads, prefix_cache=on)
        for on in (True, False)
    }
    system = ChatMessage("system", INSTRUCTIONS.format(today="2026-01-05"))
    asks = [json.loads(line)["input"]["query"] for line in EVAL_REQUESTS.read_text().splitlines()]
    params = GenerationParams(temperature=0, max_tokens=8)
    ttft: dict[bool, list[float]] = {True: [], False: []}
    for side in sides.values():  # load, and put the instructions in the cache once
        list(side.stream([system, ChatMessage("user", "warm up")], params))
    for n in range(requests):
        for on, side in sides.items():
            messages = [system, ChatMessage("user", asks[n % len(asks)])]
            ttft[on].append(first_text(d.text for d in side.stream(messages, params)))
    prompt = sides[True].generate([system, ChatMessage("user", asks[0])], params).prompt_tokens

    def stats(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {
            "ttft_p50_ms": round(statistics.median(ordered) * 1000, 1),
            "ttft_p95_ms": round(
                ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000, 1
            ),
        }

    on, off = stats(ttft[True]), stats(ttft[False])
    return {
        "prompt_tokens": prompt,
        "requests": requests,
        "threads": threads,
        "prefix_cache": on,
        "whole_prompt": off,
        "speedup_p50": round(off["ttft_p50_ms"] / on["ttft_p50_ms"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", default="1,2", help="llama.cpp and torch threads to try")
    parser.add_argument("--samples", type=int, default=3, help="answers before/after")
    parser.add_argument(
        "--only", choices=["prefix-cache", "llamacpp"], help="llamacpp: against the direct call"
    )
    args = parser.parse_args()
    if args.only == "prefix-cache":
        print(json.dumps({"benchmark": "prefix_cache", **prefix_cache(2, 20)}, indent=2))
        return
    from bastion.config import bastion_home

    cache = model_cache_root(bastion_home())
    result: dict[str, Any] = {
        "benchmark": "serving",
        "machine": f"{platform.machine()}, {platform.node()}, python {platform.python_version()}",
        "tokens": args.tokens,
        "rounds": args.rounds,
    }
    with tempfile.TemporaryDirectory() as tmp:
        adapter = lora_adapter(cache, Path(tmp) / "adapter")
        for threads in (int(t) for t in args.threads.split(",")):
            bastion = Bastion(threads, cache)
            sampling = bastion.params(args.tokens)
            llama = compare(bastion, Direct(threads, sampling), args.rounds, args.tokens)
            result[f"threads_{threads}"] = llama
            if args.only == "llamacpp":
                continue
            references = {
                "transformers_embedded": Transformers(threads, cache, sampling),
                "transformers_lora_adapter": Transformers(threads, cache, sampling, adapter),
            }
            for name, reference in references.items():
                reference.generate("Hello", 4)
                rounds = range(max(3, args.rounds // 2))
                llama[name] = summary([measure(reference, r, args.tokens) for r in rounds])
    if args.only == "llamacpp":
        print(json.dumps(result, indent=2))
        return
    result["say_hello_to_the_sales_team"] = sales_hello(cache, args.samples)
    result["prefix_cache"] = prefix_cache(2, 20)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
