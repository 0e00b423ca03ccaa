"""Fine-tuning on a real task: DialogSum dialogue summarization with the embedded model
(SmolLM2-135M-Instruct), trained and checked through Bastion's library the way
`bastion tune run` does it; the tuned model's ROUGE-L on held-out dialogues, beside the
base model's and the "first two turns" baseline, and the forgetting guard's verdict.

Data: ../shared/eval/summarization/dialogsum_dev.jsonl. Rows 0..train-1 are the training
pool: written as JSONL rows {"prompt": INSTRUCTION + dialogue, "completion": summary},
read with from_jsonl and built with build_dataset (PII masking, exact and near dedup, a
90/10 train/validation split by prompt hash, no test share), as `bastion tune dataset`
does. Rows train..train+test-1 are the held-out test: the same prompt format, unmasked,
never seen in training.

Training: LoRA (rank 8, alpha 16, dropout 0, q_proj and v_proj), learning rate 1e-3,
batch 4, max_length 384, warmup 0.05, --steps optimizer steps (default 60), validation
loss every 20 steps with patience 2, seed 0; the best weights by validation loss are kept.

Checking: check_candidate, the product's forgetting guard, with the detectors
`bastion tune run` uses (bastion.tuning.job.safety_detectors) and the gateway's toxicity
threshold: base and tuned ROUGE-L on the held-out dialogues (greedy, at most 60 new
tokens), general multiple-choice accuracy of both with a paired bootstrap CI of the drop,
safety-probe rates, the counterfactual bias probes (5 templates per attribute), and the
verdict with its reasons. The "first two turns" baseline is the first two lines of each
held-out dialogue, speaker tags removed, scored with the same rouge_l.

Target: tuned ROUGE-L >= 22 and the candidate accepted by the forgetting guard. Measured
before on comparable held-out dialogues: base 14.1, first two turns 16.2, BART-large 35.5.

Usage: python benchmarks/bench_tuning_dialogsum.py [--train 400] [--test 100] [--steps 60]
       [--threads 1] [--work DIR] [--out FILE]
With --work the scratch folder is kept, and a finished training job found there is reused.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DIALOGS = SHARED / "eval" / "summarization" / "dialogsum_dev.jsonl"
INSTRUCTION = "Summarize the dialogue in one or two sentences.\n\n"
TARGET_ROUGE_L = 22.0
REFERENCE = {"base_embedded": 14.1, "first_two_turns": 16.2, "bart_large": 35.5}
RECIPE: dict[str, Any] = {
    "method": "lora",
    "rank": 8,
    "alpha": 16,
    "dropout": 0.0,
    "target_modules": ("q_proj", "v_proj"),
    "learning_rate": 1e-3,
    "batch_size": 4,
    "max_length": 384,
    "warmup": 0.05,
    "eval_every": 20,
    "patience": 2,
    "seed": 0,
}
SPEAKER = re.compile(r"^\s*#[^#\s]+#\s*:\s*")


def first_two_turns(dialogue: str) -> str:
    """The first two lines of a dialogue, speaker tags ("#Person1#: ") removed."""
    lines = [line for line in dialogue.splitlines() if line.strip()][:2]
    return " ".join(SPEAKER.sub("", line).strip() for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=400, help="training pool: the first rows")
    parser.add_argument("--test", type=int, default=100, help="held-out test: the next rows")
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps (max_steps)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (kept)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import torch

    torch.set_num_threads(args.threads)

    from bastion.config import BastionConfig, ForgettingConfig
    from bastion.models.embedded import model_cache_root, prepare_embedded_model
    from bastion.tuning.dataset import SupervisedExample, build_dataset, from_jsonl
    from bastion.tuning.evaluate import rouge_l
    from bastion.tuning.forgetting import check_candidate
    from bastion.tuning.job import safety_detectors
    from bastion.tuning.train import TrainConfig, train

    started = time.perf_counter()
    phases: dict[str, float] = {}
    rows = [json.loads(line) for line in DIALOGS.open(encoding="utf-8") if line.strip()]
    if args.train + args.test > len(rows):
        parser.error(f"--train + --test exceeds the {len(rows)} rows of {DIALOGS.name}")
    pool, held = rows[: args.train], rows[args.train : args.train + args.test]
    keep = args.work is not None
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-tune-dsum-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        # 1. The dataset, as `bastion tune dataset` builds it.
        t0 = time.perf_counter()
        pool_file = work / "dialogsum_train_pool.jsonl"
        with pool_file.open("w", encoding="utf-8") as f:
            for row in pool:
                prompt = INSTRUCTION + row["dialogue"]
                f.write(json.dumps({"prompt": prompt, "completion": row["summary"]}) + "\n")
        dataset = build_dataset(
            [from_jsonl(pool_file, licence="CC-BY-NC-SA-4.0")], fractions=(0.9, 0.1, 0.0)
        )
        test = [
            SupervisedExample(
                [{"role": "user", "content": INSTRUCTION + row["dialogue"]}],
                row["summary"],
                "dialogsum_dev",
            )
            for row in held
        ]
        phases["dataset_s"] = round(time.perf_counter() - t0, 1)

        # 2. Training.
        t0 = time.perf_counter()
        base_path = prepare_embedded_model(model_cache_root(Path("/nonexistent")))
        config = TrainConfig(**RECIPE, max_steps=args.steps)
        # resume: a finished job kept in --work is reused (same data and config only)
        result = train(base_path, dataset, work / "job", config, resume=True, progress=False)
        phases["train_s"] = round(time.perf_counter() - t0, 1)

        # 3. The forgetting guard, with the product's detectors and threshold.
        t0 = time.perf_counter()
        toxicity, leaks = safety_detectors()
        forgetting = ForgettingConfig(task_examples=args.test, max_new_tokens=60)
        report = check_candidate(
            base_path,
            result.config.method,
            Path(result.output_path),
            test,
            forgetting,
            toxicity=toxicity,
            pii=leaks,
            toxicity_threshold=BastionConfig().guards.toxicity.threshold,
            progress=False,
        )
        phases["forgetting_check_s"] = round(time.perf_counter() - t0, 1)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)

    # 4. The first-two-turns baseline.
    lead = statistics.fmean(
        rouge_l([first_two_turns(r["dialogue"]) for r in held], [r["summary"] for r in held])
    )
    phases["total_s"] = round(time.perf_counter() - started, 1)

    tuned = report.candidate.task_rouge_l or 0.0
    base, cand = report.base, report.candidate

    def safety(scores: Any) -> dict[str, float]:
        return {
            "toxicity": scores.toxicity,
            "pii_leak": scores.pii_leak,
            "injection_compliance": scores.injection_compliance,
        }

    def bias(scores: Any) -> dict[str, Any] | None:
        if scores.bias is None:
            return None
        return {k: scores.bias[k] for k in ("counts", "worst_attribute")}

    examples = [
        {
            "dialogue_head": row["dialogue"][:300],
            "reference": row["summary"],
            "base": base.task_answers[i] if i < len(base.task_answers) else None,
            "tuned": cand.task_answers[i] if i < len(cand.task_answers) else None,
        }
        for i, row in enumerate(held[:5])
    ]
    out = {
        "benchmark": "tuning_dialogsum",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "device": result.device,
            "threads": args.threads,
        },
        "settings": {
            "model": "SmolLM2-135M-Instruct (embedded)",
            "data": f"{DIALOGS.name}: rows 0-{args.train - 1} training pool, "
            f"rows {args.train}-{args.train + args.test - 1} held-out test",
            "instruction": INSTRUCTION.strip(),
            "split_fractions": [0.9, 0.1, 0.0],
            "train_config": config.model_dump(mode="json"),
            "forgetting_config": forgetting.model_dump(mode="json"),
            "toxicity_threshold": BastionConfig().guards.toxicity.threshold,
        },
        "dataset": {
            "counts": {s: c["supervised"] for s, c in dataset.card.counts.items()},
            "pii_masked": dataset.card.pii_masked,
            "duplicates_removed": dataset.card.duplicates_removed,
            "dataset_sha256": dataset.card.dataset_sha256,
        },
        "training": {
            "steps": result.steps,
            "total_steps": result.total_steps,
            "stopped_because": result.stopped_because,
            "best_val_loss": result.best_val_loss,
            "best_step": result.best_step,
            "final_train_loss": result.final_train_loss,
            "history": result.history,
            "seconds": round(result.seconds, 1),
            "step_time_s": round(result.step_time, 2),
            "peak_rss_mb": round(result.peak_rss_mb),
            "trainable_parameters": result.trainable_parameters,
            "train_examples": result.train_examples,
            "validation_examples": result.validation_examples,
            "skipped_too_long": result.skipped_too_long,
        },
        "rouge_l": {
            "base": base.task_rouge_l,
            "tuned": cand.task_rouge_l,
            "first_two_turns": lead,
            "held_out_examples": len(test[: forgetting.task_examples]),
            "measured_before": REFERENCE,
        },
        "general_accuracy": {
            "base": base.general_accuracy,
            "tuned": cand.general_accuracy,
            "drop": base.general_accuracy - cand.general_accuracy,
            "drop_ci95": list(report.general_drop_ci),
        },
        "safety": {"base": safety(base), "tuned": safety(cand)},
        "bias": {
            "base": bias(base),
            "tuned": bias(cand),
            "reasons": [r for r in report.reasons if r.startswith("bias:")],
        },
        "verdict": {"accepted": report.accepted, "reasons": report.reasons},
        "target": {"tuned_rouge_l_at_least": TARGET_ROUGE_L, "accepted": True},
        "target_met": tuned >= TARGET_ROUGE_L and report.accepted,
        "examples": examples,
        "wall_s": phases,
    }
    text = json.dumps(out, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
