from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.guards import GuardContext, Verdict
from bastion.guards.deny_list import REDACTION, DenyListGuard
from bastion.guards.size_limit import InputSizeGuard
from bastion.pipeline import OutputGuardStream

CTX = GuardContext("t", "chat", "output")


def test_deny_list_matches_whole_phrases_case_insensitively() -> None:
    guard = DenyListGuard(["project nightingale", "acme-secret"])
    verdict = guard.check("What about PROJECT   nightingale and acme-secret?", CTX)
    assert verdict.action == "block"
    assert [f.detail for f in verdict.findings] == ["project   nightingale", "acme-secret"]
    assert guard.check("projects nightingales", CTX).action == "allow"
    assert guard.check("nothing to see", CTX).findings == []


def test_deny_list_redacts_when_asked() -> None:
    verdict = DenyListGuard(["codename x"], "redact").check("the Codename X plan", CTX)
    assert verdict.action == "redact" and verdict.text == f"the {REDACTION} plan"


def test_empty_deny_list_allows_everything() -> None:
    assert DenyListGuard([" "]).check("anything", CTX).action == "allow"


def test_size_guard_counts_the_whole_prompt() -> None:
    guard = InputSizeGuard(10)
    assert guard.check("short", GuardContext("t", "chat", "input", 5)).action == "allow"
    verdict = guard.check("short", GuardContext("t", "chat", "input", 11))
    assert verdict.action == "block" and "11 characters" in verdict.findings[0].detail


def _stream_through(checker: OutputGuardStream, pieces: list[str]) -> str:
    return "".join(checker.feed(p) for p in pieces) + checker.finish()


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.text(alphabet="ab \n", max_size=30),
    suffix=st.text(alphabet="ab \n", max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=80), max_size=8),
)
def test_a_denied_phrase_never_leaks_from_a_stream_however_it_is_split(
    prefix: str, suffix: str, cuts: list[int]
) -> None:
    guard = DenyListGuard(["secret plan"], "redact")
    text = f"{prefix} secret plan {suffix}"
    bounds = sorted({0, len(text), *(c for c in cuts if c < len(text))})
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    checker = OutputGuardStream([guard], CTX, max_holdback=256)
    out = _stream_through(checker, pieces)
    assert "secret plan" not in out and REDACTION in out
    assert out == guard.check(text, CTX).text


def test_a_blocking_guard_stops_the_stream_mid_way() -> None:
    checker = OutputGuardStream([DenyListGuard(["secret plan"])], CTX, max_holdback=256)
    opening = "all fine so far. " * 6
    out = _stream_through(checker, [opening, "the secret ", "plan is x", " and more"])
    assert checker.blocked and out and (opening + "the ").startswith(out)
    assert checker.verdicts["deny_list"].action == "block"


def test_the_holdback_never_exceeds_its_bound() -> None:
    guard = DenyListGuard(["a very long phrase that is denied"])
    checker = OutputGuardStream([guard], CTX, max_holdback=10)
    held = 0
    for _ in range(100):
        held += 1 - len(checker.feed("x"))
        assert held <= 10


class CountingGuard(DenyListGuard):
    calls = 0

    def check(self, text: str, ctx: GuardContext) -> Verdict:
        CountingGuard.calls += 1
        return super().check(text, ctx)


def test_guards_run_per_chunk_not_per_token() -> None:
    checker = OutputGuardStream([CountingGuard(["secret"])], CTX, max_holdback=256)
    out = "".join(checker.feed("ab ") for _ in range(100)) + checker.finish()
    assert out == "ab " * 100
    assert CountingGuard.calls <= 300 // OutputGuardStream.CHUNK + 2
