"""Counterfactual bias probes against one registered model, greedy decoding, as
`bastion eval bias` runs them; also times the model's load apart from the probes.

Writes bias-<model>.json and bias-<model>.png into --out, prints the text report and the
gate's verdict (the limits of `bias_gate` in the config).

Usage: python benchmarks/bench_bias.py --out DIR [--config FILE] [--model NAME]
       [--suite FILE] [--limit N] [--samples N] [--max-tokens N] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bastion.config import bastion_home, load_config
from bastion.evaluation.bias import bias_gate, load_suite, probe_model
from bastion.models import ChatMessage, GenerationParams, ModelRegistry
from bastion.models.embedded import model_cache_root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="Folder for the report.")
    parser.add_argument("--config", type=Path, default=None, help="A bastion.yaml.")
    parser.add_argument("--model", default=None, help="Default: the config's default model.")
    parser.add_argument("--suite", type=Path, default=None, help="Default: the shipped suite.")
    parser.add_argument("--limit", type=int, default=None, help="Templates per attribute.")
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    config = load_config(args.config)
    name = args.model or config.resolved_default_model
    started = time.perf_counter()  # load the weights outside the timed probes
    registry = ModelRegistry(config.models, model_cache_root(bastion_home()))
    registry.backend(name).generate([ChatMessage("user", "Hello")], GenerationParams(max_tokens=1))
    load_s = time.perf_counter() - started
    report = probe_model(
        registry,
        name,
        load_suite(args.suite),
        args.limit,
        args.samples,
        args.seed,
        args.max_tokens,
    )
    json_path, _ = report.save(args.out)
    print(report.render_text())
    reasons = bias_gate(report, config.bias_gate)
    print("gate: " + ("pass" if not reasons else "fail\n  " + "\n  ".join(reasons)))
    print(json.dumps({"report": str(json_path), "load_s": round(load_s, 2)}))


if __name__ == "__main__":
    main()
