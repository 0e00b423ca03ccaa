"""The sizing planner's predictions for this machine against llama.cpp measured on it.

For each GGUF (the embedded SmolLM2-135M, and the installed Qwen2.5-Coder models): the
planner's decode and prefill speed and memory for `--hardware this-machine` two ways: from
the raw probe (memory read and float32 matrix product: the peer, the planner's figures
before the engine probe) and from the engine probe (llama.cpp timed on 6- and 12-block
slices of the model, extrapolated to all its blocks; its wall time is reported). Then the
model measured whole in a fresh process with the settings the llamacpp backend uses (all
cores, --context): prefill speed over a --prompt-tokens prompt, decode speed over
--answer-tokens greedy tokens (median of 3 runs; end to end, and llama.cpp's own evaluation
time from its perf counters, without the sampling done in Python), and the resident memory
it grew by. The ratio measured / predicted says where the model is off.

llama.cpp reserves the KV cache for its whole context at load, so memory is predicted as
the weights, the cache of n_ctx tokens (not of one request, as the planner's per-sequence
figure is) and what the engine holds beside them (the planner's buffer estimate for the
raw probe; measured on the slices for the engine probe).

Usage: python benchmarks/bench_plan.py [--models smollm2-135m-instruct,qwen2.5-coder-0.5b]
    [--prompt-tokens 512] [--answer-tokens 128] [--context 4096]
"""

from __future__ import annotations

import argparse
import json
import os
import platform as machine
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bastion.capacity.architecture import read_architecture
from bastion.capacity.hardware import probe_this_machine
from bastion.capacity.planner import Traffic, plan
from bastion.models.embedded import embedded_gguf_path
from bastion.models.install import CATALOGUE
from bastion.observability import resident_memory_bytes

INSTALLED = Path(__file__).resolve().parents[1] / ".cache" / "models-install"
RUNS = 3


def gguf_of(name: str) -> Path:
    if name == "smollm2-135m-instruct":
        return embedded_gguf_path()
    for model in CATALOGUE:
        if model.name == name:
            return INSTALLED / model.file_name
    raise SystemExit(f"unknown model {name}")


def measure(path: Path, prompt_tokens: int, answer_tokens: int, context: int) -> dict[str, Any]:
    """In this (fresh) process: load, read a prompt, decode greedily. Speeds end to end (as
    the backend sees them, sampling in Python included) and llama.cpp's own evaluation
    times (its perf counters: the engine alone, which the planner models); resident memory
    before loading and after generating."""
    import llama_cpp

    before = resident_memory_bytes()
    threads = len(os.sched_getaffinity(0))
    started = time.perf_counter()
    llm = llama_cpp.Llama(
        model_path=str(path), n_ctx=context, n_threads=threads, n_threads_batch=threads,
        verbose=False,
    )  # fmt: skip
    load_s = time.perf_counter() - started
    words = "the quarterly report lists orders, cases and contacts by region " * 200
    prompt = llm.tokenize(words.encode())[:prompt_tokens]
    prefill, decode, engine_prefill, engine_decode = [], [], [], []
    for _ in range(RUNS):
        llm.reset()  # type: ignore[no-untyped-call]
        llama_cpp.llama_perf_context_reset(llm.ctx)
        started = time.perf_counter()
        llm.eval(prompt)
        prefill.append(len(prompt) / (time.perf_counter() - started))
        started = time.perf_counter()
        for _ in range(answer_tokens):
            token = llm.sample(temp=0.0)
            llm.eval([token])
        decode.append(answer_tokens / (time.perf_counter() - started))
        perf = llama_cpp.llama_perf_context(llm.ctx)
        engine_prefill.append(perf.n_p_eval / (perf.t_p_eval_ms / 1000))
        engine_decode.append(perf.n_eval / (perf.t_eval_ms / 1000))
    return {
        "threads": threads,
        "load_s": round(load_s, 2),
        "prefill_tokens_per_s": round(statistics.median(prefill), 1),
        "decode_tokens_per_s": round(statistics.median(decode), 1),
        "engine_prefill_tokens_per_s": round(statistics.median(engine_prefill), 1),
        "engine_decode_tokens_per_s": round(statistics.median(engine_decode), 1),
        "memory_gb_grown": round((resident_memory_bytes() - before) / 1e9, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="smollm2-135m-instruct,qwen2.5-coder-0.5b")
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--answer-tokens", type=int, default=128)
    parser.add_argument("--context", type=int, default=4096)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.measure:
        print(
            json.dumps(measure(args.measure, args.prompt_tokens, args.answer_tokens, args.context))
        )
        return
    raw = probe_this_machine()
    traffic = Traffic(args.prompt_tokens, args.answer_tokens, qps=0.1, p95_ms=600_000)
    result: dict[str, Any] = {
        "benchmark": "plan",
        "machine": f"{machine.machine()}, {machine.python_version()}",
        "raw_probe": raw.to_dict(),
        "models": {},
    }
    for name in args.models.split(","):
        path = gguf_of(name)
        arch = read_architecture(path)
        started = time.perf_counter()
        engine = probe_this_machine(model=path)
        probe_s = time.perf_counter() - started
        child = subprocess.run(
            [sys.executable, __file__, "--measure", str(path), "--context", str(args.context),
             "--prompt-tokens", str(args.prompt_tokens),
             "--answer-tokens", str(args.answer_tokens)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        measured = json.loads(child.stdout.strip().splitlines()[-1])
        row: dict[str, Any] = {
            "parameters": arch.parameters,
            "stored_as": arch.stored_as,
            "engine_probe_s": round(probe_s, 1),
            "measured": measured,
        }
        for label, here in (("raw_probe", raw), ("engine_probe", engine)):
            predicted = plan(arch, here, traffic, "stored")
            memory = (
                arch.stored_bytes
                + arch.kv_bytes_per_token() * args.context
                + predicted.engine_memory_gb * 1e9
            ) / 1e9
            row[label] = {
                "predicted": {
                    "decode_tokens_per_s": predicted.decode_tokens_per_s,
                    "prefill_tokens_per_s": predicted.prefill_tokens_per_s,
                    "memory_gb": round(memory, 3),
                },
                "measured_over_predicted": {
                    "decode": round(
                        measured["decode_tokens_per_s"] / predicted.decode_tokens_per_s, 3
                    ),
                    "engine_decode": round(
                        measured["engine_decode_tokens_per_s"] / predicted.decode_tokens_per_s,
                        3,
                    ),
                    "prefill": round(
                        measured["prefill_tokens_per_s"] / predicted.prefill_tokens_per_s, 3
                    ),
                    "memory": round(measured["memory_gb_grown"] / memory, 3),
                },
            }
        result["models"][name] = row
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
