"""The toxicity guard: scores input and output; threshold and action per app."""

from __future__ import annotations

from bastion.guards.base import Finding, Guard, GuardContext, Verdict
from bastion.guards.readings import readings
from bastion.guards.toxicity.detector import ToxicityDetector
from bastion.guards.toxicity.plugin import ToxicityAction


class ToxicityGuard(Guard):
    name = "toxicity"
    window_chars = 200  # a stream is judged on its last 200 characters as well

    def __init__(
        self,
        detector: ToxicityDetector,
        threshold: float,
        action: ToxicityAction,
        per_app: dict[str, tuple[float, ToxicityAction]] | None = None,
    ) -> None:
        self.detector = detector
        self.threshold = threshold
        self.action = action
        self.per_app = per_app or {}

    def load(self) -> None:
        self.detector.load()

    def check(self, text: str, ctx: GuardContext) -> Verdict:
        if not text.strip():
            return Verdict(self.name)
        threshold, action = self.per_app.get(ctx.app, (self.threshold, self.action))
        # The worst reading counts: a disguise (base64, l e t t e r s) is undone.
        score, how = max((self.detector.score(r.text), r.how) for r in readings(text))
        if score < threshold:
            return Verdict(self.name, "allow", score)
        detail = f"hateful or toxic language (score {score:.2f})"
        finding = Finding("toxic", detail if how == "as written" else f"{detail}, {how}")
        return Verdict(self.name, action, score, [finding])
