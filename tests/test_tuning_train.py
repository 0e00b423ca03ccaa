"""The training job on the real embedded model (SmolLM2-135M) with tiny data on the CPU."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from bastion.errors import BadRequest, Conflict
from bastion.models.embedded import model_cache_root, prepare_embedded_model
from bastion.tuning import train as train_mod
from bastion.tuning.dataset import PreferenceExample, SupervisedExample
from bastion.tuning.train import StepMetrics, TrainConfig, encode_example, train

# peft calls a transformers property that warns of its own deprecation
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning"),
    pytest.mark.usefixtures("one_torch_thread"),
]

ANIMALS = ["cat", "dog", "owl", "fox", "eel", "yak", "bee", "ant", "elk", "emu", "gnu", "hen"]
WORDS = ["blue", "seven", "apple", "river", "stone", "cloud", "lemon", "tiger", "piano", "maple"]


def example(prompt: str, answer: str) -> SupervisedExample:
    return SupervisedExample([{"role": "user", "content": prompt}], answer, "test")


def code_words(offset: int = 0) -> list[SupervisedExample]:
    return [
        example(f"Code word for {a}?", f"{WORDS[(i + offset) % len(WORDS)]} {a}")
        for i, a in enumerate(ANIMALS)
    ]


TRAIN = code_words()
VALID = code_words()[:4]
FAST = {"max_length": 64, "batch_size": 4, "dropout": 0.0, "warmup": 0.0}


@pytest.fixture(scope="module")
def base() -> Path:
    return prepare_embedded_model(model_cache_root(Path("/nonexistent")))


def trainable(job: Path) -> dict[str, torch.Tensor]:
    return load_file(str(job / "adapter" / "adapter_model.safetensors"))


def test_lora_memorises_and_saves_a_loadable_adapter(base: Path, tmp_path: Path) -> None:
    losses: list[float] = []

    def record(m: StepMetrics) -> None:
        losses.append(m.train_loss)

    config = TrainConfig(method="lora", learning_rate=6e-3, max_steps=7, **FAST)
    result = train(base, (TRAIN, VALID), tmp_path / "job", config, on_step=record, progress=True)
    print("lora losses", [round(x, 3) for x in losses], "step_time", result.step_time)
    assert result.steps == 7 and result.stopped_because == "completed"
    assert sum(losses[-3:]) / 3 < 0.6 * sum(losses[:3]) / 3, losses
    assert result.best_val_loss is not None and result.best_val_loss < losses[0]
    assert result.peak_rss_mb > 100 and result.step_time > 0
    adapter = Path(result.output_path)
    assert adapter.name == "adapter"
    card = json.loads((adapter / "adapter_config.json").read_text())
    assert card["base_model_name_or_path"] == str(base.resolve())
    assert train_mod.base_model_of(adapter) == base.resolve()
    assert not any(p.name.startswith(".") for p in (tmp_path / "job").iterdir())

    from bastion.models.base import ModelInfo
    from bastion.models.transformers_backend import TransformersBackend

    backend = TransformersBackend(
        ModelInfo("tuned", "transformers", None, 2048), base, adapter=adapter
    )
    backend.load()
    assert type(backend._model).__name__ == "PeftModelForCausalLM"


def test_encoding_masks_the_prompt_and_cuts_its_middle(base: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    long = example(
        "Summarize this. " + "blah " * 100 + "MIDDLE " + "blah " * 100 + "the question is here",
        "short answer",
    )
    enc = encode_example(tok, long, 64)
    assert enc is not None and len(enc.input_ids) <= 64
    answer = tok("short answer", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert enc.labels[-len(answer) :] == answer and enc.input_ids[-len(answer) :] == answer
    assert set(enc.labels[: -len(answer)]) == {-100}
    text = tok.decode(enc.input_ids)
    assert "question is here" in text and "Summarize this." in text and "MIDDLE" not in text
    assert encode_example(tok, example("hi", "word " * 80), 64) is None  # never cut the answer


@pytest.mark.parametrize("method", ["ia3", "prompt", "full"])
def test_other_methods_run_two_steps_and_save(method: str, base: Path, tmp_path: Path) -> None:
    extra: dict[str, Any] = {"virtual_tokens": 4} if method == "prompt" else {}
    if method == "ia3":  # with gradient checkpointing (the GPU setting) on an adapter
        extra.update(target_modules=("k_proj", "v_proj", "down_proj"), gradient_checkpointing=True)
    config = TrainConfig(method=method, learning_rate=1e-4 if method == "full" else 1e-2,
                         max_steps=2, **FAST, **extra)  # fmt: skip
    result = train(base, (TRAIN[:8], VALID[:2]), tmp_path / "job", config, progress=False)
    assert result.steps == 2 and result.best_val_loss is not None
    out = Path(result.output_path)
    if method == "full":
        assert out.name == "model" and (out / "config.json").is_file()
        assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
        assert result.trainable_parameters > 100_000_000
    else:
        assert (out / "adapter_config.json").is_file()
        assert result.trainable_parameters < 1_000_000


def test_resume_after_interrupt_matches_uninterrupted_and_seed_repeats(
    base: Path, tmp_path: Path
) -> None:
    config = TrainConfig(
        method="lora",
        learning_rate=2e-3,
        max_steps=4,
        checkpoint_every=2,
        batch_size=3,
        max_length=64,
        dropout=0.1,
        warmup=0.2,
        eval_every=2,
    )  # fmt: skip  (dropout on: the RNG states must be restored too)
    seen: dict[str, list[float]] = {"a": [], "c": []}

    def recorder(run: str, kill_at: int = 0) -> Any:
        def record(m: StepMetrics) -> None:
            seen[run].append(m.train_loss)
            if m.step == kill_at:
                raise Killed

        return record

    class Killed(Exception):
        pass

    full = train(
        base, (TRAIN, VALID), tmp_path / "a", config, on_step=recorder("a"), progress=False
    )
    with pytest.raises(Killed):
        train(
            base, (TRAIN, VALID), tmp_path / "c", config, on_step=recorder("c", 3), progress=False
        )
    assert seen["c"] == seen["a"][:3]  # the same seed repeats the same run exactly
    index = json.loads((tmp_path / "c" / "checkpoints" / "index.json").read_text())
    assert index["last"] == "step-00000002"
    with pytest.raises(Conflict):
        train(base, (TRAIN, VALID), tmp_path / "c", config, progress=False)
    resumed = train(base, (TRAIN, VALID), tmp_path / "c", config, resume=True, progress=False)
    assert resumed.resumed_from_step == 2 and resumed.steps == 4
    assert resumed.final_train_loss == pytest.approx(full.final_train_loss, rel=1e-5)
    assert resumed.best_val_loss == pytest.approx(full.best_val_loss, rel=1e-5)
    assert [h["step"] for h in resumed.history] == [h["step"] for h in full.history] == [2, 4]
    a, c = trainable(tmp_path / "a"), trainable(tmp_path / "c")
    assert a.keys() == c.keys()
    for name in a:
        torch.testing.assert_close(a[name], c[name], rtol=1e-5, atol=1e-6)
    # a finished job resumed again just returns its result
    assert train(base, (TRAIN, VALID), tmp_path / "c", config, resume=True).steps == 4
    (tmp_path / "c" / "result.json").unlink()
    changed = config.model_copy(update={"learning_rate": 1e-3})
    with pytest.raises(BadRequest, match="config differs"):
        train(base, (TRAIN, VALID), tmp_path / "c", changed, resume=True, progress=False)


def test_early_stopping_on_rising_validation_loss(base: Path, tmp_path: Path) -> None:
    # Validation wants long formal answers to the same questions: a run that learns the
    # training answers (a word and the animal) sees its validation loss rise.
    formal = [
        example(f"Code word for {a}?", f"I am sorry, but I cannot share any code word for the {a}.")
        for a in ANIMALS[:4]
    ]
    config = TrainConfig(
        method="lora", learning_rate=1e-2, max_steps=20, eval_every=1, patience=2, **FAST
    )
    result = train(base, (TRAIN, formal), tmp_path / "job", config, progress=False)
    assert result.stopped_because == "early_stopping", result.history
    assert result.steps < 20
    vals = [h["val_loss"] for h in result.history]
    assert result.best_val_loss == min(vals)
    assert result.best_step is not None and result.best_step < result.steps
    assert all(v >= result.best_val_loss for v in vals[-2:])
    index = json.loads((tmp_path / "job" / "checkpoints" / "index.json").read_text())
    assert index["best"] == f"step-{result.best_step:08d}"
    # the saved adapter holds the best weights, not the last
    best = load_file(str(tmp_path / "job" / "checkpoints" / index["best"] / "weights.safetensors"))
    saved = trainable(tmp_path / "job")
    assert len(best) == len(saved)
    for (_, b), (_, s) in zip(sorted(best.items()), sorted(saved.items()), strict=True):
        torch.testing.assert_close(b, s)


def test_callback_can_stop_a_job(base: Path, tmp_path: Path) -> None:
    config = TrainConfig(method="lora", max_steps=10, **FAST)
    result = train(
        base, (TRAIN, VALID), tmp_path / "j", config, on_step=lambda m: m.step >= 1, progress=False
    )
    assert result.stopped_because == "callback" and result.steps == 1


def test_clear_errors(base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BadRequest, match="at least 4"):
        train(base, (TRAIN[:2], VALID), tmp_path / "tiny", TrainConfig())
    with pytest.raises(BadRequest, match="at least 4"):
        train(base, ([], VALID), tmp_path / "empty", TrainConfig())
    with pytest.raises(BadRequest, match="validation"):
        train(base, (TRAIN, []), tmp_path / "noval", TrainConfig(eval_every=2))
    with pytest.raises(BadRequest, match="method"):
        TrainConfig.parse({"method": "qlora"})
    with pytest.raises(BadRequest, match="patience"):
        TrainConfig.parse({"patience": 2})
    with pytest.raises(BadRequest, match="no linear module named c_attn"):
        train(base, (TRAIN, VALID), tmp_path / "t", TrainConfig(target_modules=("c_attn",), **FAST))

    # The disk fills up while writing the second checkpoint: a clear error, no half-written
    # folder, and the first checkpoint stays the valid one to resume from.
    calls = {"n": 0}

    def flaky(tensors: dict[str, torch.Tensor], path: str) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        save_file(tensors, path)

    monkeypatch.setattr("bastion.tuning.train.save_file", flaky)
    config = TrainConfig(method="lora", max_steps=2, checkpoint_every=1, **FAST)
    job = tmp_path / "full-disk"
    with pytest.raises(BadRequest, match=r"No space left.*step-00000001.*intact"):
        train(base, (TRAIN, VALID), job, config, progress=False)
    ckpts = job / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["index.json", "step-00000001"]
    monkeypatch.undo()
    result = train(base, (TRAIN, VALID), job, config, resume=True, progress=False)
    assert result.resumed_from_step == 1 and result.steps == 2


def test_dpo_prefers_the_chosen_answers(base: Path, tmp_path: Path) -> None:
    def pairs(animals: list[str]) -> list[PreferenceExample]:
        return [
            PreferenceExample(
                [{"role": "user", "content": f"Describe the {a} in two words."}],
                f"Lovely {a}.",
                f"Boring {a}.",
                "test",
            )
            for a in animals
        ]

    config = TrainConfig(
        method="lora",
        objective="dpo",
        beta=0.5,
        learning_rate=5e-3,
        max_steps=6,
        eval_every=3,
        **FAST,
    )
    result = train(base, (pairs(ANIMALS[:8]), pairs(ANIMALS[8:])), tmp_path / "dpo", config)
    vals = [h["val_loss"] for h in result.history]
    print("dpo validation losses", vals)
    # At the start the policy is the reference: the DPO loss is log 2 = 0.693 for every pair.
    assert result.best_val_loss is not None and result.best_val_loss < 0.6, vals
    with pytest.raises(BadRequest, match="0 preference pairs"):
        train(base, (TRAIN, VALID), tmp_path / "sft-data", config)


def test_search_picks_the_lowest_validation_loss_and_resumes(base: Path, tmp_path: Path) -> None:
    from bastion.tuning.dataset import Dataset
    from bastion.tuning.search import SearchSpace, search

    data = Dataset({"train": TRAIN, "validation": VALID, "test": []}, card=None)  # type: ignore[arg-type]
    space = SearchSpace(learning_rate=(1e-3, 1e-2), rank=(4, 8), epochs=(1.0, 2.0))
    config = TrainConfig(method="lora", eval_every=1, patience=2, **FAST)
    found = search(base, data, tmp_path / "search", config, 3, space=space, progress=False)
    assert len(found.trials) == 3
    complete = [t for t in found.trials if t.state == "complete"]
    assert found.best.best_val_loss == min(t.best_val_loss for t in complete)
    assert set(found.best_params) == {"learning_rate", "rank", "epochs"}
    assert sorted(p.name for p in (tmp_path / "search").iterdir()) == [
        "trial-000",
        "trial-001",
        "trial-002",
    ]
    # Started again (as after a crash), the seeded sampler proposes the same trials and
    # each finished job returns its saved result instead of training again.
    again = search(base, data, tmp_path / "search", config, 3, space=space, progress=False)
    assert again.best_params == found.best_params
    assert [t.params for t in again.trials] == [t.params for t in found.trials]
