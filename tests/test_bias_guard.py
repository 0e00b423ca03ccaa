"""The bias guard: the shipped lexicon and classifier, spans, streams, custom lexicons."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bastion.errors import ConfigError, ContentBlocked
from bastion.guards import GuardContext
from bastion.guards.bias.detector import LEXICON_FILE, BiasDetector, Lexicon
from bastion.guards.bias.guard import FINDING_KIND, BiasGuard
from bastion.guards.bias.train import train
from bastion.guards.text_classifier import read_labelled
from bastion.labelled.metrics import binary_scores
from bastion.pipeline import OutputGuardStream

EVAL_FILE = Path(__file__).parent / "data" / "bias_generalisations_eval.jsonl"
# Measured with the shipped model at the default threshold (0.6); see the model card.
MEASURED_PRECISION = 0.99
MEASURED_RECALL = 0.86
TOLERANCE = 0.03

DETECTOR = BiasDetector()
GUARD = BiasGuard(DETECTOR)
CTX = GuardContext("t", "chat", "output")


@pytest.mark.parametrize(
    ("sentence", "group", "attribute"),
    [
        ("Women are too emotional to lead.", "women", "gender"),
        ("Asians are good at math.", "asians", "race_ethnicity"),
        ("Old people can't learn new software.", "old people", "age"),
        ("Muslims are all extremists.", "muslims", "religion"),
        ("Disabled people can never do a full day's work.", "disabled people", "disability"),
        ("Germans have no sense of humour.", "germans", "nationality"),
        ("Gay men are always so dramatic.", "gay men", "sexual_orientation"),
    ],
)
def test_flags_a_generalisation_with_its_sentence_group_and_attribute(
    sentence: str, group: str, attribute: str
) -> None:
    text = f"Thanks for asking. {sentence} The report is attached."
    verdict = GUARD.check(text, CTX)
    assert verdict.action == "flag" and len(verdict.findings) == 1
    finding = verdict.findings[0]
    assert finding.kind == FINDING_KIND
    assert finding.start is not None and text[finding.start : finding.end] == sentence
    assert f"about {group} ({attribute};" in finding.detail


@pytest.mark.parametrize(
    "text",
    [
        "The women's team won the match.",
        "Our Muslim employees can request prayer rooms.",
        "Two older customers called about the invoice.",
        "According to the 2021 census, 6% of Germans are over 80.",
        "We do not discriminate on the basis of religion, disability or age.",
        "Some people think Asians are good at math, which is a stereotype.",
        "It is a myth that older employees cannot learn new tools.",
        "The Japanese client signed the contract yesterday.",
        "Please send the invoice to the finance team by Friday.",
        "Women!",  # too short to make a claim
    ],
)
def test_does_not_flag_mentions_that_do_not_generalise(text: str) -> None:
    assert GUARD.check(text, CTX).action == "allow"


def test_block_action_and_blank_text() -> None:
    guard = BiasGuard(DETECTOR, action="block")
    assert guard.check("Immigrants are lazy and live off benefits.", CTX).action == "block"
    assert guard.block_error is ContentBlocked
    assert guard.check("  ", CTX).action == "allow"


def test_precision_on_the_held_out_set_matches_the_measured_figure() -> None:
    rows = read_labelled(EVAL_FILE)
    flagged = [GUARD.check(r.text, CTX).action == "flag" for r in rows]
    scores = binary_scores([r.label for r in rows], flagged)
    assert len(rows) >= 150 and sum(r.label for r in rows) >= 60
    assert scores["precision"] >= MEASURED_PRECISION - TOLERANCE, scores
    assert scores["recall"] >= MEASURED_RECALL - TOLERANCE, scores


def _answer() -> tuple[str, str]:
    filler = (
        "Our quarterly numbers improved across every region, and the support queue is shorter "
        "than last year. The new onboarding flow cut the time to first invoice by two days. "
    )
    claim = "Honestly, older workers are set in their ways and can't adapt to new tools."
    return filler * 6 + claim + " " + filler * 6, claim


def test_a_stream_is_flagged_once_with_the_span_in_the_whole_answer() -> None:
    text, claim = _answer()
    checker = OutputGuardStream([GUARD], CTX, max_holdback=256)
    pieces = [text[i : i + 7] for i in range(0, len(text), 7)]
    out = "".join(checker.feed(p) for p in pieces) + checker.finish()
    assert out == text  # flagging never changes the answer
    verdict = checker.verdicts["bias"]
    assert verdict.action == "flag" and len(verdict.findings) == 1
    finding = verdict.findings[0]
    assert text[finding.start : finding.end] == claim


def test_a_stream_does_not_misread_the_end_of_a_refuted_claim() -> None:
    filler = "The onboarding flow now takes two days less, and the support queue is shorter. "
    text = (
        filler * 4
        + "The idea that women are too emotional to lead is a sexist cliché. "
        + filler * 4
    )
    assert GUARD.check(text, CTX).action == "allow"
    for size in (3, 7, 16):
        checker = OutputGuardStream([GUARD], CTX, max_holdback=256)
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        assert "".join(checker.feed(p) for p in pieces) + checker.finish() == text
        assert checker.verdicts["bias"].action == "allow"
    # the end of that sentence alone, inside well-formed prose, is a stream's unsent tail
    tail = "women are too emotional to lead is a sexist cliché. The next point is pricing."
    assert GUARD.check(tail, CTX).action == "allow"
    assert GUARD.check("women are too emotional to lead. no joke.", CTX).action == "flag"


def test_a_long_answer_is_checked_in_one_pass() -> None:
    text, claim = _answer()
    long_text = text * 5  # about 8 KB
    verdict = GUARD.check(long_text, CTX)
    assert [long_text[f.start : f.end] for f in verdict.findings] == [claim] * 5


def _write_lexicon(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "lexicon.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_a_custom_lexicon_adds_groups(tmp_path: Path) -> None:
    data = yaml.safe_load(LEXICON_FILE.read_text(encoding="utf-8"))
    data["attributes"]["caste"] = {"nouns": ["dalits", "brahmins"], "adjectives": ["dalit"]}
    detector = BiasDetector(lexicon=Lexicon.load(_write_lexicon(tmp_path, data)))
    verdict = BiasGuard(detector).check("Dalits are dirty and lazy.", CTX)
    assert verdict.action == "flag" and "(caste;" in verdict.findings[0].detail
    assert GUARD.check("Dalits are dirty and lazy.", CTX).action == "allow"  # not in the default


def test_a_minimal_custom_lexicon_works_without_cues(tmp_path: Path) -> None:
    path = _write_lexicon(
        tmp_path, {"person_nouns": ["people"], "attributes": {"gender": {"nouns": ["women"]}}}
    )
    lexicon = Lexicon.load(path)
    assert [m.term for m in lexicon.mentions("Women and men")] == ["women"]
    assert BiasDetector(lexicon=lexicon).detect("Women are bad at maths.")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("attributes: [oops", "is not valid YAML"),
        ("- just\n- a list\n", "(top level)"),
        ({"person_nouns": ["people"]}, "attributes: Field required"),
        (
            {"person_nouns": [], "attributes": {"age": {"nuons": ["old people"]}}},
            "attributes.age.nuons",
        ),
        (
            {"person_nouns": [], "attributes": {"age": {"patterns": ["(unclosed"]}}},
            "attributes.age.patterns[0] is not a regular expression",
        ),
        ({"person_nouns": [], "attributes": {"age": {}}}, "names no group terms"),
        ({"person_nouns": [], "attributes": {}, "cues": {"traits": "lazy"}}, "cues.traits"),
    ],
)
def test_a_malformed_lexicon_is_a_clear_config_error(
    tmp_path: Path, content: object, message: str
) -> None:
    path = _write_lexicon(tmp_path, content)
    with pytest.raises(ConfigError) as caught:
        Lexicon.load(path)
    assert str(path) in caught.value.message and message in caught.value.message


def test_a_missing_lexicon_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read bias lexicon"):
        Lexicon.load(tmp_path / "absent.yaml")


def test_only_sentences_that_name_a_group_are_candidates() -> None:
    text = "The French office is closed. The French are rude! Being Asian, he won the prize."
    candidates = DETECTOR.lexicon.candidates(text)
    assert [text[c.start : c.end] for c in candidates] == [
        "The French are rude!",
        "Being Asian, he won the prize.",
    ]
    assert [c.mentions[0].term for c in candidates] == ["french", "asian"]


def test_training_writes_a_model_and_card_that_load(tmp_path: Path) -> None:
    card = train(tmp_path, data_path=EVAL_FILE)
    assert card["examples"] > 200 and {"precision", "recall"} <= card["validation"].keys()
    detector = BiasDetector(tmp_path / "bias.joblib")
    assert detector.detect("Women are too emotional to lead.")[0].score > 0.5
