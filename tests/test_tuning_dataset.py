"""Fine-tuning datasets: examples from real feedback and from files, PII masking, exact and
near duplicates, splits that never share a prompt, the data card, atomic save, bad input."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bastion.tuning.dataset as ds
from bastion.access import Principal
from bastion.errors import BadRequest, Conflict, NotFound
from bastion.guards.pii.detector import PiiSpan
from bastion.models import ChatMessage, GenerationParams
from bastion.pipeline import ChatRequest
from bastion.platform import Platform
from bastion.tuning.dataset import (
    Collected,
    Dataset,
    PreferenceExample,
    SupervisedExample,
    build_dataset,
    from_feedback,
    from_jsonl,
    pii_detector,
)
from conftest import ECHO_CONFIG, write_config

# The echo model without the guards that load models: traces in milliseconds.
QUIET_CONFIG: dict[str, Any] = {
    **ECHO_CONFIG,
    "guards": {
        **ECHO_CONFIG["guards"],
        **{g: {"enabled": False} for g in ("pii", "injection", "toxicity", "bias", "copyright")},
    },
}


class StandIn:
    """A cheap detector: e-mail addresses and a few known names."""

    _FOUND = re.compile(r"(?P<EMAIL_ADDRESS>[\w.]+@[\w.]+\w)|(?P<PERSON>Jane Doe|John Smith)")

    def detect(self, text: str) -> list[PiiSpan]:
        return [
            PiiSpan(m.lastgroup or "", m.start(), m.end(), 1.0) for m in self._FOUND.finditer(text)
        ]


@pytest.fixture
def quiet(home: Path) -> Iterator[Platform]:
    p = Platform.open(home, write_config(home, QUIET_CONFIG))
    yield p
    p.close()


def _ask(p: Platform, key: str, text: str, app: str = "chat", max_tokens: int = 256) -> str:
    request = ChatRequest(
        [ChatMessage("user", text)], GenerationParams(max_tokens=max_tokens), "echo", app
    )
    return p.pipeline.complete(p.pipeline.prepare(request, key)).trace_id


def _rate(p: Platform, trace: str, user: str = "alice", role: str = "user", **kw: Any) -> None:
    p.experiments.feedback.record(Principal("acme", user, role), trace, **kw)


def _jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _words(seed: object, n: int) -> str:
    """Words unlike any other seed's, so that rows are not near duplicates of each other."""
    digest = hashlib.sha256(str(seed).encode()).hexdigest()
    return " ".join(digest[k * 6 : k * 6 + 6] for k in range(n))


def _qa(n: int) -> list[dict[str, str]]:
    return [
        {"prompt": f"Explain {_words(i, 3)}?", "completion": _words(-i - 1, 4)} for i in range(n)
    ]


def _prompt_key(ex: SupervisedExample | PreferenceExample) -> str:
    return " ".join(
        " ".join(m["content"] for m in ex.prompt if m["role"] == "user").casefold().split()
    )


def test_dataset_from_real_feedback_on_real_traces(quiet: Platform) -> None:
    alice = quiet.access.create_key(tenant="acme", user="alice", role="user").secret
    admin = quiet.access.create_key(tenant="acme", user="root", role="admin").secret
    for i in range(10):  # accepted: five thumbs up, five good ratings
        trace = _ask(quiet, alice, f"Can john.smith@acme.test {_words(i, 3)}?")
        if i % 2:
            _rate(quiet, trace, thumbs=1)
        else:
            _rate(quiet, trace, rating=5)
    up = _ask(quiet, alice, "Explain the refund policy in three short words please")
    down = _ask(
        quiet, alice, "explain the  refund policy in three short words please", max_tokens=3
    )
    _rate(quiet, up, thumbs=1)
    _rate(quiet, down, thumbs=-1)
    fixed = _ask(quiet, alice, "Summarise the ticket", app="concise")  # a system prompt + canary
    _rate(quiet, fixed, thumbs=-1, corrected_text="The customer wants a refund.")
    lonely = _ask(quiet, alice, "A question nobody liked")
    _rate(quiet, lonely, thumbs=-1)
    middling = _ask(quiet, alice, "A so-so question")
    _rate(quiet, middling, rating=3)
    disputed = _ask(quiet, admin, "A disputed question")
    _rate(quiet, disputed, user="root", role="admin", thumbs=1)
    _rate(quiet, disputed, user="bob", role="admin", thumbs=-1)
    quiet.audit.retain_text = False
    hidden = _ask(quiet, alice, "A question whose text is not kept")
    _rate(quiet, hidden, thumbs=1)
    quiet.audit.retain_text = True
    other = quiet.access.create_key(tenant="globex", user="eve", role="user").secret
    theirs = _ask(quiet, other, "Another tenant's question")
    quiet.experiments.feedback.record(Principal("globex", "eve", "user"), theirs, thumbs=1)

    got = from_feedback(quiet.audit, quiet.experiments.feedback, "acme")

    assert got.source["used"] == {"accepted": 11, "corrected": 1, "preference": 2}
    assert got.source["skipped"] == {
        "rejected, with no accepted answer to the same prompt to pair it with": 1,
        "neither accepted nor rejected (middling rating)": 1,
        "conflicting feedback (accepted and rejected)": 1,
        "text not retained (audit.retain_text is false)": 1,
    }
    pairs = {p.chosen: p for p in got.examples if isinstance(p, PreferenceExample)}
    refund = pairs["Explain the refund policy in three short words please"]
    assert (refund.rejected, refund.chosen_trace, refund.rejected_trace) == (
        "explain the refund",
        up,
        down,
    )
    correction = pairs["The customer wants a refund."]  # the correction beats the answer
    assert correction.rejected == "Summarise the ticket"
    assert correction.prompt[0] == {"role": "system", "content": "Answer briefly."}  # no canary
    supervised = {e.trace_id: e for e in got.examples if isinstance(e, SupervisedExample)}
    assert supervised[fixed].completion == "The customer wants a refund."
    assert supervised[fixed].source == "feedback:corrected"
    assert {theirs, lonely, middling, disputed, hidden}.isdisjoint(supervised)

    dataset = build_dataset([got], detector=StandIn(), fractions=(0.7, 0.2, 0.1))
    rows = [ex.row() for split in dataset.splits.values() for ex in split]
    assert not any(
        "john.smith@acme.test" in json.dumps(r) or "cnry-" in json.dumps(r) for r in rows
    )
    assert dataset.card.pii_masked == {"EMAIL_ADDRESS": 20}  # prompt and echoed answer
    assert dataset.card.examples == 14 and dataset.card.licence == "LicenseRef-Internal"
    assert dataset.card.sources[0]["tenant"] == "acme"
    one_app = from_feedback(quiet.audit, quiet.experiments.feedback, "acme", app="concise")
    assert one_app.source["used"] == {
        "corrected": 1,
        "preference": 1,
    }
    with pytest.raises(BadRequest, match=r"only 2 examples found.*feedback of acme/concise: 2"):
        build_dataset([one_app], detector=StandIn())


def test_the_real_pii_detector_masks_every_text_consistently(tmp_path: Path) -> None:
    rows = [
        {
            "prompt": "Write to Jane Doe at jane.doe@example.com about her order.",
            "completion": "Dear Jane Doe, your order ships today; reply to jane.doe@example.com.",
        },
        {  # already masked upstream: a new name must not reuse <PERSON_1>
            "prompt": "Tell <PERSON_1> that Michael Johnson called.",
            "completion": "<PERSON_1>, Michael Johnson called you.",
        },
    ]
    got = from_jsonl(_jsonl(tmp_path / "pii.jsonl", rows), licence="CC-BY-4.0")
    dataset = build_dataset([got], detector=pii_detector(), min_examples=1, min_validation=0)
    out = {e.prompt[0]["content"]: e for s in dataset.splits.values() for e in s}
    first = out["Write to <PERSON_1> at <EMAIL_ADDRESS_1> about her order."]
    assert isinstance(first, SupervisedExample)
    assert (
        first.completion == "Dear <PERSON_1>, your order ships today; reply to <EMAIL_ADDRESS_1>."
    )
    second = out["Tell <PERSON_1> that <PERSON_2> called."]
    assert isinstance(second, SupervisedExample)
    assert second.completion == "<PERSON_1>, <PERSON_2> called you."
    assert dataset.card.pii_masked == {"EMAIL_ADDRESS": 2, "PERSON": 4}


def test_exact_and_near_duplicates_are_removed(tmp_path: Path) -> None:
    base = "How can I change the billing address on my account before the next invoice?"
    answer = "Open Settings, then Billing, edit the address and save it before the invoice date."
    rows = [
        *_qa(12),
        {"prompt": base, "completion": answer},
        {
            "prompt": " how can I CHANGE the billing  address on my account before the next"
            " invoice?",
            "completion": answer.upper(),
        },  # exact, once case and spaces are normalised
        {"prompt": base.replace("How can", "How do"), "completion": answer.replace("it ", "")},
        {"prompt": base, "completion": "Call support."},  # another answer: kept
        {"prompt": "How can I change it?", "completion": "Settings."},  # a subset: kept
    ]
    got = from_jsonl(_jsonl(tmp_path / "d.jsonl", rows), licence="CC0-1.0")
    dataset = build_dataset([got], detector=StandIn())
    assert dataset.card.duplicates_removed == {"exact": 1, "near": 1}
    assert dataset.card.examples == 15
    kept = {(e.prompt[0]["content"], e.answers[0]) for s in dataset.splits.values() for e in s}
    assert (base, answer) in kept and (base, "Call support.") in kept


def test_near_duplicate_search_scales_without_comparing_every_pair() -> None:
    texts = [f"user: {_words(i, 4)}\n{_words(-i, 6)}" for i in range(3000)]
    texts.append(texts[5][:-1])
    pairs = list(ds._candidate_pairs(texts))
    assert len(pairs) < 20 * len(texts)  # all pairs would be 4.5 million
    assert ds._near_duplicates(texts, 0.9) == {3000}


prompts = st.text(st.sampled_from("abcdef XYZ?"), min_size=1, max_size=12).filter(str.strip)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(prompts, st.booleans(), st.integers(0, 3)), min_size=1, max_size=60))
def test_no_prompt_is_in_two_splits(items: list[tuple[str, bool, int]]) -> None:
    examples: list[ds.Example] = []
    for n, (prompt, shout, system) in enumerate(items):
        text = f"  {prompt.upper() if shout else prompt} "  # the same prompt, spelled otherwise
        messages = [{"role": "system", "content": f"System {system}"}] * (system > 0)
        messages.append({"role": "user", "content": text})
        examples.append(SupervisedExample(messages, f"answer {n} {'x' * n}", "test"))
        if n % 5 == 0:
            examples.append(PreferenceExample(messages, f"good {n}", f"bad {n}", "test"))
    source = Collected(examples, {"kind": "test", "licence": "CC0-1.0"})
    dataset = build_dataset([source], detector=StandIn(), min_examples=1, min_validation=0)
    split_of: dict[str, str] = {}
    for split, kept in dataset.splits.items():
        for ex in kept:
            assert split_of.setdefault(_prompt_key(ex), split) == split
    alone = build_dataset(  # a prompt's split does not depend on the rest of the data
        [Collected(examples[:1], source.source)],
        detector=StandIn(),
        min_examples=1,
        min_validation=0,
    )
    only = next(ex for s in alone.splits.values() for ex in s)
    assert next(s for s, kept in alone.splits.items() if kept) == split_of[_prompt_key(only)]


def test_jsonl_shapes_round_trip_through_save_and_load(tmp_path: Path) -> None:
    rows: list[Any] = [
        *_qa(10),
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Capital of France?"},
                {"role": "assistant", "content": "Paris."},
            ],
            "id": 7,
        },  # unknown keys are ignored
        {"prompt": "Pick a colour", "chosen": "Blue.", "rejected": "I will not."},
        {"prompt": [{"role": "user", "content": "Hello"}], "chosen": "Hi!", "rejected": "What?"},
    ]
    got = from_jsonl(_jsonl(tmp_path / "mixed.jsonl", rows), licence="CC-BY-4.0")
    dataset = build_dataset([got], detector=StandIn(), fractions=(0.5, 0.3, 0.2), min_examples=13)
    folder = dataset.save(tmp_path / "out" / "v1")
    assert sorted(p.name for p in folder.iterdir()) == [
        "card.json",
        "test.jsonl",
        "train.jsonl",
        "validation.jsonl",
    ]
    back = Dataset.load(folder)
    assert back.splits == dataset.splits and back.card == dataset.card
    card = json.loads((folder / "card.json").read_text())
    assert card["sources"][0]["sha256"] == got.source["sha256"]
    assert card["counts"] == {
        s: {
            "supervised": sum(isinstance(e, SupervisedExample) for e in dataset.splits[s]),
            "preference": sum(isinstance(e, PreferenceExample) for e in dataset.splits[s]),
        }
        for s in ds.SPLITS
    }
    assert sum(c["preference"] for c in card["counts"].values()) == 2
    assert card["licence"] == "CC-BY-4.0" and len(card["dataset_sha256"]) == 64
    with pytest.raises(Conflict):
        dataset.save(folder)
    (folder / "test.jsonl").write_text("{}\n")
    with pytest.raises(BadRequest, match="changed after"):
        Dataset.load(folder)


def test_save_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    got = from_jsonl(_jsonl(tmp_path / "qa.jsonl", _qa(30)), licence="CC0-1.0")
    dataset = build_dataset([got], detector=StandIn())
    real = ds._write

    def fail_on_card(path: Path, data: bytes) -> None:
        if path.name == "card.json":
            raise OSError("disk full")
        real(path, data)

    monkeypatch.setattr(ds, "_write", fail_on_card)
    parent = tmp_path / "datasets"
    with pytest.raises(OSError, match="disk full"):
        dataset.save(parent / "v1")
    assert list(parent.iterdir()) == []  # neither the folder nor its staging copy
    monkeypatch.setattr(ds, "_write", real)
    assert Dataset.load(dataset.save(parent / "v1")).card.dataset_sha256 == (
        dataset.card.dataset_sha256
    )


def test_malformed_rows_name_the_file_and_line(tmp_path: Path) -> None:
    rows: list[Any] = [
        *_qa(3),
        '{"prompt": "cut off',
        ["not", "an", "object"],
        {"prompt": "No answer"},
        {"messages": [{"role": "user", "content": "Ends with the user"}]},
        {"prompt": "Same", "chosen": "Yes.", "rejected": " yes. "},
        {"prompt": "Both", "completion": "a", "chosen": "b", "rejected": "c"},
        {"messages": [{"role": "robot", "content": "beep"}, {"role": "assistant", "content": "x"}]},
        *_qa(12)[3:],
    ]
    path = _jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(BadRequest) as caught:
        from_jsonl(path, licence="CC0-1.0")
    message = caught.value.message
    assert "bad.jsonl: 7 of 19 rows are malformed" in message
    assert "line 4: invalid JSON" in message and "line 5: not a JSON object" in message
    assert '{"prompt": "...", "completion": "..."}' in message and "Nothing was loaded" in message
    assert [s["where"] for s in caught.value.details["skipped"]][-1] == "bad.jsonl:10"

    got = from_jsonl(path, licence="CC0-1.0", skip_malformed=True)
    assert len(got.examples) == 12 and got.source["rows"] == 19
    assert got.source["skipped"]["'chosen' and 'rejected' are the same text"] == 1
    assert (
        got.skipped[2].reason
        == "needs a 'completion', or a 'chosen' and a 'rejected' answer (not both)"
    )

    with pytest.raises(BadRequest, match="licence is required"):
        from_jsonl(path, licence="")
    with pytest.raises(NotFound):
        from_jsonl(tmp_path / "missing.jsonl", licence="CC0-1.0")


def test_an_empty_or_tiny_dataset_says_what_it_found_and_needs(tmp_path: Path) -> None:
    empty = from_jsonl(_jsonl(tmp_path / "empty.jsonl", []), licence="CC0-1.0")
    with pytest.raises(
        BadRequest, match=r"the dataset is empty; at least 10 are needed.*empty\.jsonl: 0"
    ):
        build_dataset([empty], detector=StandIn())
    tiny = from_jsonl(_jsonl(tmp_path / "tiny.jsonl", _qa(3)), licence="CC0-1.0")
    with pytest.raises(BadRequest, match="only 3 examples found; at least 10 are needed"):
        build_dataset([tiny, empty], detector=StandIn())
    echoes = from_jsonl(_jsonl(tmp_path / "same.jsonl", _qa(1) * 12), licence="CC0-1.0")
    with pytest.raises(BadRequest, match=r"1 examples remain once 11 duplicates are removed"):
        build_dataset([echoes], detector=StandIn())
    plenty = from_jsonl(_jsonl(tmp_path / "qa.jsonl", _qa(12)), licence="CC0-1.0")
    with pytest.raises(BadRequest, match="the validation split has 0 of 12 examples; at least 1"):
        build_dataset([plenty], detector=StandIn(), fractions=(1.0, 0.0, 0.0))
    with pytest.raises(BadRequest, match="summing to 1"):
        build_dataset([plenty], detector=StandIn(), fractions=(0.8, 0.3, 0.1))


def test_the_cli_builds_a_dataset_from_jsonl(home: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bastion.cli import app

    topics = [
        "printer jams",
        "VPN drops",
        "invoice totals",
        "password resets",
        "laptop battery",
        "calendar invites",
        "badge access",
        "expense approvals",
        "monitor flicker",
        "shared drive quota",
        "phone voicemail",
        "parking permits",
        "holiday requests",
        "coffee machine",
        "wifi in the lobby",
        "payroll dates",
        "desk bookings",
        "software licences",
        "travel booking",
        "new starter kit",
        "printer toner",
        "email signatures",
        "meeting room screens",
        "keyboard layout",
        "security training",
    ]
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "".join(
            json.dumps(
                {
                    "prompt": f"What should I know about {t}?",
                    "completion": f"For {t}, open a ticket with the {t.split()[0]} team.",
                }
            )
            + "\n"
            for t in topics
        )
    )
    runner = CliRunner()
    done = runner.invoke(
        app,
        [
            "tune",
            "dataset",
            "--out",
            str(tmp_path / "ds"),
            "--jsonl",
            str(rows),
            "--license",
            "CC0-1.0",
        ],
    )
    assert done.exit_code == 0, done.output
    card = json.loads(done.stdout)["card"]
    assert card["licence"] == "CC0-1.0" and card["counts"]["train"]["supervised"] > 10
    again = runner.invoke(
        app, ["tune", "dataset", "--out", str(tmp_path / "ds"), "--jsonl", str(rows)]
    )
    assert again.exit_code == 1 and "never overwritten" in again.stderr
    nothing = runner.invoke(app, ["tune", "dataset", "--out", str(tmp_path / "x")])
    assert nothing.exit_code == 1 and "--tenant" in nothing.stderr
