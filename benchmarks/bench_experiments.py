"""A/B experiments: the sequential test's error rates by simulation, and what assignment and
feedback recording add to a request.

1. Simulation (`bastion.experiments.stats.simulate`, also `bastion ab simulate`): binary
   metric at a 30% base rate, a look after every 10 observations per arm.
   - A/A: the false-positive rate under continuous peeking (target <= 5%), beside the peer
     practice of reading a fixed-horizon z-test at every look.
   - A/B with a real effect (+6 points): power at a horizon of twice the fixed-horizon
     sample size, against the calculator's promise, and the average samples to a decision
     against the fixed-horizon test's n at the same error rates.
2. Overhead, in-process on the echo model (so the gateway's own cost is what is timed):
   the stages before generation with and without a running experiment on the app (p50 of
   the difference, target <= 1 ms), and one feedback record written to SQLite (p50).

Prints one JSON object. Usage: python benchmarks/bench_experiments.py [--experiments 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bastion.config import BastionConfig, ExperimentConfig
from bastion.experiments.stats import sample_size_proportions, simulate
from bastion.models import ChatMessage, GenerationParams
from bastion.pipeline import ChatRequest
from bastion.platform import Platform


def simulations(experiments: int) -> dict[str, Any]:
    fixed_n = sample_size_proportions(0.3, 0.06)
    return {
        "aa_sequential": simulate(0.0, experiments, 10, max_samples_per_arm=2 * fixed_n),
        "aa_naive_z_test_read_at_every_look": simulate(
            0.0, experiments, 10, max_samples_per_arm=2 * fixed_n, test="naive"
        ),
        "ab_sequential_effect_0.06": simulate(
            0.06, experiments, 10, max_samples_per_arm=2 * fixed_n
        ),
        "fixed_horizon_n_per_arm": fixed_n,
    }


def _timed_prepare(platform: Platform, key: str, rounds: int) -> list[float]:
    request = ChatRequest(
        [ChatMessage("user", "hello")], GenerationParams(max_tokens=8), app="chat"
    )
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        ctx = platform.pipeline.prepare(request, key)
        seconds.append(time.perf_counter() - started)
        platform.pipeline.complete(ctx)
    return seconds


def overhead(rounds: int) -> dict[str, Any]:
    config = BastionConfig.model_validate(
        {
            "models": [{"name": "echo", "backend": "echo"}],
            "guards": {
                "pii": {"enabled": False},
                "injection": {"enabled": False},
                "toxicity": {"enabled": False},
            },
        }
    )
    with tempfile.TemporaryDirectory() as home:
        platform = Platform.open(Path(home), config)
        keys = [
            platform.access.create_key(tenant="acme", user=f"u{i}", role="user").secret
            for i in range(20)
        ]
        _timed_prepare(platform, keys[0], 50)  # warm up
        without = [t for key in keys for t in _timed_prepare(platform, key, rounds // 20)]
        platform.experiments.store.create(
            ExperimentConfig.model_validate(
                {
                    "name": "bench",
                    "tenant": "acme",
                    "app": "chat",
                    "variants": [{"name": "a"}, {"name": "b", "system_prompt": "Be brief."}],
                }
            )
        )
        with_experiment = [t for key in keys for t in _timed_prepare(platform, key, rounds // 20)]
        traces = [r["trace_id"] for r in platform.audit.recent("acme", limit=200)]
        owners = {r["trace_id"]: r["user"] for r in platform.audit.recent("acme", limit=200)}
        feedback = []
        for trace in traces:
            principal = platform.access.principal(f"acme/{owners[trace]}")
            started = time.perf_counter()
            platform.experiments.feedback.record(principal, trace, rating=4)
            feedback.append(time.perf_counter() - started)
        platform.close()
    p50 = statistics.median
    return {
        "requests_each": len(without),
        "stages_before_generation_p50_ms_without_experiment": round(1000 * p50(without), 3),
        "stages_before_generation_p50_ms_with_experiment": round(1000 * p50(with_experiment), 3),
        "assignment_added_p50_ms": round(1000 * (p50(with_experiment) - p50(without)), 3),
        "feedback_record_p50_ms": round(1000 * p50(feedback), 3),
        "feedback_records": len(feedback),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    result = {"simulation": simulations(args.experiments), "overhead": overhead(args.rounds)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
