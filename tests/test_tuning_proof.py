"""Proof on the CPU, end to end on the real embedded model: a house style learnt from 90 templated
examples improves the task on held-out prompts and passes the forgetting guard; a
deliberately over-trained full fine-tune is rejected by it; the accepted model is served
to its tenant and promoted into an A/B experiment."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bastion.cli import app as cli
from bastion.errors import Conflict
from bastion.models import ChatMessage, GenerationParams
from bastion.platform import Platform
from bastion.tuning.dataset import build_dataset, from_jsonl
from conftest import write_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning"),
]

ITEMS = [
    "kettle",
    "blender",
    "lamp",
    "backpack",
    "toaster",
    "umbrella",
    "headset",
    "rug",
    "mug",
    "stool",
    "fan",
    "clock",
    "scarf",
    "jacket",
    "helmet",
    "tent",
    "kayak",
    "printer",
    "monitor",
    "keyboard",
]
FACTS = [
    "It ships in {n} days.",
    "It comes with a {n}-year warranty.",
    "It weighs {n} kilograms.",
]
ASKS = ["Tell me about the {item}.", "Any news on the {item}?", "A question on the {item}."]


def house_style(n: int, seed: int) -> list[dict[str, Any]]:
    """Prompts carry the fact; the answer restates it in the house format."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        item = ITEMS[i % len(ITEMS)]
        fact = FACTS[(i // len(ITEMS)) % len(FACTS)].format(n=rng.randint(2, 9))
        ask = ASKS[i % len(ASKS)].format(item=item)
        ticket = rng.randint(1000, 9999)
        rows.append(
            {
                "prompt": f"Ticket {ticket}. {ask} Fact: {fact}",
                "completion": f"Ticket {ticket}: thanks for asking about the {item}. {fact} "
                "Kind regards, the Acme team.",
            }
        )
    return rows


FORGETTING = {  # smaller sets than the defaults, to fit the suite; bias probes skipped
    "general_items": 80,
    "max_general_drop": 0.05,  # 4 of 80 items
    "probes_per_kind": 6,
    "max_safety_worsening": 0.2,  # one answer in six is 0.17 of a rate
    "task_examples": 10,
    "max_new_tokens": 40,
    "bias_templates": 0,
}
CONFIG: dict[str, Any] = {
    "models": [{"name": "smol", "backend": "embedded", "context_length": 2048}],
    "apps": [{"name": "support"}],
    "access": {
        "policies": {
            "admin": {"models": ["*"], "apps": ["*"]},
            "developer": {"models": ["*"], "apps": ["*"]},
            "user": {"models": ["smol", "acme-*"], "apps": ["support"]},
        }
    },
    "tuning": {"forgetting": FORGETTING},
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("house")
    (folder / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in house_style(90, 0)))
    data = build_dataset(
        [from_jsonl(folder / "rows.jsonl", licence="LicenseRef-Internal")],
        fractions=(0.6, 0.2, 0.2),
    )
    assert len(data.splits["test"]) >= 5 and len(data.splits["validation"]) >= 5
    return data.save(folder / "dataset")


def tune(home: Path, dataset: Path, name: str, *options: str) -> Any:
    command = ["tune", "run", name, "--base", "smol", "--data", str(dataset)]
    return CliRunner().invoke(cli, [*command, "--as", "acme/alice", *options])


def test_lora_learns_the_house_style_and_is_promoted(home: Path, dataset: Path) -> None:
    platform = Platform.open(home, write_config(home, CONFIG))
    platform.access.create_key(tenant="acme", user="alice", role="developer")
    options = ["--method", "lora", "--lr", "2e-3", "--epochs", "3", "--max-length", "128"]
    result = tune(home, dataset, "acme-house", *options, "--eval-every", "8", "--patience", "2")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "accepted"

    record = platform.tuned.get("acme-house")
    report = record.metrics["forgetting"]
    base, tuned = report["base"], report["candidate"]
    print("house style", json.dumps({"base": base, "tuned": tuned}, default=str)[:2000])
    assert tuned["task_rouge_l"] > base["task_rouge_l"] + 20  # measurably better
    assert tuned["task_rouge_l"] > 60
    assert base["general_accuracy"] - tuned["general_accuracy"] <= 0.05
    assert record.lineage["dataset"]["dataset_sha256"] == record.dataset_sha256
    assert record.lineage["hyperparameters"]["learning_rate"] == 2e-3
    assert record.metrics["training"]["best_val_loss"] is not None
    assert not (home / "tuning" / "acme-house").exists()  # the job folder is cleaned up

    # Served as an adapter on its base, to its own tenant only.
    platform.registry.refresh(force=True)
    assert "acme-house" in platform.registry.names("acme")
    assert "acme-house" not in platform.registry.names("beta")
    backend = platform.registry.backend("acme-house")
    prompt = "Ticket 4321. Tell me about the kettle. Fact: It ships in 5 days."
    answer = backend.generate(
        [ChatMessage("user", prompt)], GenerationParams(max_tokens=40, temperature=0)
    ).text
    assert "thanks for asking about the kettle" in answer.lower(), answer

    promoted = CliRunner().invoke(
        cli, ["tune", "promote", "acme-house", "--app", "support", "--as", "acme/alice"]
    )
    assert promoted.exit_code == 0, promoted.output
    spec, _ = platform.experiments.store.get("acme", json.loads(promoted.stdout)["name"])
    assert [v.model for v in spec.variants] == ["smol", "acme-house"]
    listed = CliRunner().invoke(cli, ["tune", "list", "--json"])
    assert [r["status"] for r in json.loads(listed.stdout)] == ["testing"]
    platform.close()


def test_an_over_trained_full_fine_tune_is_rejected(home: Path, dataset: Path) -> None:
    platform = Platform.open(home, write_config(home, CONFIG))
    platform.access.create_key(tenant="acme", user="alice", role="admin")
    options = ["--method", "full", "--lr", "1e-3", "--max-steps", "20", "--max-length", "128"]
    result = tune(home, dataset, "acme-overfit", *options)
    assert result.exit_code == 1, result.output
    reasons = json.loads(result.stdout)["reasons"]
    print("over-trained", reasons)
    assert any("general accuracy fell" in r for r in reasons), reasons
    record = platform.tuned.get("acme-overfit")
    assert record.status == "rejected"
    platform.registry.refresh(force=True)
    assert "acme-overfit" not in platform.registry.names("acme")  # never served
    from bastion.access import Principal
    from bastion.tuning.job import promote

    with pytest.raises(Conflict, match="rejected by the forgetting guard"):
        promote(platform.tuning(), Principal("acme", "alice", "admin"), "acme-overfit", "support")
    platform.close()
