"""The groundedness check: similarity support, contradictions read by an NLI model from a
local folder, and `bastion eval groundedness` on labelled claims."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from bastion.cli import app as cli
from bastion.errors import BadRequest
from bastion.grounding.groundedness import GroundednessScorer
from bastion.grounding.nli import NliModel
from bastion.platform import Platform
from conftest import LiveServer

ROOT = Path(__file__).resolve().parents[1]
PASSAGE = (
    "In the 2025 pilot, switching the sensors to the new firmware cut battery drain by a "
    "third. The pilot ran at four plants in Sweden."
)
CONTRADICTED = "The new firmware increased the sensors' battery drain in the pilot."


def nli_folder(folder: Path, labels: list[str], verdict: str) -> Path:
    """A real sequence classifier on disk, built from the shipped MiniLM, whose head always
    answers `verdict`: the loading, pairing and label mapping run as for a real NLI model."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from bastion.grounding.embedding import _load

    encoder = _load()
    model = AutoModelForSequenceClassification.from_pretrained(
        encoder[0].auto_model.name_or_path,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        local_files_only=True,
    )
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([5.0 if n == verdict else 0.0 for n in labels]))
    model.save_pretrained(folder)
    encoder.tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def nli_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("nli")
    labels = ["entailment", "neutral", "contradiction"]
    return {
        verdict: nli_folder(root / verdict, labels, verdict)
        for verdict in ("entailment", "contradiction")
    }


def test_similarity_alone_passes_a_sentence_its_source_contradicts() -> None:
    (judged,) = GroundednessScorer().judge([CONTRADICTED], [PASSAGE])
    assert judged.supported and judged.contradiction is None  # why an NLI model is needed


def test_an_nli_model_from_a_folder_marks_contradicted_sentences_unsupported(
    nli_folders: dict[str, Path],
) -> None:
    answer = f"{CONTRADICTED} It ran at four plants in Sweden."
    against = GroundednessScorer(nli=NliModel(nli_folders["contradiction"])).score(
        answer, [PASSAGE]
    )
    assert against.score == 0.0 and against.contradicted == against.unsupported
    assert all(s.contradiction is not None and s.contradiction > 0.9 for s in against.sentences)
    assert all(s.score < 0.1 for s in against.sentences)
    agrees = GroundednessScorer(nli=NliModel(nli_folders["entailment"])).score(answer, [PASSAGE])
    assert agrees.score == 1.0 and agrees.contradicted == []


def test_a_folder_that_is_not_an_nli_model_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match=r"no config\.json"):
        NliModel(tmp_path)
    sentiment = nli_folder(tmp_path / "sentiment", ["negative", "positive"], "positive")
    with pytest.raises(BadRequest, match="exactly one starting with 'contradict'"):
        NliModel(sentiment)


def test_eval_groundedness_writes_one_prediction_per_row_in_order(
    tmp_path: Path, nli_folders: dict[str, Path]
) -> None:
    rows = [
        json.loads(line)
        for line in (ROOT / "benchmarks" / "data" / "claim_pairs.jsonl").read_text().splitlines()
    ][:6]
    rows[-1].pop("label")  # one unlabelled row: predictions still, no AUC
    data = tmp_path / "claims.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "predictions.jsonl"
    command = ["eval", "groundedness", "--data", str(data), "--predictions", str(out)]
    result = CliRunner().invoke(cli, command, env={"BASTION_HOME": str(tmp_path)})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["rows"] == 6 and summary["nli_model"] is None and "roc_auc" not in summary
    predictions = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(predictions) == 6 and all(set(p) == {"score", "supported"} for p in predictions)
    # labelled rows with an NLI model: AUC and the verdict's precision and recall
    data.write_text("".join(json.dumps(r) + "\n" for r in rows[:5]))
    folder = str(nli_folders["contradiction"])
    result = CliRunner().invoke(
        cli, [*command, "--nli-model", folder], env={"BASTION_HOME": str(tmp_path)}
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["nli_model"] == folder and 0 <= summary["roc_auc"] <= 1
    assert summary["supported"]["recall"] == 0.0  # the model contradicts every claim
    assert [json.loads(line)["supported"] for line in out.read_text().splitlines()] == [False] * 5


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"claim": "A claim.", "passage": "A passage."}\nnot json\n',
            "claims.jsonl:2 is not valid JSON",
        ),
        ('{"claim": "A claim."}\n', 'claims.jsonl:1: expected {"claim": str, "passage": str'),
        ("\n", "claims.jsonl has no rows"),
    ],
)
def test_eval_groundedness_refuses_bad_rows_and_writes_nothing(
    tmp_path: Path, content: str, message: str
) -> None:
    data = tmp_path / "claims.jsonl"
    data.write_text(content)
    out = tmp_path / "predictions.jsonl"
    command = ["eval", "groundedness", "--data", str(data), "--predictions", str(out)]
    # wide enough that the error's long path is not wrapped in the middle of a word
    env = {"BASTION_HOME": str(tmp_path), "COLUMNS": "1000"}
    result = CliRunner().invoke(cli, command, env=env)
    assert result.exit_code != 0 and message in " ".join(result.output.split())
    assert not out.exists()


def test_the_servers_groundedness_check_names_contradicted_sentences(
    demo: tuple[Platform, dict[str, Any]], nli_folders: dict[str, Path]
) -> None:
    platform, info = demo
    pipeline = platform.pipeline
    pipeline.nli_model, pipeline._support_scorer = nli_folders["contradiction"], None
    try:
        with LiveServer(platform) as server:
            response = httpx.post(
                f"{server.url}/v1/chat/completions",
                headers={"Authorization": f"Bearer {info['keys']['acme/dave']}"},
                json={
                    "messages": [{"role": "user", "content": "How do I pair sensors?"}],
                    "app": "strict",
                },
                timeout=60,
            ).json()
    finally:
        pipeline.nli_model, pipeline._support_scorer = None, None
    assert response["choices"][0]["finish_reason"] == "content_filter"
    verdict = next(
        v for v in response["bastion"]["trust"]["verdicts"] if v["guard"] == "groundedness"
    )
    assert verdict["action"] == "block"
    assert {f["kind"] for f in verdict["findings"]} == {"contradicted_sentence"}
