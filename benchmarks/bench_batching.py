"""Concurrent streams on one model: the default backend decoding them together (continuous
batching) against the same backend taking them one at a time (`max_concurrency: 1`, how
llama.cpp served before), in the same run, alternating.

For 1, 2, 4 and 8 streams started at once, each a different request: aggregate completion
tokens/s (all streams' tokens over the wall time until the last ends), and time to first
token p50/p95 over every stream of every round (waiting for a slot included). Memory: the KV
cache is allocated when the model loads, so the process must not grow with the streams: its
resident set after the last round of each number of streams. `--gguf PATH` measures
another GGUF the same way (e.g. an installed Qwen).

Usage: python benchmarks/bench_batching.py [--rounds 3] [--tokens 128] [--threads N]
    [--gguf PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bastion.config import EMBEDDED_MODEL_NAME, BastionConfig
from bastion.models import ChatMessage, GenerationParams, ModelRegistry

# Each request new (its number first), so that no prompt is found whole in the KV cache.
TOPICS = [
    "write about why companies keep an audit trail of their software",
    "write about how a support team should answer an unhappy customer",
    "write about what a sales team does before a product launch",
    "write about why engineers review each other's code",
    "write about how a warehouse keeps track of its stock",
    "write about why a company backs up its data every night",
    "write about what makes a good meeting agenda",
    "write about how to welcome a new colleague on their first day",
]
STREAMS = (1, 2, 4, 8)


def registry(together: bool, threads: int | None, gguf: Path | None, cache: Path) -> Any:
    model = BastionConfig().models[0]
    update: dict[str, Any] = {"threads": threads, "max_concurrency": 8 if together else 1}
    if gguf is not None:
        update["path"] = str(gguf)
    return ModelRegistry([model.model_copy(update=update)], cache)


def one_stream(
    models: ModelRegistry, prompt: str, tokens: int, seed: int, out: list[tuple[float, int]]
) -> None:  # the same seed for a round's requests: their prompts differ
    """A streamed request through the model's admission gate, as the gateway sends it: its
    time to first text (waiting for a slot included), and its completion tokens."""
    asked = GenerationParams(max_tokens=tokens, seed=seed)  # no temperature: the model's
    params = models.sampling_params(EMBEDDED_MODEL_NAME, asked)[0]
    start = time.perf_counter()
    with models.gate(EMBEDDED_MODEL_NAME).slot():
        first = float("nan")
        count = 0
        backend = models.backend(EMBEDDED_MODEL_NAME)
        for delta in backend.stream([ChatMessage("user", prompt)], params):
            if delta.text and first != first:
                first = time.perf_counter() - start
            count = delta.completion_tokens or count
    out.append((first, count))


def burst(models: ModelRegistry, streams: int, tokens: int, r: int) -> dict[str, Any]:
    """`streams` requests at once, each on another topic."""
    results: list[tuple[float, int]] = []
    threads = [
        threading.Thread(
            target=one_stream,
            args=(models, f"Request {r}.{i}: {TOPICS[(r + i) % len(TOPICS)]}.", tokens, r, results),
        )
        for i in range(streams)
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    return {
        "tokens": sum(c for _, c in results),
        "seconds": seconds,
        "ttft_s": [f for f, _ in results],
    }


def resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ttft = sorted(1000 * f for run in runs for f in run["ttft_s"])
    return {
        "aggregate_tokens_per_s_median": round(
            statistics.median(r["tokens"] / r["seconds"] for r in runs), 1
        ),
        "aggregate_tokens_per_s": [round(r["tokens"] / r["seconds"], 1) for r in runs],
        "ttft_ms_p50": round(statistics.median(ttft), 1),
        "ttft_ms_p95": round(ttft[min(len(ttft) - 1, int(0.95 * len(ttft)))], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="default: llama.cpp's")
    parser.add_argument("--gguf", type=Path, default=None, help="default: the embedded model")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        sides = {
            name: registry(together, args.threads, args.gguf, Path(cache))
            for name, together in (("together", True), ("one_at_a_time", False))
        }
        runs: dict[str, dict[int, list[dict[str, Any]]]] = {s: {} for s in sides}
        for models in sides.values():  # load, and a first request off the clock
            burst(models, 1, 8, 0)
        rss: dict[int, float] = {}
        for r in range(args.rounds):
            for streams in STREAMS:
                for name, models in sides.items():
                    runs[name].setdefault(streams, []).append(
                        burst(models, streams, args.tokens, r)
                    )
                rss[streams] = resident_mb()
    table = {name: {n: summary(by[n]) for n in STREAMS} for name, by in runs.items()}
    single = table["together"][1]["aggregate_tokens_per_s_median"]
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()}, {platform.processor() or platform.system()}",
                "model": str(args.gguf or "embedded SmolLM2-135M-Instruct Q4_1"),
                "threads": args.threads,
                "rounds": args.rounds,
                "tokens_per_stream": args.tokens,
                "sides": table,
                "together_8_over_1": round(
                    table["together"][8]["aggregate_tokens_per_s_median"] / single, 2
                ),
                "together_8_over_one_at_a_time_8": round(
                    table["together"][8]["aggregate_tokens_per_s_median"]
                    / table["one_at_a_time"][8]["aggregate_tokens_per_s_median"],
                    2,
                ),
                "resident_mb_after_streams": {n: round(v) for n, v in rss.items()},
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
