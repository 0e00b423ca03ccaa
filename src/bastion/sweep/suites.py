"""Suites: what a sweep measures candidates on, as YAML files an admin writes.

An app suite runs an application over labelled cases, the file `bastion eval app` reads,
and takes one of the app's own scores as the quality:

    name: segments
    kind: app
    app: segment
    data: requests.jsonl        # relative to this file
    quality: exact              # a score the app's scorer gives
    as: acme/alice              # who runs the cases (default: --as)

A task suite is a prompt template over JSONL rows with a metric:

    name: dialogue-summaries
    kind: task
    data: dialogsum.jsonl
    prompt: "Summarize the dialogue:\\n{dialogue}"
    reference: summary          # the row's field the answer is scored against
    metric: rouge_l             # rouge_l, exact_match, f1 or json_valid (no reference)
    app: chat                   # the app whose guards and policy the requests go through
    max_tokens: 96
    limit: 50                   # the first rows only
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bastion.errors import BadRequest
from bastion.labelled.datasets import json_lines
from bastion.labelled.metrics import rouge


class _Suite(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    data: Path
    limit: int | None = Field(None, ge=1)
    folder: Path = Path(".")  # the suite file's, which `data` is relative to

    @property
    def data_path(self) -> Path:
        return self.data if self.data.is_absolute() else self.folder / self.data

    def rows(self) -> list[dict[str, Any]]:
        """The data's JSON lines (the first `limit`); a bad line is an error naming it."""
        rows = []
        for _, row in json_lines(self.data_path):
            rows.append(row)
            if self.limit is not None and len(rows) >= self.limit:
                break
        if not rows:
            raise BadRequest(f"suite {self.name}: {self.data_path} holds no rows")
        return rows


class AppSuite(_Suite):
    kind: Literal["app"]
    app: str
    quality: str = Field(description="The app's score to rank candidates by.")
    as_user: str | None = Field(None, alias="as", description="TENANT/USER running the cases.")


class TaskSuite(_Suite):
    kind: Literal["task"]
    prompt: str = Field(min_length=1)
    reference: str | None = None
    metric: Literal["rouge_l", "exact_match", "f1", "json_valid"]
    app: str = "chat"
    max_tokens: int = Field(256, ge=1, le=8192)

    @model_validator(mode="after")
    def _reference_when_scored(self) -> TaskSuite:
        if self.metric != "json_valid" and not self.reference:
            raise ValueError(f"metric {self.metric} needs `reference`: the row's answer field")
        return self

    def request_text(self, row: dict[str, Any]) -> str:
        try:
            return self.prompt.format_map(row)
        except KeyError as exc:
            raise BadRequest(
                f"suite {self.name}: a row has no field {exc} for the prompt"
            ) from None

    def score(self, answer: str, row: dict[str, Any]) -> float:
        if self.metric == "json_valid":
            return float(_is_json(answer))
        assert self.reference is not None
        reference = str(row.get(self.reference, ""))
        if self.metric == "exact_match":
            return float(_normal(answer) == _normal(reference))
        if self.metric == "f1":
            return _token_f1(answer, reference)
        return rouge(answer, reference, ("rougeL",))["rougeL"]


Suite = Annotated[AppSuite | TaskSuite, Field(discriminator="kind")]


class _SuiteFile(BaseModel):
    suite: Suite


def load_suite(path: Path) -> AppSuite | TaskSuite:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadRequest(f"cannot read the suite {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise BadRequest(f"{path} is not YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise BadRequest(f"{path} must hold a mapping (name, kind, data, ...)")
    try:
        suite = _SuiteFile.model_validate({"suite": {**raw, "folder": path.parent}}).suite
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'suite'}: {e['msg']}" for e in exc.errors()
        )
        raise BadRequest(f"suite {path}: {problems}") from None
    return suite


def _normal(text: str) -> str:
    """Lower case, no punctuation, articles or extra spaces (SQuAD's normalisation)."""
    text = "".join(c for c in text.lower() if c not in string.punctuation)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def _token_f1(answer: str, reference: str) -> float:
    said, wanted = _normal(answer).split(), _normal(reference).split()
    common = sum((Counter(said) & Counter(wanted)).values())
    if not said or not wanted or not common:
        return float(said == wanted)
    precision, recall = common / len(said), common / len(wanted)
    return 2 * precision * recall / (precision + recall)


def _is_json(answer: str) -> bool:
    try:
        json.loads(answer)
    except json.JSONDecodeError:
        return False
    return True
