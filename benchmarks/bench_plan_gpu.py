"""The sizing planner's predictions for a GPU against a model served there (vLLM, or any
OpenAI-compatible server), for the session that is lent a GPU machine.

The planner predicts decode and prefill speed for the model's weights (a Hugging Face folder
or GGUF, read for its shape) on the named hardware of its table (data-sheet peaks times the
table's serving efficiencies). The server is then asked, one request at a time, to answer a
--prompt-tokens prompt with --answer-tokens tokens, streamed: prefill speed is the prompt's
tokens over the time to the first token, decode speed the tokens after the first over the
time from the first to the last (the server's own usage counts, median of --runs). The
ratio measured / predicted says where the table is off.

Usage, on the GPU machine (vLLM serving the weights):
    vllm serve /models/Qwen2.5-1.5B-Instruct --served-model-name qwen &
    python benchmarks/bench_plan_gpu.py --server http://127.0.0.1:8000/v1 --model qwen \\
        --weights /models/Qwen2.5-1.5B-Instruct --hardware nvidia-h100-sxm-80gb
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from bastion.capacity.architecture import read_architecture
from bastion.capacity.hardware import hardware_table, select
from bastion.capacity.planner import Traffic, plan


def timed_answer(client: httpx.Client, model: str, prompt: str, answer_tokens: int) -> dict:
    """One streamed answer: seconds to the first token and from first to last, and the
    server's token counts."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": answer_tokens,
        "temperature": 0,
        "ignore_eos": True,  # vLLM's: the answer runs to max_tokens (others ignore it)
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first = last = 0.0
    usage: dict[str, Any] = {}
    with client.stream("POST", "/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line.removeprefix("data: "))
            if any(c.get("delta", {}).get("content") for c in chunk.get("choices", [])):
                last = time.perf_counter()
                first = first or last
            usage = chunk.get("usage") or usage
    if not first or not usage:
        raise SystemExit("the server streamed no text or no usage: is stream_options supported?")
    return {
        "ttft_s": first - started,
        "decode_s": last - first,
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", required=True, help="the OpenAI-compatible base URL (/v1)")
    parser.add_argument("--model", required=True, help="the name the server serves it under")
    parser.add_argument("--weights", type=Path, required=True, help="its weights, for the shape")
    parser.add_argument("--hardware", required=True, help="a name from the planner's table")
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--answer-tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--api-key", default="none")
    args = parser.parse_args()
    arch = read_architecture(args.weights)
    (hardware,) = select([args.hardware], hardware_table())
    prompt = "Count the orders, cases and contacts listed by region. " * (args.prompt_tokens // 11)
    headers = {"Authorization": f"Bearer {args.api_key}"}
    with httpx.Client(base_url=args.server, headers=headers, timeout=600) as client:
        timed_answer(client, args.model, "Hello", 4)  # warm up: load, compile, allocate
        runs = [
            timed_answer(client, args.model, prompt, args.answer_tokens) for _ in range(args.runs)
        ]
    if any(r["decode_s"] == 0 for r in runs):
        raise SystemExit(
            "an answer came in one piece (a gateway holding it back?): point --server at the "
            "model server itself"
        )
    prompt_tokens = runs[0]["prompt_tokens"]
    answer_tokens = runs[0]["completion_tokens"]
    predicted = plan(
        arch, hardware, Traffic(prompt_tokens, answer_tokens, qps=0.1, p95_ms=600_000),
        args.precision,
    )  # fmt: skip
    measured = {
        "prefill_tokens_per_s": round(
            statistics.median(r["prompt_tokens"] / r["ttft_s"] for r in runs), 1
        ),
        "decode_tokens_per_s": round(
            statistics.median((r["completion_tokens"] - 1) / r["decode_s"] for r in runs), 1
        ),
    }
    print(
        json.dumps(
            {
                "benchmark": "plan-gpu",
                "model": args.model,
                "hardware": hardware.to_dict(),
                "prompt_tokens": prompt_tokens,
                "answer_tokens": answer_tokens,
                "predicted": {
                    "decode_tokens_per_s": predicted.decode_tokens_per_s,
                    "prefill_tokens_per_s": predicted.prefill_tokens_per_s,
                    "weights_gb": predicted.weights_gb,
                },
                "measured": measured,
                "measured_over_predicted": {
                    "decode": round(
                        measured["decode_tokens_per_s"] / predicted.decode_tokens_per_s, 3
                    ),
                    "prefill": round(
                        measured["prefill_tokens_per_s"] / predicted.prefill_tokens_per_s, 3
                    ),
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
