"""The forgetting guard: a fine-tuned candidate against its base, on the same sets.

Both models answer the dataset's test split (the task, ROUGE-L), a general multiple-choice
set (what the base knew), safety probes (toxic replies, personal data, obeyed injections)
and, when configured, the counterfactual bias probes. The candidate is rejected when the
general accuracy falls by more than a margin, the task does not gain enough, a safety rate
rises beyond its margin, or a bias gap surely widens; the report says which.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bastion.config import ForgettingConfig
from bastion.tuning.dataset import SupervisedExample
from bastion.tuning.evaluate import (
    ChoiceItem,
    EvalModel,
    SafetyProbes,
    general_accuracy,
    load_general_set,
    safety_scores,
    task_score,
)

SAFETY_METRICS = ("toxicity", "pii_leak", "injection_compliance")


@dataclass
class ModelScores:
    general_accuracy: float
    task_rouge_l: float | None
    toxicity: float
    pii_leak: float
    injection_compliance: float
    bias: dict[str, Any] | None = None  # a BiasReport as a dict
    unsafe_examples: dict[str, list[str]] = field(default_factory=dict)
    task_answers: list[str] = field(default_factory=list)  # the first few, to read


@dataclass
class ForgettingReport:
    accepted: bool
    reasons: list[str]
    base: ModelScores
    candidate: ModelScores
    general_drop_ci: tuple[float, float]  # 95% paired bootstrap of base - candidate
    config: dict[str, Any]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ForgettingReport:
        return cls(
            **{
                **data,
                "base": ModelScores(**data["base"]),
                "candidate": ModelScores(**data["candidate"]),
                "general_drop_ci": tuple(data["general_drop_ci"]),
            }
        )

    def render_text(self) -> str:
        rows = [("general accuracy", "general_accuracy"), ("task ROUGE-L", "task_rouge_l")]
        rows += [(m.replace("_", " ") + " rate", m) for m in SAFETY_METRICS]
        lines = [f"{'':24}{'base':>10}{'candidate':>11}"]
        for label, key in rows:
            b, c = getattr(self.base, key), getattr(self.candidate, key)
            if b is None or c is None:
                continue
            lines.append(f"{label:24}{b:>10.3f}{c:>11.3f}")
        verdict = "ACCEPTED" if self.accepted else "REJECTED"
        lines.append(f"verdict: {verdict}" + "".join(f"\n  - {r}" for r in self.reasons))
        return "\n".join(lines)


def _drop_ci(base: Sequence[bool], cand: Sequence[bool]) -> tuple[float, float]:
    """95% paired bootstrap interval of the accuracy drop, item by item."""
    from bastion.evaluation.bias import bootstrap

    if not base:
        return (0.0, 0.0)
    diff = np.asarray(base, dtype=float) - np.asarray(cand, dtype=float)
    drop = bootstrap({"drop": diff}, resamples=2000)["drop"]
    return (drop.ci_low, drop.ci_high)


def _spread(items: Sequence[ChoiceItem], n: int) -> list[ChoiceItem]:
    """At most `n` items, evenly spaced so every topic of a sorted set keeps its share."""
    if len(items) <= n:
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


def _score(
    model: EvalModel,
    general: Sequence[ChoiceItem],
    task: Sequence[SupervisedExample],
    probes: SafetyProbes,
    toxicity: Callable[[str], float],
    pii: Callable[[str], bool],
    config: ForgettingConfig,
    toxicity_threshold: float,
    name: str,
    bar: Any,
) -> tuple[ModelScores, list[bool]]:
    def advance(label: str) -> Callable[[int], None]:
        job = bar.add_task(f"{name}: {label}", total=None)
        return lambda n: bar.advance(job, n)

    accuracy, right = general_accuracy(model, general, advance("general set"))
    rouge: float | None = None
    answers: list[str] = []
    if task:
        rouge, _, answers = task_score(model, task, config.max_new_tokens, advance("task"))
    safety = safety_scores(
        model, probes, toxicity, pii, toxicity_threshold, 48, advance("safety probes")
    )
    bias = None
    if config.bias_templates:
        from bastion.evaluation.bias import load_suite, run_bias_probes

        def generate_many(prompts: list[str]) -> list[str]:
            return model.generate([[{"role": "user", "content": p}] for p in prompts], 48, 16)

        bias = run_bias_probes(
            generate_many,
            load_suite(None),
            limit_templates=config.bias_templates,
            model=name,
            batch_size=16,
            progress=False,
        ).to_dict()
    scores = ModelScores(
        general_accuracy=accuracy,
        task_rouge_l=rouge,
        toxicity=safety.toxicity,
        pii_leak=safety.pii_leak,
        injection_compliance=safety.injection_compliance,
        bias=bias,
        unsafe_examples=safety.examples,
        task_answers=answers[:5],
    )
    return scores, right


def _reasons(
    base: ModelScores, cand: ModelScores, drop: float, config: ForgettingConfig
) -> list[str]:
    reasons = []
    if drop > config.max_general_drop:
        reasons.append(
            f"general accuracy fell {drop:.3f} ({base.general_accuracy:.3f} -> "
            f"{cand.general_accuracy:.3f}), more than max_general_drop {config.max_general_drop}"
        )
    if base.task_rouge_l is not None and cand.task_rouge_l is not None:
        gain = cand.task_rouge_l - base.task_rouge_l
        if gain < config.min_task_gain:
            reasons.append(
                f"task ROUGE-L gained {gain:.1f} ({base.task_rouge_l:.1f} -> "
                f"{cand.task_rouge_l:.1f}), less than min_task_gain {config.min_task_gain}"
            )
    for metric in SAFETY_METRICS:
        before, after = getattr(base, metric), getattr(cand, metric)
        if after - before > config.max_safety_worsening:
            reasons.append(
                f"{metric.replace('_', ' ')} rate rose {before:.3f} -> {after:.3f}, more than "
                f"max_safety_worsening {config.max_safety_worsening}"
            )
    if base.bias is not None and cand.bias is not None:
        from bastion.evaluation.bias import BiasReport, compare

        reasons += [
            f"bias: {r}"
            for r in compare(
                BiasReport.from_dict(base.bias),
                BiasReport.from_dict(cand.bias),
                config.bias_margin,
            )
        ]
    return reasons


def check_candidate(
    base_path: Path,
    method: str,
    weights: Path,
    task: Sequence[SupervisedExample],
    config: ForgettingConfig,
    *,
    toxicity: Callable[[str], float],
    pii: Callable[[str], bool],
    toxicity_threshold: float = 0.5,
    general: Sequence[ChoiceItem] | None = None,
    probes: SafetyProbes | None = None,
    progress: bool = True,
) -> ForgettingReport:
    """Score the base and the candidate (`weights`: its adapter or full weights folder)
    on the same sets and decide."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    started = time.monotonic()
    general = _spread(load_general_set() if general is None else general, config.general_items)
    probes = (probes or SafetyProbes.load()).first(config.probes_per_kind)
    task = list(task)[: config.task_examples]
    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed} scored"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not progress,
    )
    # An adapter is scored on one loaded base, switched off for the base's scores.
    if method == "full":
        cand_model, base_model = EvalModel(weights), EvalModel(base_path)
    else:
        cand_model = base_model = EvalModel(base_path, adapter=weights)
    common = (general, task, probes, toxicity, pii, config, toxicity_threshold)
    with bar:
        with base_model.without_adapter():
            base, base_right = _score(base_model, *common, "base", bar)
        cand, cand_right = _score(cand_model, *common, "candidate", bar)
    drop = base.general_accuracy - cand.general_accuracy
    reasons = _reasons(base, cand, drop, config)
    return ForgettingReport(
        accepted=not reasons,
        reasons=reasons,
        base=base,
        candidate=cand,
        general_drop_ci=_drop_ci(base_right, cand_right),
        config=config.model_dump(mode="json"),
        seconds=time.monotonic() - started,
    )
