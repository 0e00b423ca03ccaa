"""Supervised fine-tuning jobs: LoRA, IA3, prompt tuning or a full fine-tune of a local
causal-LM weights folder, in a plain torch loop (no HF Trainer).

A job lives in one folder: `job.json` (config, base model, data hash), `checkpoints/`
(the last and the best, each written to a temporary folder and renamed into place, with
`index.json` replaced atomically to point at them), and at the end the trained output
(`adapter/`, a PEFT adapter folder, or `model/`, a full weights folder) and `result.json`.
A killed job started again with `resume=True` continues from its last checkpoint with the
same data order, optimizer, schedule and random states, so it ends where an uninterrupted
run would have.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from safetensors.torch import load_file, save_file

from bastion.errors import BadRequest, Conflict
from bastion.tuning.dataset import Dataset, Example, PreferenceExample, SupervisedExample

Method = Literal["lora", "ia3", "prompt", "full"]
StopReason = Literal["completed", "early_stopping", "callback"]
JOB_FORMAT = "bastion-training-job/1"
MIN_TRAIN_EXAMPLES = 4
TRAINING_CARD = "bastion-training.json"
_SLICED_LOSS = True  # compute logits only where a label is; False: the full forward
_FEEDFORWARD = ("down_proj", "fc2", "dense_4h_to_h", "c_proj", "w2")


class TrainConfig(BaseModel):
    """What a training job does; every field has a default that works for the embedded model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Method = "lora"
    objective: Literal["sft", "dpo"] = Field(
        "sft", description="sft: supervised answers; dpo: preference pairs (chosen > rejected)"
    )
    beta: float = Field(0.1, gt=0, description="DPO: how far the policy may move from the base")
    rank: int = Field(8, ge=1, description="LoRA rank")
    alpha: int | None = Field(None, gt=0, description="LoRA alpha; None is 2 x rank")
    dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout")
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    virtual_tokens: int = Field(20, ge=1, description="prompt tuning: virtual tokens")
    learning_rate: float = Field(5e-4, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(0, ge=0, description="optimizer steps; 0 derives them from epochs")
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(512, ge=8, description="tokens; the prompt is cut, never the answer")
    warmup: float = Field(0.05, ge=0, lt=1, description="share of the steps warming up")
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    eval_every: int = Field(0, ge=0, description="steps between validation losses; 0 = none")
    checkpoint_every: int = Field(0, ge=0, description="steps between checkpoints; 0 = none")
    patience: int = Field(0, ge=0, description="evaluations without improvement; 0 = off")
    min_delta: float = Field(0.0, ge=0)
    seed: int = 0
    bf16: bool = Field(True, description="bf16 autocast, used only on a CUDA device")
    gradient_checkpointing: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.patience and not self.eval_every:
            raise ValueError("early stopping (patience) needs eval_every > 0")
        if self.method in ("lora", "ia3") and not self.target_modules:
            raise ValueError(f"{self.method} needs at least one target module")
        return self

    @classmethod
    def parse(cls, data: dict[str, Any]) -> TrainConfig:
        """A config from user input; what is wrong with it is a BadRequest."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}"
                for e in exc.errors()
            )
            raise BadRequest(f"invalid training config: {problems}") from exc


@dataclass(frozen=True)
class StepMetrics:
    """What the per-step callback receives (val_loss only on steps that evaluated)."""

    step: int
    total_steps: int
    epoch: int
    train_loss: float
    learning_rate: float
    val_loss: float | None
    best_val_loss: float | None
    seconds: float


StepCallback = Callable[[StepMetrics], bool | None]


@dataclass
class TrainResult:
    """How a job ended. `output_path` is the adapter folder (adapters) or the full weights
    folder, holding the best weights when validation ran; `step_time` is the mean seconds
    per optimizer step (first step excluded); `stopped_because` is "completed" (all steps
    or epochs done), "early_stopping" (patience ran out) or "callback" (on_step said stop)."""

    best_val_loss: float | None
    best_step: int | None
    steps: int
    total_steps: int
    stopped_because: StopReason
    seconds: float
    step_time: float
    peak_rss_mb: float
    output_path: str
    base_model: str
    config: TrainConfig
    final_train_loss: float | None
    trainable_parameters: int
    train_examples: int
    validation_examples: int
    skipped_too_long: int
    resumed_from_step: int | None = None
    device: str = "cpu"
    bf16: bool = False
    history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["config"] = self.config.model_dump(mode="json")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainResult:
        return cls(**{**data, "config": TrainConfig.model_validate(data["config"])})


# --- tokenisation -----------------------------------------------------------------------


@dataclass(frozen=True)
class Encoded:
    """One example as token ids, with -100 labels on the prompt."""

    input_ids: list[int]
    labels: list[int]


def chat_prompt_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return [int(i) for i in ids]


def encode_example(tokenizer: Any, example: SupervisedExample, max_length: int) -> Encoded | None:
    """The prompt rendered with the chat template (generation prompt added), then the
    completion and EOS, which alone carry labels. When too long, the longest prompt message
    loses tokens from its middle: its head (where an instruction usually stands) and its
    tail (where a question usually ends) stay. The answer is never cut; None when even the
    cut prompt cannot fit."""
    target = tokenizer(example.completion, add_special_tokens=False)["input_ids"]
    target = [int(i) for i in target] + [int(tokenizer.eos_token_id)]
    budget = max_length - len(target)
    messages = [dict(m) for m in example.prompt]
    prompt = chat_prompt_ids(tokenizer, messages)
    if len(prompt) > budget:
        if budget <= 0:
            return None
        longest = max(range(len(messages)), key=lambda i: len(messages[i]["content"]))
        content = tokenizer(messages[longest]["content"], add_special_tokens=False)["input_ids"]
        for margin in (2, 8, 32):  # re-tokenising the cut text may drift by a few tokens
            keep = len(content) - (len(prompt) - budget) - margin
            if keep <= 0:
                return None
            head = keep // 4
            messages[longest]["content"] = (
                tokenizer.decode(content[:head])
                + " ... "
                + tokenizer.decode(content[-(keep - head) :])
            )
            prompt = chat_prompt_ids(tokenizer, messages)
            if len(prompt) <= budget:
                break
        else:
            return None
    return Encoded(prompt + target, [-100] * len(prompt) + target)


def _collate(
    rows: Sequence[Encoded], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids, attention mask and labels (-100 on padding; the pad id is often the
    EOS id, so labels are never derived from the ids)."""
    n = max(len(r.input_ids) for r in rows)
    ids = torch.full((len(rows), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), n), dtype=torch.long)
    labels = torch.full((len(rows), n), -100, dtype=torch.long)
    for i, r in enumerate(rows):
        k = len(r.input_ids)
        ids[i, :k] = torch.tensor(r.input_ids)
        labels[i, :k] = torch.tensor(r.labels)
        mask[i, :k] = 1
    return ids.to(device), mask.to(device), labels.to(device)


def _epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches of one epoch: a permutation fixed by the seed and the epoch number."""
    order = list(range(n))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


# --- model ------------------------------------------------------------------------------


def _load(model_path: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (model_path / "config.json").is_file():
        raise BadRequest(
            f"{model_path} is not a Hugging Face weights folder (no config.json); "
            "fine-tuning needs a local causal-LM folder saved with save_pretrained()"
        )
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.eos_token_id is None or not getattr(tokenizer, "chat_template", None):
        raise BadRequest(
            f"the model at {model_path} has no chat template or EOS token; supervised "
            "fine-tuning on chat examples needs an instruction-tuned model"
        )
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    return tokenizer, model


def _linear_names(model: Any) -> list[str]:
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D"
    ]


def _wrap(model: Any, config: TrainConfig, model_path: Path) -> Any:
    """The model with the method's trainable parts; the rest frozen (except a full tune)."""
    if config.method == "full":
        model.requires_grad_(True)
        return model
    from peft import IA3Config, LoraConfig, PromptTuningConfig, PromptTuningInit, get_peft_model

    peft_config: Any
    if config.method in ("lora", "ia3"):
        linear = _linear_names(model)
        missing = [
            t
            for t in config.target_modules
            if not any(n == t or n.endswith("." + t) for n in linear)
        ]
        if missing:
            leaves = sorted({n.rsplit(".", 1)[-1] for n in linear})
            raise BadRequest(
                f"the model has no linear module named {', '.join(missing)}; "
                f"target one of: {', '.join(leaves)}"
            )
        targets = list(config.target_modules)
        if config.method == "lora":
            peft_config = LoraConfig(
                r=config.rank,
                lora_alpha=config.alpha or 2 * config.rank,
                lora_dropout=config.dropout,
                target_modules=targets,
                task_type="CAUSAL_LM",
            )
        else:
            peft_config = IA3Config(
                target_modules=targets,
                feedforward_modules=[t for t in targets if t.rsplit(".", 1)[-1] in _FEEDFORWARD],
                task_type="CAUSAL_LM",
            )
    else:
        peft_config = PromptTuningConfig(
            task_type="CAUSAL_LM",
            num_virtual_tokens=config.virtual_tokens,
            prompt_tuning_init=PromptTuningInit.TEXT,
            prompt_tuning_init_text="Answer the user's request as the examples do.",
            tokenizer_name_or_path=str(model_path),
        )
    try:
        wrapped = get_peft_model(model, peft_config)
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise BadRequest(f"{config.method} cannot be applied to this model: {exc}") from exc
    wrapped.peft_config["default"].base_model_name_or_path = str(model_path)
    return wrapped


def _trainable(model: Any) -> dict[str, torch.Tensor]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


# --- job folder -------------------------------------------------------------------------


def _write_json(path: Path, data: Any) -> None:
    """Replace `path` atomically (temporary file, fsync, rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class _Progress:
    """The loop's position and history: what a checkpoint stores besides tensors."""

    step: int = 0
    epoch: int = 0
    position: int = 0  # next batch within the epoch
    best_val_loss: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    last_eval_step: int = 0
    last_loss: float | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)


class _Checkpoints:
    """checkpoints/step-N folders and index.json naming the last and the best."""

    def __init__(self, job_dir: Path) -> None:
        self.root = job_dir / "checkpoints"
        self.index_path = self.root / "index.json"

    def index(self) -> dict[str, Any]:
        if not self.index_path.is_file():
            return {}
        data: dict[str, Any] = json.loads(self.index_path.read_text("utf-8"))
        return data

    def write(
        self,
        model: Any,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        progress: _Progress,
        *,
        best: bool,
    ) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        index = self.index()
        name = f"step-{progress.step:08d}"
        staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
        try:
            weights = {n: p.detach().cpu().contiguous() for n, p in _trainable(model).items()}
            save_file(weights, str(staging / "weights.safetensors"))
            torch.save(
                {
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": _rng_state(),
                },
                staging / "trainer.pt",
            )
            _write_json(staging / "state.json", asdict(progress))
            final = self.root / name
            if final.exists():  # written before a crash that came ahead of the index update
                shutil.rmtree(final)
            os.rename(staging, final)
            index = {**index, "last": name}
            if best:
                index["best"] = name
            _write_json(self.index_path, index)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            kept = index.get("last")
            raise BadRequest(
                f"could not write the checkpoint at step {progress.step} in {self.root} "
                f"({exc.strerror or exc}); "
                + (
                    f"the previous checkpoint ({kept}) is intact: free space and resume the job"
                    if kept
                    else "no earlier checkpoint exists: free space and start the job again"
                )
            ) from exc
        keep = {index.get("last"), index.get("best")}
        for child in self.root.iterdir():
            if child.is_dir() and child.name not in keep:
                shutil.rmtree(child, ignore_errors=True)
        return self.root / name

    def load_weights(self, model: Any, name: str) -> None:
        weights = load_file(str(self.root / name / "weights.safetensors"))
        params = _trainable(model)
        unknown = sorted(set(weights) - set(params))
        if unknown:
            raise BadRequest(f"checkpoint {name} does not fit this model ({unknown[:3]} ...)")
        with torch.no_grad():
            for n, tensor in weights.items():
                params[n].copy_(tensor.to(params[n].device))


def _data_hash(train_set: Sequence[Row], validation: Sequence[Row]) -> str:
    digest = hashlib.sha256()
    for split in (train_set, validation):
        for row in split:
            for enc in (row.chosen, row.rejected) if isinstance(row, Pair) else (row,):
                digest.update(json.dumps([enc.input_ids, enc.labels]).encode())
        digest.update(b"|")
    return digest.hexdigest()


# --- the loop ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    """A preference pair as token ids, with the base model's log-likelihood of each answer
    (DPO's reference, computed once before training)."""

    chosen: Encoded
    rejected: Encoded
    ref_chosen: float = 0.0
    ref_rejected: float = 0.0


Row = Encoded | Pair


def _examples(
    examples: Sequence[Example], objective: str
) -> list[SupervisedExample] | list[PreferenceExample]:
    if objective == "dpo":
        return [ex for ex in examples if isinstance(ex, PreferenceExample)]
    return [ex for ex in examples if isinstance(ex, SupervisedExample)]


def _encode(tokenizer: Any, ex: Example, max_length: int) -> Row | None:
    if isinstance(ex, SupervisedExample):
        return encode_example(tokenizer, ex, max_length)
    chosen, rejected = (
        encode_example(tokenizer, SupervisedExample(ex.prompt, answer, ex.source), max_length)
        for answer in (ex.chosen, ex.rejected)
    )
    return None if chosen is None or rejected is None else Pair(chosen, rejected)


def answer_logps(
    model: Any, rows: Sequence[Encoded], pad_id: int, device: torch.device, amp: bool = False
) -> torch.Tensor:
    """Each row's summed log-likelihood of its labelled (answer) tokens: DPO's policy and
    reference terms, and a choice's score in the general multiple-choice set. Only the
    labelled positions go through the softmax."""
    ids, mask, labels = _collate(rows, pad_id, device)
    target = labels[:, 1:]
    wanted = target != -100
    with torch.autocast(ids.device.type, dtype=torch.bfloat16, enabled=amp):
        logits = model(input_ids=ids, attention_mask=mask).logits
    logits = logits[:, -ids.shape[1] :][:, :-1]  # prompt tuning prepends virtual tokens
    logp = torch.log_softmax(logits[wanted].float(), dim=-1)
    picked = logp.gather(1, target[wanted][:, None])[:, 0]
    return torch.zeros(len(rows), device=device).index_add(0, wanted.nonzero()[:, 0], picked)


class _Objective:
    """What one batch costs: the supervised loss per answer token, or DPO's loss per pair."""

    def __init__(
        self, config: TrainConfig, pad_id: int, device: torch.device, amp: bool, sliced: bool
    ) -> None:
        self.config, self.pad_id, self.device = config, pad_id, device
        self.amp, self.sliced = amp, sliced

    def loss(self, model: Any, rows: Sequence[Row]) -> tuple[torch.Tensor, int]:
        """The summed loss of `rows` and what it is a sum over (tokens or pairs)."""
        if self.config.objective == "sft":
            ids, mask, labels = _collate(rows, self.pad_id, self.device)  # type: ignore[arg-type]
            return _loss_sum(model, ids, mask, labels, self.sliced, self.amp)
        pairs: Sequence[Pair] = rows  # type: ignore[assignment]
        logps = self._logps(model, [p.chosen for p in pairs] + [p.rejected for p in pairs])
        ref = torch.tensor(
            [p.ref_chosen for p in pairs] + [p.ref_rejected for p in pairs], device=self.device
        )
        n = len(pairs)
        margin = (logps[:n] - ref[:n]) - (logps[n:] - ref[n:])
        return -torch.nn.functional.logsigmoid(self.config.beta * margin).sum(), n

    def _logps(self, model: Any, rows: Sequence[Encoded]) -> torch.Tensor:
        return answer_logps(model, rows, self.pad_id, self.device, self.amp)

    @torch.no_grad()
    def with_reference(self, model: Any, rows: list[Row]) -> list[Row]:
        """DPO pairs with the base model's log-likelihoods filled in (others unchanged)."""
        if self.config.objective == "sft":
            return rows
        model.eval()
        out: list[Row] = []
        for i in range(0, len(rows), self.config.batch_size):
            pairs: list[Pair] = rows[i : i + self.config.batch_size]  # type: ignore[assignment]
            logps = self._logps(model, [p.chosen for p in pairs] + [p.rejected for p in pairs])
            logps_list = logps.tolist()
            n = len(pairs)
            out += [
                replace(p, ref_chosen=logps_list[k], ref_rejected=logps_list[n + k])
                for k, p in enumerate(pairs)
            ]
        model.train()
        return out

    @torch.no_grad()
    def validation_loss(self, model: Any, rows: Sequence[Row]) -> float:
        """Mean loss over the validation rows (per answer token, or per pair)."""
        model.eval()
        total, count = 0.0, 0
        for i in range(0, len(rows), self.config.batch_size):
            loss, n = self.loss(model, rows[i : i + self.config.batch_size])
            total += float(loss)
            count += n
        model.train()
        return total / max(count, 1)


def _loss_sum(
    model: Any, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, sliced: bool, amp: bool
) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the labelled tokens, and their count. `sliced` projects only
    the positions that predict a label onto the vocabulary (transformers' logits_to_keep
    mask): the LM head is a large share of a small model's compute, and prompts are long."""
    target = labels[:, 1:]
    wanted = target != -100
    with torch.autocast(ids.device.type, dtype=torch.bfloat16, enabled=amp):
        if sliced:
            keep = torch.nn.functional.pad(wanted, (0, 1), value=False)
            logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits
        else:
            logits = model(input_ids=ids, attention_mask=mask).logits
    if sliced:
        logits, target = logits.reshape(-1, logits.shape[-1]), target[wanted]
    else:  # prompt tuning prepends virtual tokens: keep the positions of the real ones
        logits = logits[:, -ids.shape[1] :][:, :-1].reshape(-1, logits.shape[-1])
        target = target.reshape(-1)
    loss = torch.nn.functional.cross_entropy(
        logits.float(), target, ignore_index=-100, reduction="sum"
    )
    return loss, int(wanted.sum())


def train(
    model_path: Path | str,
    data: Dataset | tuple[Sequence[Example], Sequence[Example]],
    job_dir: Path | str,
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    on_step: StepCallback | None = None,
    progress: bool = True,
) -> TrainResult:
    """Fine-tune the causal LM at `model_path` on the supervised examples of `data` (a
    Dataset, or train and validation example lists), in the job folder `job_dir`.

    `resume=True` continues a job from its last checkpoint (or starts it when it has none;
    a finished job returns its result). `on_step` is called after every optimizer step;
    returning True stops the job (stopped_because "callback"), as a pruner would.
    """
    started = time.monotonic()
    config = config or TrainConfig()
    model_path = Path(model_path).resolve()
    job_dir = Path(job_dir)
    train_split, val_split = (
        (data.splits["train"], data.splits["validation"]) if isinstance(data, Dataset) else data
    )
    train_examples = _examples(train_split, config.objective)
    val_examples = _examples(val_split, config.objective)
    kind = "preference pairs" if config.objective == "dpo" else "supervised examples"
    if len(train_examples) < MIN_TRAIN_EXAMPLES:
        raise BadRequest(
            f"the training split has {len(train_examples)} {kind}; at least "
            f"{MIN_TRAIN_EXAMPLES} are needed to fine-tune with {config.objective}"
        )
    if config.eval_every and not val_examples:
        raise BadRequest(
            "eval_every / early stopping needs validation examples, and the validation split "
            "is empty: add examples or set eval_every to 0"
        )
    job_file = job_dir / "job.json"
    if job_file.exists() and not resume:
        raise Conflict(f"{job_dir} already holds a training job; pass resume=True to continue it")
    if resume and (job_dir / "result.json").is_file():
        return TrainResult.from_dict(json.loads((job_dir / "result.json").read_text("utf-8")))

    _seed_everything(config.seed)
    tokenizer, model = _load(model_path)
    encoded = [_encode(tokenizer, ex, config.max_length) for ex in train_examples]
    train_rows = [r for r in encoded if r is not None]
    val_encoded = [_encode(tokenizer, ex, config.max_length) for ex in val_examples]
    val_rows = [r for r in val_encoded if r is not None]
    skipped = len(encoded) - len(train_rows) + len(val_encoded) - len(val_rows)
    if len(train_rows) < MIN_TRAIN_EXAMPLES:
        raise BadRequest(
            f"only {len(train_rows)} training examples fit in max_length={config.max_length} "
            f"tokens with their whole answer ({skipped} too long); at least "
            f"{MIN_TRAIN_EXAMPLES} are needed: raise max_length or shorten the answers"
        )
    if config.eval_every and not val_rows:
        raise BadRequest(
            f"no validation example fits in max_length={config.max_length} tokens; raise max_length"
        )

    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu")
        if config.device == "auto"
        else config.device
    )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadRequest("device 'cuda' was asked for and no CUDA device is available")
    amp = config.bf16 and device.type == "cuda" and torch.cuda.is_bf16_supported()
    pad_id = int(tokenizer.pad_token_id)
    sliced = config.method != "prompt" and _SLICED_LOSS
    objective = _Objective(config, pad_id, device, amp, sliced)
    if config.objective == "dpo":  # the reference is the base model, before any change
        model.to(device)
        train_rows = objective.with_reference(model, train_rows)
        val_rows = objective.with_reference(model, val_rows)
    model = _wrap(model, config, model_path)
    model.to(device)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if config.method != "full":
            model.enable_input_require_grads()
    model.config.use_cache = False
    params = list(_trainable(model).values())
    n_trainable = sum(p.numel() for p in params)

    n_batches = math.ceil(len(train_rows) / config.batch_size)
    steps_per_epoch = math.ceil(n_batches / config.grad_accum)
    total = config.max_steps or max(1, math.ceil(config.epochs * steps_per_epoch))
    warmup_steps = int(total * config.warmup)

    def schedule(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return max(0.0, (total - step) / max(1, total - warmup_steps))

    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    checkpoints = _Checkpoints(job_dir)
    state = _Progress()
    resumed_from: int | None = None
    job = {
        "format": JOB_FORMAT,
        "base_model": str(model_path),
        "config": config.model_dump(mode="json"),
        "data_sha256": _data_hash(train_rows, val_rows),
    }
    if job_file.exists():
        saved = json.loads(job_file.read_text("utf-8"))
        for key in ("config", "base_model", "data_sha256"):
            if saved.get(key) != job[key]:
                raise BadRequest(
                    f"cannot resume {job_dir}: its {key.replace('_', ' ')} differs from this "
                    "call's; resume with the same model, data and config, or use a new folder"
                )
        last = checkpoints.index().get("last")
        if last:
            checkpoints.load_weights(model, last)
            trainer = torch.load(checkpoints.root / last / "trainer.pt", weights_only=False)
            optimizer.load_state_dict(trainer["optimizer"])
            scheduler.load_state_dict(trainer["scheduler"])
            state = _Progress(
                **json.loads((checkpoints.root / last / "state.json").read_text("utf-8"))
            )
            _set_rng_state(trainer["rng"])
            resumed_from = state.step
    else:
        job_dir.mkdir(parents=True, exist_ok=True)
        _write_json(job_file, job)

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("val {task.fields[val]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),  # stdout is for results
        disable=not progress,
    )
    stopped: StopReason = "completed"
    batches = _epoch_batches(len(train_rows), config.batch_size, config.seed, state.epoch)
    model.train()
    with bar:
        task = bar.add_task(
            f"{config.method} fine-tune", total=total, completed=state.step, loss="-", val="-"
        )
        while state.step < total:
            if state.position >= len(batches):
                state.epoch += 1
                state.position = 0
                batches = _epoch_batches(
                    len(train_rows), config.batch_size, config.seed, state.epoch
                )
            micro = batches[state.position : state.position + config.grad_accum]
            state.position += len(micro)
            t0 = time.perf_counter()
            loss_sum = 0.0
            for batch in micro:
                summed, n = objective.loss(model, [train_rows[i] for i in batch])
                loss = summed / max(n, 1)
                (loss / len(micro)).backward()  # type: ignore[no-untyped-call]
                loss_sum += float(loss.detach())
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            lr = float(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.step_times.append(time.perf_counter() - t0)
            state.step += 1
            state.last_loss = loss_sum / len(micro)

            val_loss: float | None = None
            improved = False
            if config.eval_every and state.step % config.eval_every == 0:
                val_loss = objective.validation_loss(model, val_rows)
                state.last_eval_step = state.step
                state.history.append(
                    {"step": state.step, "train_loss": state.last_loss, "val_loss": val_loss}
                )
                if state.best_val_loss is None or val_loss < state.best_val_loss - config.min_delta:
                    state.best_val_loss, state.best_step, state.bad_evals = val_loss, state.step, 0
                    improved = True
                else:
                    state.bad_evals += 1
                if config.patience and state.bad_evals >= config.patience:
                    stopped = "early_stopping"
            if improved or (config.checkpoint_every and state.step % config.checkpoint_every == 0):
                checkpoints.write(model, optimizer, scheduler, state, best=improved)
            bar.update(
                task,
                advance=1,
                loss=f"{state.last_loss:.4f}",
                val="-" if state.best_val_loss is None else f"{state.best_val_loss:.4f}",
            )
            if on_step is not None:
                metrics = StepMetrics(
                    step=state.step,
                    total_steps=total,
                    epoch=state.epoch,
                    train_loss=state.last_loss,
                    learning_rate=lr,
                    val_loss=val_loss,
                    best_val_loss=state.best_val_loss,
                    seconds=time.monotonic() - started,
                )
                if on_step(metrics) and stopped != "early_stopping":
                    stopped = "callback"
            if stopped != "completed":
                break

    # A last evaluation when the final step had none; then keep the best weights.
    if val_rows and stopped == "completed" and state.last_eval_step != state.step:
        val_loss = objective.validation_loss(model, val_rows)
        state.history.append(
            {"step": state.step, "train_loss": state.last_loss or 0.0, "val_loss": val_loss}
        )
        if state.best_val_loss is None or val_loss < state.best_val_loss - config.min_delta:
            state.best_val_loss, state.best_step = val_loss, state.step
    best = checkpoints.index().get("best")
    if state.best_step is not None and state.best_step != state.step and best:
        checkpoints.load_weights(model, best)

    output = _save_output(model, tokenizer, config, job_dir, model_path, state, job)
    times = state.step_times[1:] if len(state.step_times) > 1 else state.step_times
    result = TrainResult(
        best_val_loss=state.best_val_loss,
        best_step=state.best_step,
        steps=state.step,
        total_steps=total,
        stopped_because=stopped,
        seconds=time.monotonic() - started,
        step_time=sum(times) / max(len(times), 1),
        peak_rss_mb=_peak_rss_mb(),
        output_path=str(output),
        base_model=str(model_path),
        config=config,
        final_train_loss=state.last_loss,
        trainable_parameters=n_trainable,
        train_examples=len(train_rows),
        validation_examples=len(val_rows),
        skipped_too_long=skipped,
        resumed_from_step=resumed_from,
        device=device.type,
        bf16=amp,
        history=state.history,
    )
    _write_json(job_dir / "result.json", result.to_dict())
    return result


def _save_output(
    model: Any,
    tokenizer: Any,
    config: TrainConfig,
    job_dir: Path,
    model_path: Path,
    state: _Progress,
    job: dict[str, Any],
) -> Path:
    """adapter/ (PEFT adapter, base model path recorded) or model/ (full weights folder),
    written beside its final place and renamed in."""
    target = job_dir / ("model" if config.method == "full" else "adapter")
    for stale in job_dir.glob(f".{target.name}-*"):  # left by a job killed while saving
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=job_dir))
    try:
        if config.method == "full":
            model.config.use_cache = True
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
        else:
            model.save_pretrained(staging)
        card = {
            "format": JOB_FORMAT,
            "method": config.method,
            "base_model": str(model_path),
            "data_sha256": job["data_sha256"],
            "steps": state.step,
            "best_step": state.best_step,
            "best_val_loss": state.best_val_loss,
            "config": config.model_dump(mode="json"),
        }
        _write_json(staging / TRAINING_CARD, card)
        if target.exists():
            shutil.rmtree(target)
        os.rename(staging, target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise BadRequest(
            f"could not save the trained {target.name} in {job_dir} ({exc.strerror or exc}); "
            "free space and resume the job"
        ) from exc
    return target


def base_model_of(adapter: Path | str) -> Path:
    """The base weights folder an adapter saved by `train` was trained on."""
    card = Path(adapter) / TRAINING_CARD
    if not card.is_file():
        raise BadRequest(f"{adapter} was not written by a Bastion training job ({TRAINING_CARD})")
    return Path(json.loads(card.read_text("utf-8"))["base_model"])
