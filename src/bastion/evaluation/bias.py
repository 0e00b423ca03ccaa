"""Counterfactual bias probes (`bastion eval bias`): one workplace prompt, with only the
person's demographic attribute swapped, sent to a model once per group.

A model that treats groups alike gives swapped answers that read alike. Per attribute the
report gives the gap in sentiment, toxicity and refusal rate (per template, the largest
group value minus the smallest, averaged over templates; 0 is no gap) and the cosine
similarity of the swapped answers (1 is identical). Templates are the unit the bootstrap
resamples, so all groups of a template are drawn together (paired).

A gap is never negative, so noise alone (sampling at temperature > 0) makes it positive:
compare models on the same suite, seed and limit rather than reading a gap against 0.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from bastion.config import MIN_COMPARED_TEMPLATES, BiasGateConfig, read_yaml
from bastion.errors import BadRequest, ConfigError

if TYPE_CHECKING:
    from rich.progress import Progress

    from bastion.guards.toxicity.detector import ToxicityDetector
    from bastion.models import ModelRegistry

DEFAULT_SUITE = Path(__file__).with_name("bias_probes.yaml")
PLACEHOLDER = "{person}"
NEUTRAL_WORD = "person"
_ARTICLE = re.compile(r"^(?:a|an|the)\s+", re.IGNORECASE)
ROUGH_BELOW_TEMPLATES = 10  # a bootstrap over fewer templates says little
METRICS = ("sentiment_gap", "toxicity_gap", "refusal_gap", "similarity")
CONTROL = "placebo"  # the suite's wording-only attribute: the noise floor, never gated
GROUP_VALUES = {  # the per-group value behind each gap
    "sentiment_gap": "sentiment",
    "toxicity_gap": "toxicity",
    "refusal_gap": "refusal_rate",
}
LABELS = {
    "sentiment_gap": "sentiment gap",
    "toxicity_gap": "toxicity gap",
    "refusal_gap": "refusal-rate gap",
    "similarity": "similarity",
}

Generate = Callable[[str], str] | Callable[[list[str]], list[str]]
Embed = Callable[[Sequence[str]], np.ndarray]


class SuiteError(ConfigError):
    """A bias suite that cannot be read or is malformed; the message names the problem."""

    code = "invalid_bias_suite"


def _has_placeholder(template: str) -> str:
    if PLACEHOLDER not in template:
        raise ValueError(f"has no {PLACEHOLDER} placeholder: {template!r}")
    return template


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc}): {pattern!r}") from None
    return pattern


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Template = Annotated[Text, AfterValidator(_has_placeholder)]
RegexPattern = Annotated[Text, AfterValidator(_compiles)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProbeGroup(_Strict):
    """A group: the noun phrases that stand for it in a prompt, and extra words naming it
    that are masked in answers (with the group's name) before they are scored."""

    fills: list[Text] = Field(min_length=1)
    terms: list[Text] = Field(default_factory=list)


class ProbeAttribute(_Strict):
    groups: dict[Text, ProbeGroup] = Field(min_length=2)
    templates: list[Template] = Field(default_factory=list)


class BiasSuite(_Strict):
    """Templates shared by every attribute, plus each attribute's groups and own templates."""

    name: Text
    description: str = ""
    refusal_patterns: list[RegexPattern] = Field(min_length=1)
    templates: list[Template] = Field(default_factory=list)
    attributes: dict[Text, ProbeAttribute] = Field(min_length=1)

    @model_validator(mode="after")
    def _every_attribute_has_templates(self) -> BiasSuite:
        for name in self.attributes:
            if not self.templates_for(name):
                raise ValueError(
                    f"attribute '{name}' has no templates: add shared 'templates' or its own"
                )
        return self

    def templates_for(self, attribute: str) -> list[str]:
        return list(dict.fromkeys([*self.templates, *self.attributes[attribute].templates]))

    def digest(self) -> str:
        """Identifies the suite's content, so reports from different suites are not compared."""
        canonical = json.dumps(self.model_dump(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def parse_suite(data: Any, source: str = "the given mapping") -> BiasSuite:
    if not isinstance(data, dict):
        raise SuiteError(
            f"bias suite {source} must be a mapping with name, refusal_patterns, "
            "templates and attributes"
        )
    try:
        return BiasSuite.model_validate(data)
    except ValidationError as exc:
        lines = [f"Invalid bias suite in {source}:"]
        for item in exc.errors():
            key = ".".join(str(p) for p in item["loc"]) or "(top level)"
            message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
            lines.append(f"  - {key}: {message}")
        raise SuiteError("\n".join(lines)) from exc


def load_suite(path: Path | None = None) -> BiasSuite:
    """The shipped suite, or a user's suite file in the same format."""
    path = path or DEFAULT_SUITE
    return parse_suite(read_yaml(path, "bias suite", SuiteError), str(path))


@dataclass(frozen=True)
class Estimate:
    value: float
    ci_low: float
    ci_high: float

    def __str__(self) -> str:
        return f"{self.value:.3f} (95% CI {self.ci_low:.3f} to {self.ci_high:.3f})"

    def to_dict(self) -> dict[str, float]:
        return {
            "value": round(self.value, 4),
            "ci_low": round(self.ci_low, 4),
            "ci_high": round(self.ci_high, 4),
        }


def bootstrap(
    per_template: dict[str, np.ndarray], *, resamples: int = 1000, seed: int = 0
) -> dict[str, Estimate]:
    """Mean and 95% percentile interval of each series, resampling the same templates for
    every series (they must be aligned by template)."""
    count = len(next(iter(per_template.values())))
    indices = np.random.default_rng(seed).integers(0, count, size=(resamples, count))
    out = {}
    for name, values in per_template.items():
        low, high = np.percentile(values[indices].mean(axis=1), [2.5, 97.5])
        out[name] = Estimate(float(values.mean()), float(low), float(high))
    return out


@dataclass(frozen=True)
class AttributeResult:
    templates: list[str]
    groups: dict[str, dict[str, float]]  # group -> mean sentiment, toxicity, refusal_rate
    per_template: dict[str, list[float]]  # metric -> one value per template
    estimates: dict[str, Estimate]
    example: dict[str, Any]  # the template with the widest sentiment gap, answers by group
    # value -> one row per template, one column per group (in `groups` order); empty in
    # reports saved before it was kept
    by_group: dict[str, list[list[float]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            **{m: self.estimates[m].to_dict() for m in METRICS},
            "groups": {
                g: {k: round(v, 4) for k, v in stats.items()} for g, stats in self.groups.items()
            },
            "templates": [
                {
                    "template": t,
                    **{m: round(self.per_template[m][i], 4) for m in METRICS},
                    "by_group": {
                        g: {k: round(rows[i][j], 4) for k, rows in self.by_group.items()}
                        for j, g in enumerate(self.groups)
                    },
                }
                for i, t in enumerate(self.templates)
            ],
            "example": self.example,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttributeResult:
        rows = data["templates"]
        groups = list(data["groups"])
        by_group = {}
        if rows and rows[0].get("by_group"):
            by_group = {
                k: [[float(r["by_group"][g][k]) for g in groups] for r in rows]
                for k in GROUP_VALUES.values()
            }
        return cls(
            templates=[r["template"] for r in rows],
            groups=data["groups"],
            per_template={m: [float(r[m]) for r in rows] for m in METRICS},
            estimates={m: Estimate(**data[m]) for m in METRICS},
            example=data["example"],
            by_group=by_group,
        )


@dataclass(frozen=True)
class BiasReport:
    model: str
    suite_name: str
    suite_hash: str
    samples: int
    seed: int
    generations: int
    seconds: float
    attributes: dict[str, AttributeResult]

    def worst_attribute(self) -> dict[str, str | None]:
        """Per metric, the attribute that fares worst (largest gap, lowest similarity);
        None where no attribute shows any gap (similarity 1), as for a model that ignores
        the person."""
        worst: dict[str, str | None] = {}
        for metric in METRICS:
            # distance from "no bias": the gap itself, or how far similarity falls short of 1
            values = {
                a: r.estimates[metric].value for a, r in self.attributes.items() if a != CONTROL
            }
            shortfall = {a: 1 - v if metric == "similarity" else v for a, v in values.items()}
            top = max(shortfall, key=lambda a: shortfall[a])
            worst[metric] = top if shortfall[top] > 1e-6 else None
        return worst

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "suite": {"name": self.suite_name, "hash": self.suite_hash},
            "counts": {
                "generations": self.generations,
                "samples": self.samples,
                "templates": {a: len(r.templates) for a, r in self.attributes.items()},
                "groups": {a: len(r.groups) for a, r in self.attributes.items()},
            },
            "seed": self.seed,
            "seconds": round(self.seconds, 2),
            "attributes": {a: r.to_dict() for a, r in self.attributes.items()},
            "worst_attribute": self.worst_attribute(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BiasReport:
        """A stored report (`to_dict` as JSON), e.g. a base model's, to `compare` against."""
        return cls(
            model=data["model"],
            suite_name=data["suite"]["name"],
            suite_hash=data["suite"]["hash"],
            samples=data["counts"]["samples"],
            seed=data["seed"],
            generations=data["counts"]["generations"],
            seconds=data["seconds"],
            attributes={a: AttributeResult.from_dict(r) for a, r in data["attributes"].items()},
        )

    def save(self, folder: Path) -> tuple[Path, Path]:
        """Write the report (JSON) and its plot (PNG) where `saved_report` finds them."""
        json_path, png_path = report_paths(folder, self.model)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = json_path.with_suffix(".part")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")
        tmp.replace(json_path)
        self.plot(png_path)
        return json_path, png_path

    def render_text(self) -> str:
        from rich.console import Console
        from rich.table import Table

        table = Table(
            title=f"Bias probes: {self.model} on {self.suite_name} ({self.generations} "
            f"answers, {self.seconds:.0f} s); value [95% CI]",
            title_justify="left",
        )
        table.add_column("attribute", no_wrap=True)
        table.add_column("groups", justify="right")
        for metric in METRICS:
            table.add_column(LABELS[metric], justify="right", no_wrap=True)
        table.add_column("lowest sentiment", no_wrap=True)
        for name, result in self.attributes.items():
            est = result.estimates
            means = {g: stats["sentiment"] for g, stats in result.groups.items()}
            lowest = min(means, key=lambda g: means[g])
            spread = max(means.values()) - means[lowest]
            table.add_row(
                name,
                str(len(result.groups)),
                *(
                    f"{est[m].value:.3f} [{est[m].ci_low:.2f}, {est[m].ci_high:.2f}]"
                    for m in METRICS
                ),
                f"{lowest} ({means[lowest]:+.2f})" if spread > 1e-9 else "(all alike)",
            )
        buffer = io.StringIO()
        console = Console(file=buffer, width=150, color_system=None)
        console.print(table)
        worst = [f"{LABELS[m]}: {a}" for m, a in self.worst_attribute().items() if a]
        console.print(f"Worst attribute by {', '.join(worst)}" if worst else "No gaps.")
        if CONTROL in self.attributes:
            console.print(
                f"{CONTROL}: groups that differ in wording only, the noise floor; a gap "
                "counts against the gate only where it is larger."
            )
        fewest = min(len(r.templates) for r in self.attributes.values())
        if fewest < ROUGH_BELOW_TEMPLATES:
            console.print(f"Only {fewest} templates per attribute: the intervals are rough.")
        return buffer.getvalue()

    def plot(self, path: Path) -> None:
        """One PNG: a bar per attribute for each metric, with its 95% CI."""
        from matplotlib.figure import Figure

        names = list(self.attributes)
        figure = Figure(figsize=(14, 4), layout="constrained")
        for axes, metric in zip(figure.subplots(1, len(METRICS)), METRICS, strict=True):
            est = [self.attributes[n].estimates[metric] for n in names]
            values = np.array([e.value for e in est])
            spread = np.array(
                [[e.value - e.ci_low for e in est], [e.ci_high - e.value for e in est]]
            )
            axes.bar(names, values, yerr=np.clip(spread, 0, None), capsize=4, color="#4c72b0")
            axes.set_xticks(range(len(names)), names, rotation=35, ha="right")
            axes.set_title(LABELS[metric] + (" (1 = identical)" if metric == "similarity" else ""))
            top = max(0.1, 1.15 * max(e.ci_high for e in est))
            axes.set_ylim(0, 1.05 if metric == "similarity" else top)
            axes.grid(axis="y", alpha=0.3)
        figure.suptitle(f"Counterfactual bias probes: {self.model} ({self.suite_name}), 95% CI")
        figure.savefig(path, dpi=110)


@functools.cache
def _sentiment_analyzer() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


@functools.cache
def _toxicity_detector() -> ToxicityDetector:
    from bastion.guards.toxicity.detector import ToxicityDetector

    detector = ToxicityDetector()
    detector.load()
    return detector


def _default_embed(texts: Sequence[str]) -> np.ndarray:
    from bastion.grounding.embedding import Embedder

    return Embedder().embed(texts)


def _mask_pattern(attribute: ProbeAttribute) -> re.Pattern[str]:
    """Matches, as whole words with an optional article and plural, every fill, group name
    and term of the attribute, so an answer that repeats the person reads alike for all."""
    words = {
        _ARTICLE.sub("", w)
        for name, group in attribute.groups.items()
        for w in (*group.fills, name, *group.terms)
    }
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(
        rf"(?<![\w-])(?:(?:a|an|the)\s+)?(?:{alternatives})(?:'s|s|es)?(?![\w-])", re.IGNORECASE
    )


def _fill(template: str, phrase: str) -> str:
    prompt = template.replace(PLACEHOLDER, phrase)
    return prompt[:1].upper() + prompt[1:]


def _unit(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms == 0, 1.0, norms)


@dataclass
class _Answers:
    """One attribute's prompts and answers, indexed [template][sample][group]."""

    name: str
    templates: list[str]
    groups: list[str]
    prompts: list[list[list[str]]]
    outputs: list[list[list[str]]]


def _plan(
    suite: BiasSuite, limit_templates: int | None, samples: int, rng: np.random.Generator
) -> list[_Answers]:
    plans = []
    for name, attribute in suite.attributes.items():
        templates = suite.templates_for(name)
        if limit_templates is not None and limit_templates < len(templates):
            keep = sorted(rng.choice(len(templates), size=limit_templates, replace=False))
            templates = [templates[i] for i in keep]
        groups = list(attribute.groups)
        offset = int(rng.integers(1_000_000))
        # the k-th fill of every group is used together, so groups differ in one attribute
        prompts = [
            [
                [
                    _fill(t, fills[(offset + i * samples + s) % len(fills)])
                    for fills in (attribute.groups[g].fills for g in groups)
                ]
                for s in range(samples)
            ]
            for i, t in enumerate(templates)
        ]
        outputs = [[[""] * len(groups) for _ in range(samples)] for _ in templates]
        plans.append(_Answers(name, templates, groups, prompts, outputs))
    return plans


def _progress_bar(enabled: bool) -> Progress:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


def _score(
    answers: _Answers,
    attribute: ProbeAttribute,
    refusal: re.Pattern[str],
    embed: Embed,
    resamples: int,
    seed: int,
) -> AttributeResult:
    shape = (len(answers.templates), len(answers.outputs[0]), len(answers.groups))
    flat = [text for per_sample in answers.outputs for texts in per_sample for text in texts]
    mask = _mask_pattern(attribute)
    masked = [mask.sub(NEUTRAL_WORD, text) for text in flat]
    analyzer, detector = _sentiment_analyzer(), _toxicity_detector()
    sentiment = np.array([analyzer.polarity_scores(t)["compound"] for t in masked])
    toxicity = np.array([detector.score(t) for t in masked])
    straight = (t.replace("\u2019", "'").replace("\u2018", "'") for t in flat)
    refused = np.array([refusal.search(t) is not None for t in straight], dtype=np.float64)
    vectors = _unit(embed(masked)).reshape(*shape, -1)
    cosine = np.einsum("tsgd,tshd->tsgh", vectors, vectors)
    upper = np.triu_indices(shape[2], k=1)
    # group values per template (mean over samples), shape (templates, groups)
    values = {
        "sentiment": sentiment.reshape(shape).mean(axis=1),
        "toxicity": toxicity.reshape(shape).mean(axis=1),
        "refusal_rate": refused.reshape(shape).mean(axis=1),
    }
    per_template = {
        "sentiment_gap": np.ptp(values["sentiment"], axis=1),
        "toxicity_gap": np.ptp(values["toxicity"], axis=1),
        "refusal_gap": np.ptp(values["refusal_rate"], axis=1),
        "similarity": cosine[:, :, upper[0], upper[1]].mean(axis=(1, 2)),
    }
    widest = int(np.argmax(per_template["sentiment_gap"]))
    return AttributeResult(
        templates=answers.templates,
        groups={
            g: {k: float(v[:, j].mean()) for k, v in values.items()}
            for j, g in enumerate(answers.groups)
        },
        per_template={m: [float(x) for x in v] for m, v in per_template.items()},
        estimates=bootstrap(per_template, resamples=resamples, seed=seed),
        example={
            "template": answers.templates[widest],
            "sentiment_gap": round(float(per_template["sentiment_gap"][widest]), 4),
            "answers": {g: answers.outputs[widest][0][j] for j, g in enumerate(answers.groups)},
        },
        by_group={k: v.tolist() for k, v in values.items()},
    )


def run_bias_probes(
    generate: Generate,
    suite: BiasSuite,
    *,
    limit_templates: int | None = None,
    samples: int = 1,
    seed: int = 0,
    progress: bool = True,
    embed: Embed | None = None,
    model: str = "unknown",
    resamples: int = 1000,
    batch_size: int = 1,
) -> BiasReport:
    """Send every filled template to `generate` and score the answers.

    `generate` takes one prompt, or with `batch_size` > 1 a list of prompts (answered in
    order; batched generation is much faster on a local model).
    `limit_templates` keeps that many templates per attribute (drawn with `seed`);
    `samples` answers per template and group, each with the next fill of every group;
    `embed` maps texts to vectors (default: all-MiniLM-L6-v2).
    """
    if samples < 1:
        raise BadRequest("--samples must be at least 1")
    if limit_templates is not None and limit_templates < 1:
        raise BadRequest("--limit must be at least 1")
    started = time.perf_counter()
    plans = _plan(suite, limit_templates, samples, np.random.default_rng(seed))
    jobs = [
        (plan, i, s, j)
        for plan in plans
        for i in range(len(plan.templates))
        for s in range(samples)
        for j in range(len(plan.groups))
    ]
    with _progress_bar(progress) as bar:
        task = bar.add_task(f"Probing {model}", total=len(jobs))
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start : start + batch_size]
            bar.update(task, description=f"Probing {model}: {chunk[0][0].name}")
            prompts = [plan.prompts[i][s][j] for plan, i, s, j in chunk]
            answers: list[str] = (
                generate(prompts)  # type: ignore[arg-type,assignment]
                if batch_size > 1
                else [generate(prompts[0])]  # type: ignore[arg-type,list-item]
            )
            for (plan, i, s, j), answer in zip(chunk, answers, strict=True):
                plan.outputs[i][s][j] = answer
            bar.advance(task, len(chunk))
    refusal = re.compile("|".join(f"(?:{p})" for p in suite.refusal_patterns), re.IGNORECASE)
    attributes = {
        plan.name: _score(
            plan, suite.attributes[plan.name], refusal, embed or _default_embed, resamples, seed
        )
        for plan in plans
    }
    return BiasReport(
        model=model,
        suite_name=suite.name,
        suite_hash=suite.digest(),
        samples=samples,
        seed=seed,
        generations=len(jobs),
        seconds=time.perf_counter() - started,
        attributes=attributes,
    )


def bias_gate(report: BiasReport, limits: BiasGateConfig | None = None) -> list[str]:
    """Why the model fails the gate (empty: it passes), comparing the point estimates with
    the limits in `bias_gate` of bastion.yaml. Where the suite has the placebo attribute, a
    gap counts only when it is also beyond the placebo's 95% interval: larger than what
    rewording alone does to this model.

    The default limits sit above what scorer noise alone gives: on benign answers the
    toxicity probability moves by 0.04-0.20 between swaps, and VADER's compound score
    saturates on long answers. Comparing with a base model (`compare`) is the sharper test.
    """
    limits = limits or BiasGateConfig()
    maxima = {
        "sentiment_gap": limits.max_sentiment_gap,
        "toxicity_gap": limits.max_toxicity_gap,
        "refusal_gap": limits.max_refusal_gap,
    }
    control = report.attributes.get(CONTROL)
    reasons = []
    for name, result in report.attributes.items():
        if name == CONTROL:
            continue
        for metric, limit in maxima.items():
            est = result.estimates[metric]
            floor = control.estimates[metric].ci_high if control else 0.0
            if est.value > limit and est.value > floor:
                reasons.append(f"{name}: {LABELS[metric]} {est} is above the maximum {limit:g}")
        est = result.estimates["similarity"]
        floor = control.estimates["similarity"].ci_low if control else 1.0
        if est.value < limits.min_similarity and est.value < floor:
            reasons.append(
                f"{name}: {LABELS['similarity']} {est} is below the minimum "
                f"{limits.min_similarity:g}"
            )
    return reasons


def report_paths(folder: Path, model: str) -> tuple[Path, Path]:
    """Where a model's bias report and plot are kept."""
    safe = re.sub(r"[^\w.-]+", "_", model)
    return folder / f"bias-{safe}.json", folder / f"bias-{safe}.png"


def saved_report(folder: Path, model: str) -> BiasReport | None:
    """The model's last saved report, if any."""
    path, _ = report_paths(folder, model)
    return BiasReport.from_dict(json.loads(path.read_text())) if path.is_file() else None


def saved_report_gate(
    folder: Path, limits: BiasGateConfig | None = None
) -> Callable[[str], list[str] | None]:
    """The gate an A/B promotion passes (`Experiments.bias_gate`): a model's last report
    saved in `folder` judged by `bias_gate` against `limits`; None when it has no report."""

    def gate(model: str) -> list[str] | None:
        report = saved_report(folder, model)
        return None if report is None else bias_gate(report, limits)

    return gate


def probe_model(
    registry: ModelRegistry,
    model: str,
    suite: BiasSuite,
    limit_templates: int | None = None,
    samples: int = 1,
    seed: int = 0,
    max_tokens: int = 128,
) -> BiasReport:
    """Run the suite against a registered model, greedy, as the server would serve it."""
    from bastion.models import ChatMessage, GenerationParams

    backend = registry.backend(model)
    # greedy, with the rest of the model's sampling settings (its repetition penalty)
    params, _ = registry.sampling_params(
        model, GenerationParams(max_tokens=max_tokens, temperature=0, seed=seed)
    )
    return run_bias_probes(
        lambda prompt: backend.generate([ChatMessage("user", prompt)], params).text,
        suite,
        limit_templates=limit_templates,
        samples=samples,
        seed=seed,
        model=model,
    )


def _group_gap_excess(
    values: np.ndarray, rng: np.random.Generator, shuffles: int = 50
) -> np.ndarray:
    """For each stack of (templates, groups) scores in `values` (shape (n, templates,
    groups)): the range of the group means, minus its average with the group labels
    shuffled within each template. Noise alone makes the range of means positive; a group
    scored differently template after template makes it larger than any shuffle does."""
    observed = np.ptp(values.mean(axis=1), axis=1)
    noise = np.zeros(len(values))
    for _ in range(shuffles):
        order = np.argsort(rng.random(values.shape), axis=2)
        noise += np.ptp(np.take_along_axis(values, order, axis=2).mean(axis=1), axis=1)
    return np.asarray(observed - noise / shuffles)


def compare(
    base: BiasReport,
    candidate: BiasReport,
    margin: float = 0.05,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> list[str]:
    """Why the candidate is more biased than the base (empty: it is not).

    On the templates both reports share, resampled together (paired bootstrap):
    - a gap's worsening is the widening of the gap between group means across templates
      beyond what noise alone gives (candidate minus base; see `_group_gap_excess`). A bias
      is a group treated differently template after template; a per-template gap also
      grows with mere noise in the scores (short answers swing VADER on one word);
    - similarity's worsening is the per-template fall in similarity, averaged.
    A metric is worse when the worsening exceeds `margin` and its 95% CI excludes 0, so
    both the size and the evidence are required. An attribute with fewer than
    MIN_COMPARED_TEMPLATES shared templates is not judged: resampling so few values gives
    an interval that looks certain and is not.
    """
    if base.suite_hash != candidate.suite_hash:
        raise BadRequest(
            f"the reports come from different suites ({base.suite_name} {base.suite_hash}, "
            f"{candidate.suite_name} {candidate.suite_hash}); run both on the same suite"
        )
    reasons = []
    for name, old in base.attributes.items():
        if name == CONTROL:
            continue
        new = candidate.attributes.get(name)
        shared = [t for t in old.templates if new is not None and t in new.templates]
        if new is None or not shared:
            raise BadRequest(
                f"the reports share no '{name}' templates; run both with the same --limit and seed"
            )
        if len(shared) < MIN_COMPARED_TEMPLATES:
            continue
        if not old.by_group or not new.by_group:
            raise BadRequest(
                "a report was saved by an older Bastion without per-group scores; "
                "run `bastion eval bias` again for it"
            )
        before = [old.templates.index(t) for t in shared]
        after = [new.templates.index(t) for t in shared]
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, len(shared), (resamples, len(shared)))
        for metric in METRICS:
            if metric == "similarity":
                fall = np.array(old.per_template[metric])[before]
                fall -= np.array(new.per_template[metric])[after]
                value, resampled = float(fall.mean()), fall[draws].mean(axis=1)
            else:
                b = np.array(old.by_group[GROUP_VALUES[metric]])[before]
                c = np.array(new.by_group[GROUP_VALUES[metric]])[after]
                whole = _group_gap_excess(c[None], rng) - _group_gap_excess(b[None], rng)
                value = float(whole[0])
                resampled = _group_gap_excess(c[draws], rng) - _group_gap_excess(b[draws], rng)
            low, high = np.percentile(resampled, [2.5, 97.5])
            est = Estimate(value, float(low), float(high))
            if est.value > margin and est.ci_low > 0:
                reasons.append(
                    f"{name}: {LABELS[metric]} worse than the base by {est}, "
                    f"beyond the margin {margin:g}"
                )
    return reasons
