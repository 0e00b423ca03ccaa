"""`make bench`: run every benchmark, print each JSON result and keep it in bench-results/."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    "bench_model.py",
    "bench_serving.py",  # about 6 minutes
    "bench_batching.py",  # about 3 minutes
    "bench_gateway.py",
    "bench_pii.py",
    "bench_trust.py",
    "bench_toxicity.py",
    "bench_retrieval.py",
    "bench_groundedness.py",
    "bench_experiments.py",
    "bench_copyright.py",
    "bench_bias_guard.py",
    "bench_apps.py",  # the demo company, then the apps over labelled cases
    "bench_plan.py",  # the sizing planner against llama.cpp on this machine
    "bench_sweep.py",  # candidates through two app suites; writes docs/sweeps
    "bench_tuning_speed.py",  # about 12 minutes
    "bench_tuning_dialogsum.py",  # about 20 minutes
]


def main() -> None:
    out_dir = HERE.parent / "bench-results"
    out_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        result = subprocess.run(
            [sys.executable, str(HERE / name)], capture_output=True, text=True, check=True
        )
        print(result.stdout, flush=True)
        (out_dir / f"{stamp}-{Path(name).stem}.json").write_text(result.stdout)


if __name__ == "__main__":
    main()
