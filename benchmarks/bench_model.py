"""Embedded model: cold (first-run) load, cached load, single-stream tokens/s of the
transformers path, and of the llamacpp backend on the same GGUF.

Each load is timed in a fresh process so imports and caches do not flatter it.
Prints one JSON object.  Usage: python benchmarks/bench_model.py [--runs 3] [--tokens 128]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPT = "Write a short paragraph about why companies keep an audit trail of their software."

LOAD_SNIPPET = """
import json, sys, time
t0 = time.perf_counter()
from pathlib import Path
from bastion.models.embedded import prepare_embedded_model
from bastion.models.transformers_backend import TransformersBackend
from bastion.models import ModelInfo
t1 = time.perf_counter()
path = prepare_embedded_model(Path(sys.argv[1]))
t2 = time.perf_counter()
TransformersBackend(ModelInfo("m", "embedded", None, 8192), path).load()
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "convert_s": t2 - t1, "load_s": t3 - t2}))
"""


def timed_load(cache: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", LOAD_SNIPPET, str(cache)], capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def transformers_speed(threads: int, tokens: int, runs: int) -> dict[str, float]:
    from bastion.config import bastion_home
    from bastion.models import ChatMessage, GenerationParams, ModelInfo
    from bastion.models.embedded import model_cache_root, prepare_embedded_model
    from bastion.models.transformers_backend import TransformersBackend

    path = prepare_embedded_model(model_cache_root(bastion_home()))
    backend = TransformersBackend(ModelInfo("m", "embedded", None, 8192), path, threads=threads)
    messages = [ChatMessage("user", PROMPT)]
    params = GenerationParams(temperature=0, max_tokens=tokens)
    backend.generate(messages, GenerationParams(temperature=0, max_tokens=4))  # warm-up
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        result = backend.generate(messages, params)
        rates.append(result.completion_tokens / (time.perf_counter() - start))
    return {"tokens_per_s_median": statistics.median(rates), "runs": rates}


def llamacpp_speed(threads: int, tokens: int, runs: int) -> dict[str, float]:
    from bastion.models import ChatMessage, GenerationParams, ModelInfo
    from bastion.models.embedded import embedded_gguf_path
    from bastion.models.llamacpp_backend import LlamaCppBackend

    start = time.perf_counter()
    backend = LlamaCppBackend(
        ModelInfo("m", "llamacpp", None, 8192), embedded_gguf_path(), threads=threads
    )
    backend.load()
    load_s = time.perf_counter() - start
    messages = [ChatMessage("user", PROMPT)]
    params = GenerationParams(temperature=0, max_tokens=tokens)
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        result = backend.generate(messages, params)
        rates.append(result.completion_tokens / (time.perf_counter() - start))
    return {"load_s": load_s, "tokens_per_s_median": statistics.median(rates), "runs": rates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cold = timed_load(Path(tmp))
        cached = [timed_load(Path(tmp)) for _ in range(args.runs)]
    result = {
        "benchmark": "embedded_model",
        "machine": f"{platform.machine()}, {platform.node()}, python {platform.python_version()}",
        "cold": cold,
        "cached_load_s_median": statistics.median(c["load_s"] for c in cached),
        "cached_import_s_median": statistics.median(c["import_s"] for c in cached),
        "transformers": {
            f"threads_{t}": transformers_speed(t, args.tokens, args.runs) for t in (1, 2)
        },
        "llamacpp": {f"threads_{t}": llamacpp_speed(t, args.tokens, args.runs) for t in (1, 2)},
        "tokens": args.tokens,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
