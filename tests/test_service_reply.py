"""The service-reply app on the demo company: a case read as the agent, articles they may
read, citations, a next step, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from bastion.apps import run_app
from bastion.cli import app as cli
from bastion.errors import NotFound, PermissionDenied
from bastion.grounding.retriever import readable_by
from bastion.platform import Platform
from conftest import LiveServer


def a_case(platform: Platform) -> str:
    """A support case: the support group may read every one."""
    from bastion.grounding.ingest import stored_records

    cases = [r for r in stored_records(platform.db, "acme", "interaction")]
    return next(r.source_id for r in cases if r.source == "support-cases")


def test_an_agent_gets_a_draft_citing_articles_they_may_read(
    demo: tuple[Platform, dict[str, Any]],
) -> None:
    platform, info = demo
    dave = platform.access.principal("acme/dave")  # support
    case = a_case(platform)
    with LiveServer(platform) as server:
        headers = {"Authorization": f"Bearer {info['keys']['acme/dave']}"}
        body = {"input": {"case": case, "note": "Offer a call."}, "model": "echo"}
        response = httpx.post(
            server.url + "/v1/apps/service-reply/runs", json=body, headers=headers
        )
    assert response.status_code == 200, response.text
    reply = response.json()["output"]
    assert reply["case"] == case and reply["subject"] and reply["next_step"]
    assert reply["articles"] and all(a["source"] == "kb" for a in reply["articles"])
    assert [a["n"] for a in reply["articles"]] == list(range(2, 2 + len(reply["articles"])))
    assert reply["support"] is not None and reply["withheld"] == []
    assert reply["cited"] and not reply["citations_placed"]  # echo repeats the [n] markers
    # Only articles dave may read were shown, and the case went in as marked data.
    groups = set(readable_by(dave))
    for article in reply["articles"]:
        row = platform.grounding.record(dave, "kb", article["record_id"])
        assert set(row.acl) & groups
    record = platform.audit.get(reply["trace_id"])
    prompt = record["prompt"][-1]["content"]
    assert "source [1]: support-cases" in prompt and "«data:" in prompt
    assert record["extra"]["app_run"] == response.json()["id"]


def test_citations_the_model_left_out_are_placed_where_the_support_check_found_them() -> None:
    from bastion.apps.service_reply import _place_citations

    text = "Hold the button for five seconds. The light turns green! Thanks for waiting."
    found = [
        {"sentence": "Hold the button for five seconds.", "source": 2, "support": 0.8},
        {"sentence": "The light turns green!", "source": 3, "support": 0.7},
        {"sentence": "Thanks for waiting.", "source": 1, "support": 0.9},  # the case itself
        {"sentence": "Not in the reply.", "source": 2, "support": 0.9},
    ]
    placed = _place_citations(text, found, articles={2, 3})
    assert placed == (
        "Hold the button for five seconds [2]. The light turns green [3]! Thanks for waiting."
    )


def test_a_case_the_person_may_not_read_or_that_does_not_exist(
    demo: tuple[Platform, dict[str, Any]],
) -> None:
    platform, _ = demo
    carol = platform.access.principal("acme/carol")  # sales: no support cases
    case = a_case(platform)
    with pytest.raises(PermissionDenied, match=case):
        run_app(platform, "service-reply", {"case": case}, carol, model="echo")
    dave = platform.access.principal("acme/dave")
    with pytest.raises(NotFound, match="CS-0000"):
        run_app(platform, "service-reply", {"case": "CS-0000"}, dave, model="echo")


def test_the_evaluation_scores_every_labelled_case(
    demo: tuple[Platform, dict[str, Any]], tmp_path: Path
) -> None:
    from bastion.apps.service_reply import demo_cases
    from bastion.grounding.ingest import stored_records

    platform, info = demo
    records = stored_records(platform.db, "acme", "interaction")
    cases = demo_cases(
        [(r.source_id, str(r.fields["subject"])) for r in records if r.source == "support-cases"]
    )
    assert len(cases) == sum(r.source == "support-cases" for r in records)  # all labelled
    data = tmp_path / "cases.jsonl"
    data.write_text("".join(json.dumps(c) + "\n" for c in cases[:4]))
    predictions = tmp_path / "out" / "predictions.jsonl"
    args = ["eval", "app", "service-reply", "--data", str(data), "--as", "acme/dave"]
    args += ["--model", "echo", "--predictions", str(predictions)]
    result = CliRunner().invoke(cli, args, env={"BASTION_HOME": str(info["home"])})
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["cases"] == 4 and report["errors"] == 0, predictions.read_text()[:600]
    assert {"cites_an_article", "retrieval_recall", "support"} <= set(report["scores"])
    assert 0 <= report["scores"]["retrieval_recall"] <= 1
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert [r["id"] for r in rows] == [c["id"] for c in cases[:4]] and rows[0]["run_id"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": 1}\n')
    args[4] = str(bad)
    failed = CliRunner().invoke(cli, args, env={"BASTION_HOME": str(info["home"])})
    assert failed.exit_code == 1 and "bad.jsonl:1" in failed.stderr.replace("\n", "")  # wrapped
