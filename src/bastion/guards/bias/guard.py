"""The bias guard: flags (or blocks) sentences of a model's answer that generalise about a
protected group, naming the sentence, the group and the attribute."""

from __future__ import annotations

from bastion.guards.base import Finding, Guard, GuardContext, Verdict
from bastion.guards.bias.detector import BiasDetector, sentence_spans
from bastion.guards.bias.plugin import BiasAction

FINDING_KIND = "bias_generalisation"


class BiasGuard(Guard):
    name = "bias"
    # Judged per sentence: a stream holds back enough to see a long sentence whole.
    window_chars = 400

    def __init__(
        self, detector: BiasDetector, threshold: float = 0.6, action: BiasAction = "flag"
    ) -> None:
        self.detector = detector
        self.threshold = threshold
        self.action = action

    def load(self) -> None:
        self.detector.load()

    def check(self, text: str, ctx: GuardContext) -> Verdict:
        if not text.strip():
            return Verdict(self.name, stage=ctx.stage)
        tail = _streamed_tail(text)
        scored = [g for g in self.detector.detect(text) if g.start >= tail]
        score = max((g.score for g in scored), default=0.0)
        findings = [
            Finding(
                FINDING_KIND,
                f"generalisation about {g.group} ({g.attribute}; score {g.score:.2f})",
                g.start,
                g.end,
            )
            for g in scored
            if g.score >= self.threshold
        ]
        if not findings:
            return Verdict(self.name, "allow", score, stage=ctx.stage)
        return Verdict(self.name, self.action, score, findings, stage=ctx.stage)


def _streamed_tail(text: str) -> int:
    """Where the first sentence ends when `text` opens mid-sentence inside otherwise
    well-formed prose, else 0. That is the unsent end of a streamed sentence whose start
    has gone out: the sentence was judged whole on an earlier pass (a flagged one is held
    back whole), and its end alone ("women are too emotional ... is a sexist cliché", the
    start "The idea that" sent) would be misread."""
    spans = sentence_spans(text)
    if len(spans) < 2 or not text[spans[0][0]].islower():
        return 0
    well_formed = all(text[s].isupper() or not text[s].isalpha() for s, _ in spans[1:])
    return spans[0][1] if well_formed else 0
