"""Fine-tuning speed: seconds per optimizer step and peak memory of Bastion's training job
(bastion.tuning.train.train) for LoRA, IA3 and a full fine-tune of the embedded model
(SmolLM2-135M-Instruct, fp32) on this CPU; beside each, in the same run, a plain PEFT
training loop with the same settings, as a user would write it (full logits, the Hugging
Face loss). Target: Bastion's step time <= 1.1x the plain loop's.

Both runners see the same examples (the first DialogSum dev dialogues whose prompt, summary
and EOS fit in max_length tokens, so neither cuts anything; checked by comparing the data
hash), in the same batches and order (Bastion's seeded epoch permutation), right-padded,
with AdamW, a linear decay from the same learning rate, grad-norm clipping at 1.0, no
dropout, no warmup, no evaluation and no checkpoints. A step is the collate, forward,
backward, clip and optimizer step of one batch; the first step of each run is left out
(allocator and kernel warm-up). Bastion's step times are the gaps between its per-step
callbacks; the plain loop's are taken with perf_counter around each step.

Every (method, runner) run is its own subprocess, so peak RSS (ru_maxrss) is per run:
`peak_rss_mb` is taken after the last step (training alone, both runners);
`bastion_job_peak_rss_mb` is the job's own figure at its end, saving the output included.
Runs alternate between the runners (their order flips every repeat) so machine noise falls
on both alike; step times are pooled over the repeats.

Usage: python benchmarks/bench_tuning_speed.py [--steps 12] [--repeats 2] [--threads 1]
       [--methods lora,ia3,full] [--out FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DIALOGS = SHARED / "eval" / "summarization" / "dialogsum_dev.jsonl"
INSTRUCTION = "Summarize the dialogue in one or two sentences.\n\n"
N_EXAMPLES = 64
MAX_LENGTH = 256
BATCH = 4
SEED = 0
TARGET_RATIO = 1.1
METHODS: dict[str, dict[str, Any]] = {
    "lora": {"target_modules": ("q_proj", "v_proj"), "rank": 8, "learning_rate": 1e-3},
    "ia3": {"target_modules": ("k_proj", "v_proj", "down_proj"), "learning_rate": 1e-3},
    "full": {"learning_rate": 5e-5},
}
RUNNERS = ("bastion", "plain")


def model_path() -> Path:
    from bastion.models.embedded import model_cache_root, prepare_embedded_model

    return prepare_embedded_model(model_cache_root(Path("/nonexistent")))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --- data -------------------------------------------------------------------------------


def plain_encode(tokenizer: Any, prompt: list[dict[str, str]], completion: str) -> list[list[int]]:
    """Token ids and labels: the chat-templated prompt (labels -100), then answer and EOS."""
    ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
    if hasattr(ids, "keys"):
        ids = ids["input_ids"]
    prompt_ids = [int(i) for i in ids]
    answer = [int(i) for i in tokenizer(completion, add_special_tokens=False)["input_ids"]]
    answer.append(int(tokenizer.eos_token_id))
    return [prompt_ids + answer, [-100] * len(prompt_ids) + answer]


def select_examples(path: Path) -> list[dict[str, Any]]:
    """The first N_EXAMPLES dialogues (file order) that fit in MAX_LENGTH whole."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    chosen: list[dict[str, Any]] = []
    with DIALOGS.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            prompt = [{"role": "user", "content": INSTRUCTION + row["dialogue"]}]
            ids, _ = plain_encode(tokenizer, prompt, row["summary"])
            if len(ids) <= MAX_LENGTH:
                chosen.append({"prompt": prompt, "completion": row["summary"], "id": row["fname"]})
            if len(chosen) == N_EXAMPLES:
                break
    if len(chosen) < N_EXAMPLES:
        raise SystemExit(f"only {len(chosen)} dialogues fit in {MAX_LENGTH} tokens")
    return chosen


def data_hash(rows: list[list[list[int]]]) -> str:
    """Bastion's job.json data_sha256 (train rows, then an empty validation split)."""
    digest = hashlib.sha256()
    for ids, labels in rows:
        digest.update(json.dumps([ids, labels]).encode())
    digest.update(b"|")
    digest.update(b"|")
    return digest.hexdigest()


# --- one run (in a child process) -------------------------------------------------------


def timing(timed: list[float]) -> dict[str, Any]:
    """Step times with the first step already left out."""
    return {
        "step_times": [round(t, 4) for t in timed],
        "median_s": statistics.median(timed),
        "mean_s": statistics.fmean(timed),
    }


def run_bastion(method: str, steps: int, examples: list[dict[str, Any]]) -> dict[str, Any]:
    from bastion.tuning.dataset import SupervisedExample
    from bastion.tuning.train import StepMetrics, TrainConfig, train

    config = TrainConfig(
        method=method,  # type: ignore[arg-type]
        **METHODS[method],
        dropout=0.0,
        max_steps=steps,
        batch_size=BATCH,
        grad_accum=1,
        max_length=MAX_LENGTH,
        warmup=0.0,
        eval_every=0,
        checkpoint_every=0,
        seed=SEED,
        device="cpu",
    )
    train_set = [
        SupervisedExample(prompt=e["prompt"], completion=e["completion"], source="dialogsum_dev")
        for e in examples
    ]
    marks: list[float] = []
    losses: list[float] = []
    rss: list[float] = []

    def on_step(m: StepMetrics) -> bool:
        marks.append(time.perf_counter())
        losses.append(m.train_loss)
        if m.step == m.total_steps:
            rss.append(peak_rss_mb())
        return False

    job_dir = Path(tempfile.mkdtemp(prefix=f"job-{method}-", dir=os.environ["BENCH_WORK"]))
    try:
        result = train(
            model_path(), (train_set, []), job_dir / "job", config, on_step=on_step, progress=False
        )
        job = json.loads((job_dir / "job" / "job.json").read_text("utf-8"))
    finally:
        shutil.rmtree(job_dir, ignore_errors=True)
    gaps = [b - a for a, b in itertools.pairwise(marks)]
    return {
        **timing(gaps),  # the first step has no callback before it: it is left out
        "job_step_time_s": result.step_time,
        "peak_rss_mb": rss[0],
        "bastion_job_peak_rss_mb": result.peak_rss_mb,
        "trainable_params": result.trainable_parameters,
        "losses": [round(x, 4) for x in losses],
        "data_sha256": job["data_sha256"],
        "steps": result.steps,
    }


def run_plain(method: str, steps: int, examples: list[dict[str, Any]]) -> dict[str, Any]:
    import torch
    from peft import IA3Config, LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_linear_schedule_with_warmup

    from bastion.tuning.train import _epoch_batches  # the same seeded batch order

    torch.manual_seed(SEED)
    path = model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.config.use_cache = False
    settings = METHODS[method]
    if method == "lora":
        peft_config: Any = LoraConfig(
            r=settings["rank"],
            lora_alpha=2 * settings["rank"],
            lora_dropout=0.0,
            target_modules=list(settings["target_modules"]),
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, peft_config)
    elif method == "ia3":
        peft_config = IA3Config(
            target_modules=list(settings["target_modules"]),
            feedforward_modules=["down_proj"],
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, peft_config)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings["learning_rate"], weight_decay=0.0)
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, steps)
    rows = [plain_encode(tokenizer, e["prompt"], e["completion"]) for e in examples]
    pad = int(tokenizer.pad_token_id)

    def collate(batch: list[list[list[int]]]) -> tuple[torch.Tensor, ...]:
        n = max(len(ids) for ids, _ in batch)
        ids = torch.tensor([r[0] + [pad] * (n - len(r[0])) for r in batch])
        mask = torch.tensor([[1] * len(r[0]) + [0] * (n - len(r[0])) for r in batch])
        labels = torch.tensor([r[1] + [-100] * (n - len(r[1])) for r in batch])
        return ids, mask, labels

    batches: list[list[int]] = []
    epoch = 0
    while len(batches) < steps:
        batches += _epoch_batches(len(rows), BATCH, SEED, epoch)
        epoch += 1
    model.train()
    step_times: list[float] = []
    losses: list[float] = []
    for batch in batches[:steps]:
        t0 = time.perf_counter()
        ids, mask, labels = collate([rows[i] for i in batch])
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step_times.append(time.perf_counter() - t0)
        losses.append(float(loss.detach()))
    return {
        **timing(step_times[1:]),
        "peak_rss_mb": peak_rss_mb(),
        "trainable_params": sum(p.numel() for p in params),
        "losses": [round(x, 4) for x in losses],
        "data_sha256": data_hash(rows),
        "steps": len(step_times),
    }


def child(spec: str, steps: int, threads: int, data: Path, out: Path) -> None:
    import torch

    torch.set_num_threads(threads)
    method, runner = spec.split(":")
    examples = json.loads(data.read_text("utf-8"))
    run = run_bastion if runner == "bastion" else run_plain
    result = run(method, steps, examples)
    out.write_text(json.dumps(result), encoding="utf-8")


# --- the parent -------------------------------------------------------------------------


def spawn(spec: str, args: argparse.Namespace, data: Path, work: Path) -> dict[str, Any]:
    out = work / f"{spec.replace(':', '-')}-{time.monotonic_ns()}.json"
    threads = str(args.threads)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "TOKENIZERS_PARALLELISM": "false",
        "BENCH_WORK": str(work),
    }
    command = [sys.executable, __file__, "--_child", spec, "--_data", str(data), "--_out", str(out)]
    command += ["--steps", str(args.steps), "--threads", threads]
    started = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{spec} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(out.read_text("utf-8"))
    result["wall_s"] = round(time.perf_counter() - started, 1)
    print(
        f"{spec}: median {result['median_s']:.3f} s/step, peak {result['peak_rss_mb']:.0f} MB",
        file=sys.stderr,
    )
    return result


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    per: dict[str, Any] = {}
    for runner in RUNNERS:
        timed = [t for r in runs[runner] for t in r["step_times"]]
        per[runner] = {
            "median_s_per_step": round(statistics.median(timed), 4),
            "mean_s_per_step": round(statistics.fmean(timed), 4),
            "run_medians_s": [round(r["median_s"], 4) for r in runs[runner]],
            "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs[runner]), 1),
            "trainable_params": runs[runner][0]["trainable_params"],
            "losses": runs[runner][0]["losses"],
            "run_wall_s": [r["wall_s"] for r in runs[runner]],
        }
    bastion, plain = per["bastion"], per["plain"]
    bastion["job_step_time_s"] = [round(r["job_step_time_s"], 4) for r in runs["bastion"]]
    bastion["bastion_job_peak_rss_mb"] = round(
        max(r["bastion_job_peak_rss_mb"] for r in runs["bastion"]), 1
    )
    ratio = bastion["median_s_per_step"] / plain["median_s_per_step"]
    hashes = {r["data_sha256"] for rs in runs.values() for r in rs}
    return {
        **per,
        "ratio_median": round(ratio, 3),
        "ratio_mean": round(bastion["mean_s_per_step"] / plain["mean_s_per_step"], 3),
        "rss_ratio": round(bastion["peak_rss_mb"] / plain["peak_rss_mb"], 3),
        "same_data": len(hashes) == 1,
        "loss_max_abs_diff": round(
            max(abs(a - b) for a, b in zip(bastion["losses"], plain["losses"], strict=True)), 4
        ),
        "meets_target": ratio <= TARGET_RATIO,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per (method, runner)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    parser.add_argument("--_data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--_out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        child(args._child, args.steps, args.threads, args._data, args._out)
        return
    if args.steps < 2:
        parser.error("--steps must be at least 2 (the first step is not timed)")
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {list(METHODS)}")

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-tuning-speed-"))
    try:
        data = work / "examples.json"
        data.write_text(json.dumps(select_examples(model_path())), encoding="utf-8")
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {
            m: {r: [] for r in RUNNERS} for m in methods
        }
        for repeat in range(args.repeats):
            order = RUNNERS if repeat % 2 == 0 else RUNNERS[::-1]
            for method in methods:
                for runner in order:
                    runs[method][runner].append(spawn(f"{method}:{runner}", args, data, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    results = {m: summarise(runs[m]) for m in methods}
    report = {
        "benchmark": "tuning_speed",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        },
        "settings": {
            "model": "SmolLM2-135M-Instruct (embedded), fp32, CPU",
            "data": f"first {N_EXAMPLES} DialogSum dev dialogues fitting in {MAX_LENGTH} tokens",
            "steps": args.steps,
            "repeats": args.repeats,
            "threads": args.threads,
            "batch_size": BATCH,
            "grad_accum": 1,
            "max_length": MAX_LENGTH,
            "methods": {
                m: {k: list(v) if isinstance(v, tuple) else v for k, v in METHODS[m].items()}
                for m in methods
            },
            "dropout": 0.0,
            "warmup": 0.0,
            "max_grad_norm": 1.0,
            "target_ratio": TARGET_RATIO,
        },
        "results": results,
        "all_meet_target": all(r["meets_target"] for r in results.values()),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
