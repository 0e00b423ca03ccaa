"""Fine-tuning datasets: supervised and preference examples from feedback on real traces
and from the user's JSONL files; PII-masked, deduplicated (exact and near) and split by
prompt, with a data card that records counts, sources, licences and a hash for lineage.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import tempfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
from rapidfuzz import fuzz

from bastion.audit.log import AuditLog, canonical_json
from bastion.errors import BadRequest, Conflict, NotFound
from bastion.experiments.store import FeedbackStore
from bastion.grounding.records import Skipped
from bastion.guards.injection.guard import strip_canary_note
from bastion.guards.injection.spotlight import without_boundaries
from bastion.guards.pii.detector import DEFAULT_ENTITIES, PiiDetector, PiiSpan
from bastion.guards.pii.plugin import PiiSettings
from bastion.guards.pii.vault import PLACEHOLDER

Message = dict[str, str]
SPLITS = ("train", "validation", "test")
FORMAT = "bastion-tuning-dataset/1"
ROLES = frozenset({"system", "user", "assistant"})
EXPECTED_ROWS = (
    'one JSON object per line: {"prompt": "...", "completion": "..."}, '
    '{"messages": [{"role": "user", "content": "..."}, ..., {"role": "assistant", '
    '"content": "..."}]} or {"prompt": "...", "chosen": "...", "rejected": "..."}'
)
_LICENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+:-]*")
# Near-duplicate blocking: MinHash over character 5-grams, banded so that only texts that
# share a band are compared (an LSH); pairs below about 0.3 Jaccard rarely meet.
_SHINGLE = 5
_BANDS, _ROWS = 24, 3


@dataclass(frozen=True)
class SupervisedExample:
    """A prompt (chat messages) and the answer the model should learn to give."""

    kind: ClassVar[str] = "supervised"
    prompt: list[Message]
    completion: str
    source: str
    trace_id: str | None = None

    @property
    def answers(self) -> tuple[str, ...]:
        return (self.completion,)

    def with_texts(self, prompt: list[Message], answers: Sequence[str]) -> SupervisedExample:
        return replace(self, prompt=prompt, completion=answers[0])

    def row(self) -> dict[str, Any]:
        """The chat-format row a trainer reads (the answer is the last, assistant message)."""
        answer = {"role": "assistant", "content": self.completion}
        row: dict[str, Any] = {"messages": [*self.prompt, answer], "source": self.source}
        if self.trace_id is not None:
            row["trace_id"] = self.trace_id
        return row


@dataclass(frozen=True)
class PreferenceExample:
    """A prompt with a preferred and a rejected answer (for DPO-style training)."""

    kind: ClassVar[str] = "preference"
    prompt: list[Message]
    chosen: str
    rejected: str
    source: str
    chosen_trace: str | None = None
    rejected_trace: str | None = None

    @property
    def answers(self) -> tuple[str, ...]:
        return (self.chosen, self.rejected)

    def with_texts(self, prompt: list[Message], answers: Sequence[str]) -> PreferenceExample:
        return replace(self, prompt=prompt, chosen=answers[0], rejected=answers[1])

    def row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "prompt": self.prompt,
            "chosen": self.chosen,
            "rejected": self.rejected,
            "source": self.source,
        }
        for key in ("chosen_trace", "rejected_trace"):
            if getattr(self, key) is not None:
                row[key] = getattr(self, key)
        return row


Example = SupervisedExample | PreferenceExample


@dataclass
class Collected:
    """Examples read from one source, what the card records about it, and what was skipped."""

    examples: list[Example]
    source: dict[str, Any]
    skipped: list[Skipped] = field(default_factory=list)


class Detector(Protocol):
    """What masking needs from a PII detector: the project's, or a stand-in in tests."""

    def detect(self, text: str) -> list[PiiSpan]: ...


def pii_detector(config: PiiSettings | None = None) -> PiiDetector:
    """The project's detector, for the types the gateway masks (those its policy only
    reports, such as places and organisations, stay as they are)."""
    pii = config or PiiSettings()
    entities = pii.entities or DEFAULT_ENTITIES
    return PiiDetector(tuple(e for e in entities if pii.actions.get(e) != "allow"), pii.threshold)


# --- feedback -------------------------------------------------------------------------


@dataclass
class _PromptGroup:
    """Answers to one prompt (normalised), to pair accepted with rejected ones."""

    prompt: list[Message]
    chosen: list[tuple[str, str]] = field(default_factory=list)  # (answer, trace id)
    rejected: list[tuple[str, str]] = field(default_factory=list)


def from_feedback(
    audit: AuditLog,
    store: FeedbackStore,
    tenant: str,
    app: str | None = None,
    *,
    min_rating: int = 4,
    max_rejected_rating: int = 2,
    licence: str = "LicenseRef-Internal",
) -> Collected:
    """Examples from a tenant's rated traces (optionally one app's): the answers in `audit`,
    the ratings in `store` (the platform's `experiments.feedback`).

    An accepted answer (thumbs up, or a rating of at least `min_rating`) is a supervised
    example; a corrected text is one too, and wins over the answer it corrects. A rejected
    answer (thumbs down, or a rating of at most `max_rejected_rating`) pairs with an
    accepted answer or correction to the same prompt as a preference example; alone it
    teaches nothing. Every rated trace is counted as used or skipped, with the reason.
    """
    if not 1 <= max_rejected_rating < min_rating <= 5:
        raise BadRequest(
            f"ratings run 1-5 and a rejected rating must be below an accepted one; got "
            f"max_rejected_rating={max_rejected_rating}, min_rating={min_rating}"
        )
    _check_licence(licence)
    feedback = store.for_traces(tenant)
    examples: list[Example] = []
    skipped: list[Skipped] = []
    used: Counter[str] = Counter()
    groups: dict[str, _PromptGroup] = {}
    for record in audit.records(tenant):
        trace = record["trace_id"]
        if trace not in feedback or (app is not None and record["app"] != app):
            continue
        why = _unusable(record)
        if why is not None:
            skipped.append(Skipped(trace, why))
            continue
        prompt = [
            {"role": m["role"], "content": strip_canary_note(m["content"])}
            for m in record["prompt"]
        ]
        items = sorted(feedback[trace], key=lambda f: f["created_at"] or "")
        corrections = [f["corrected_text"] for f in items if (f["corrected_text"] or "").strip()]
        up = any((f["thumbs"] or 0) > 0 or (f["rating"] or 0) >= min_rating for f in items)
        down = any(
            (f["thumbs"] or 0) < 0
            or (f["rating"] is not None and f["rating"] <= max_rejected_rating)
            for f in items
        )
        answer = record.get("response") or ""
        group = groups.setdefault(_prompt_text(prompt, system=True), _PromptGroup(prompt))
        if corrections:
            examples.append(SupervisedExample(prompt, corrections[-1], "feedback:corrected", trace))
            used["corrected"] += 1
            group.chosen.append((corrections[-1], trace))
            if down and not up and answer.strip():
                group.rejected.append((answer, trace))
        elif up and down:
            skipped.append(Skipped(trace, "conflicting feedback (accepted and rejected)"))
        elif (up or down) and not answer.strip():
            skipped.append(Skipped(trace, "empty answer"))
        elif up:
            examples.append(SupervisedExample(prompt, answer, "feedback:accepted", trace))
            used["accepted"] += 1
            group.chosen.append((answer, trace))
        elif down:
            group.rejected.append((answer, trace))
        else:
            skipped.append(Skipped(trace, "neither accepted nor rejected (middling rating)"))
    for group in groups.values():
        for n, (bad, bad_trace) in enumerate(group.rejected):
            ring = group.chosen[n:] + group.chosen[:n]  # spread the pairs over the good answers
            partner = next((c for c in ring if _norm(c[0]) != _norm(bad)), None)
            if partner is None:
                reason = "rejected, with no accepted answer to the same prompt to pair it with"
                if group.chosen:
                    reason = "rejected answer is the same text as the accepted one"
                skipped.append(Skipped(bad_trace, reason))
                continue
            good, good_trace = partner
            examples.append(
                PreferenceExample(
                    group.prompt, good, bad, "feedback:preference", good_trace, bad_trace
                )
            )
            used["preference"] += 1
    described = {
        "kind": "feedback",
        "tenant": tenant,
        "app": app,
        "licence": licence,
        "examples": len(examples),
        "used": dict(used),
        "skipped": dict(Counter(s.reason for s in skipped)),
    }
    return Collected(examples, described, skipped)


def _unusable(record: dict[str, Any]) -> str | None:
    """Why a rated trace cannot become an example, if it cannot."""
    if record.get("prompt") is None:
        if record.get("prompt_sha256"):
            return "text not retained (audit.retain_text is false)"
        return "no prompt recorded"
    if record.get("status") != "ok":
        return f"request {record.get('status')}: not answered"
    if any(v.get("stage") == "output" and v.get("action") == "block" for v in record["verdicts"]):
        return "answer blocked by an output guard"
    return None


# --- files ----------------------------------------------------------------------------


class _Malformed(ValueError):
    """A row that is not one of the accepted shapes; the message says what is wrong."""


def from_jsonl(path: Path | str, *, licence: str, skip_malformed: bool = False) -> Collected:
    """Examples from a JSONL file (see EXPECTED_ROWS); `licence` is the data's SPDX id.

    A malformed row stops the load, naming the file and lines, and nothing is loaded;
    with `skip_malformed` such rows are skipped and reported instead, as ingest does.
    """
    _check_licence(licence)
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"no dataset file at {path}")
    digest = hashlib.sha256()
    examples: list[Example] = []
    skipped: list[Skipped] = []
    rows = 0
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            digest.update(raw)
            if not raw.strip():
                continue
            rows += 1
            try:
                example = _parse_row(_json_object(raw))
            except _Malformed as exc:
                skipped.append(Skipped(f"{path.name}:{n}", str(exc)))
                continue
            examples.append(replace(example, source=f"file:{path.name}"))
    if skipped and not skip_malformed:
        first = "; ".join(f"line {s.where.rsplit(':', 1)[1]}: {s.reason}" for s in skipped[:3])
        raise BadRequest(
            f"{path}: {len(skipped)} of {rows} rows are malformed ({first}). Expected "
            f"{EXPECTED_ROWS}. Nothing was loaded: fix the rows, or skip them",
            details={"skipped": [{"where": s.where, "reason": s.reason} for s in skipped]},
        )
    described = {
        "kind": "jsonl",
        "file": str(path),
        "sha256": digest.hexdigest(),
        "licence": licence,
        "rows": rows,
        "examples": len(examples),
        "skipped": dict(Counter(s.reason for s in skipped)),
    }
    return Collected(examples, described, skipped)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        row = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _Malformed("not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise _Malformed(f"invalid JSON ({exc.msg})") from exc
    if not isinstance(row, dict):
        raise _Malformed("not a JSON object")
    return row


def _parse_row(row: dict[str, Any]) -> Example:
    """An example (with an empty source) from a row of one of the accepted shapes."""
    if "messages" in row:
        messages = _messages(row["messages"], "messages")
        if messages[-1]["role"] != "assistant" or len(messages) < 2:
            raise _Malformed("'messages' must end with the assistant's answer, after a prompt")
        return SupervisedExample(
            _prompt(messages[:-1]), _text(messages[-1]["content"], "the answer"), ""
        )
    if "prompt" not in row:
        raise _Malformed("no 'prompt' or 'messages'")
    prompt = _prompt(row["prompt"])
    if "completion" in row and "chosen" not in row and "rejected" not in row:
        return SupervisedExample(prompt, _text(row["completion"], "completion"), "")
    if "chosen" in row and "rejected" in row and "completion" not in row:
        chosen, rejected = _text(row["chosen"], "chosen"), _text(row["rejected"], "rejected")
        if _norm(chosen) == _norm(rejected):
            raise _Malformed("'chosen' and 'rejected' are the same text")
        return PreferenceExample(prompt, chosen, rejected, "")
    raise _Malformed("needs a 'completion', or a 'chosen' and a 'rejected' answer (not both)")


def _prompt(value: Any) -> list[Message]:
    if isinstance(value, str):
        return [{"role": "user", "content": _text(value, "prompt")}]
    messages = _messages(value, "prompt")
    if not any(m["role"] == "user" for m in messages):
        raise _Malformed("the prompt has no user message")
    return messages


def _messages(value: Any, name: str) -> list[Message]:
    if not isinstance(value, list) or not value:
        raise _Malformed(f"'{name}' must be a non-empty list of messages")
    out = []
    for n, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise _Malformed(f"{name}[{n}] needs a role of {', '.join(sorted(ROLES))}")
        out.append({"role": m["role"], "content": _text(m.get("content"), f"{name}[{n}].content")})
    return out


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Malformed(f"'{name}' must be a non-empty string")
    return value


def _check_licence(licence: str) -> None:
    if not isinstance(licence, str) or not _LICENCE.fullmatch(licence):
        raise BadRequest(
            "a licence is required, as an SPDX identifier such as 'CC-BY-4.0', or "
            f"'LicenseRef-Internal' for data of your own; got {licence!r}"
        )


# --- masking, deduplication, splitting ------------------------------------------------


class _Masker:
    """Typed placeholders, numbered per example in reading order and continuing after any
    the texts already hold (the PII guard masked those before the audit saw them)."""

    def __init__(self, detector: Detector) -> None:
        self._detector = detector
        self._spans: dict[str, list[PiiSpan]] = {}  # repeated texts are detected once
        self.masked: Counter[str] = Counter()

    def example(self, ex: Example) -> Example:
        texts = [*(m["content"] for m in ex.prompt), *ex.answers]
        found = [self._find(text) for text in texts]
        # A value found in one text is masked wherever it recurs in the example, also where
        # the detector missed it (NER often does, out of context).
        values = sorted(
            {
                (s.entity_type, t[s.start : s.end])
                for t, f in zip(texts, found, strict=True)
                for s in f
            }
        )
        numbers: Counter[str] = Counter()
        for text in texts:
            for held in PLACEHOLDER.finditer(text):
                numbers[held.group(1)] = max(numbers[held.group(1)], int(held.group(2)))
        names: dict[tuple[str, str], str] = {}

        def mask(text: str, spans: list[PiiSpan]) -> str:
            out, last = [], 0
            for span in sorted(spans, key=lambda s: (s.start, s.start - s.end)):
                if span.start < last:
                    continue
                key = (span.entity_type, " ".join(text[span.start : span.end].split()).casefold())
                if key not in names:
                    numbers[span.entity_type] += 1
                    names[key] = f"<{span.entity_type}_{numbers[span.entity_type]}>"
                self.masked[span.entity_type] += 1
                out += [text[last : span.start], names[key]]
                last = span.end
            return "".join(out) + text[last:]

        done = [mask(t, [*f, *_recurring(t, values)]) for t, f in zip(texts, found, strict=True)]
        cut = len(ex.prompt)
        prompt = [{**m, "content": text} for m, text in zip(ex.prompt, done[:cut], strict=True)]
        return ex.with_texts(prompt, done[cut:])

    def _find(self, text: str) -> list[PiiSpan]:
        if text not in self._spans:
            self._spans[text] = [s for s in self._detector.detect(text) if not _held(text, s)]
        return self._spans[text]


def _recurring(text: str, values: list[tuple[str, str]]) -> Iterator[PiiSpan]:
    for entity_type, value in values:
        for m in re.finditer(rf"(?<!\w){re.escape(value)}(?!\w)", text, re.IGNORECASE):
            span = PiiSpan(entity_type, m.start(), m.end(), 1.0)
            if not _held(text, span):
                yield span


def _held(text: str, span: PiiSpan) -> bool:
    """Whether the span lies inside a placeholder (masked already)."""
    return any(m.start() <= span.start and span.end <= m.end() for m in PLACEHOLDER.finditer(text))


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def _prompt_text(prompt: list[Message], *, system: bool) -> str:
    """The prompt, normalised, with or without its system messages."""
    turns = (m for m in prompt if system or m["role"] != "system")
    return "\n".join(f"{m['role']}: {_norm(without_boundaries(m['content']))}" for m in turns)


def _split_of(ex: Example, fractions: tuple[float, float, float]) -> str:
    """A stable hash of the prompt's turns (the app's system prompt aside) picks the split,
    so every example of one prompt lands in the same split, run after run."""
    key = _prompt_text(ex.prompt, system=False).encode("utf-8")
    point = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64
    if point < fractions[0]:
        return "train"
    return "validation" if point < fractions[0] + fractions[1] else "test"


def _dedupe(examples: list[Example], threshold: float) -> tuple[list[Example], int, int]:
    """The examples without exact duplicates (after normalising case and whitespace) and
    near ones (token-sorted similarity of prompt and answers >= threshold, compared
    within a kind); the first of each is kept. Returns them and the two counts removed."""
    seen: set[tuple[str, ...]] = set()
    unique: list[Example] = []
    for ex in examples:
        key = (ex.kind, _prompt_text(ex.prompt, system=True), *map(_norm, ex.answers))
        if key not in seen:
            seen.add(key)
            unique.append(ex)
    dropped: set[int] = set()
    for kind in (SupervisedExample.kind, PreferenceExample.kind):
        where = [i for i, ex in enumerate(unique) if ex.kind == kind]
        texts = [
            "\n".join(
                [_prompt_text(unique[i].prompt, system=False), *map(_norm, unique[i].answers)]
            )
            for i in where
        ]
        dropped.update(where[i] for i in _near_duplicates(texts, threshold))
    kept = [ex for i, ex in enumerate(unique) if i not in dropped]
    return kept, len(examples) - len(unique), len(dropped)


def _near_duplicates(texts: list[str], threshold: float) -> set[int]:
    """Positions of texts similar enough to an earlier text that is kept."""
    earlier: dict[int, list[int]] = defaultdict(list)
    for i, j in _candidate_pairs(texts):
        if fuzz.token_sort_ratio(texts[i], texts[j], score_cutoff=threshold * 100):
            earlier[j].append(i)
    dropped: set[int] = set()
    for j in sorted(earlier):
        if any(i not in dropped for i in earlier[j]):
            dropped.add(j)
    return dropped


def _candidate_pairs(texts: list[str]) -> Iterator[tuple[int, int]]:
    """Pairs (i < j) that share a MinHash band: likely similar, so worth comparing. Keeps
    near-duplicate search near-linear instead of comparing every pair."""
    rng = np.random.default_rng(0)
    size = _BANDS * _ROWS
    a = rng.integers(1, 2**63, size=size, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, size=size, dtype=np.uint64)
    buckets: dict[tuple[int, bytes], list[int]] = defaultdict(list)
    for i, text in enumerate(texts):
        grams = {text[k : k + _SHINGLE] for k in range(max(1, len(text) - _SHINGLE + 1))}
        x = np.fromiter((zlib.crc32(g.encode("utf-8")) for g in grams), np.uint64, len(grams))
        signature = ((a[:, None] * x[None, :] + b[:, None]) >> np.uint64(32)).min(axis=1)
        for band in range(_BANDS):
            rows = signature[band * _ROWS : (band + 1) * _ROWS]
            buckets[(band, rows.tobytes())].append(i)
    pairs: set[tuple[int, int]] = set()
    for members in buckets.values():
        pairs.update(itertools.combinations(members, 2))
    yield from sorted(pairs)


# --- the dataset ----------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetCard:
    """What a dataset holds and where it came from; `dataset_sha256` names it in lineage."""

    dataset_sha256: str
    licence: str  # an SPDX expression over the sources' licences
    counts: dict[str, dict[str, int]]  # split -> kind -> examples
    sources: list[dict[str, Any]]
    pii_masked: dict[str, int]  # entity type -> values masked
    duplicates_removed: dict[str, int]  # exact, near
    near_duplicate_threshold: float
    split: dict[str, float]
    files: dict[str, str]  # file name -> sha256
    created_at: str
    format: str = FORMAT

    @property
    def examples(self) -> int:
        return sum(sum(kinds.values()) for kinds in self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetCard:
        try:
            card = cls(**data)
        except TypeError as exc:
            raise BadRequest(f"card.json is not a Bastion dataset card ({exc})") from exc
        if card.format != FORMAT:
            raise BadRequest(f"card.json has format '{card.format}'; this Bastion reads {FORMAT}")
        return card


@dataclass(frozen=True)
class Dataset:
    """The examples of each split, and their card."""

    splits: dict[str, list[Example]]
    card: DatasetCard

    def save(self, folder: Path | str) -> Path:
        """Write train/validation/test.jsonl and card.json into a new folder, all or
        nothing: they go to a temporary folder beside it, renamed into place at the end."""
        folder = Path(folder)
        if folder.exists():
            raise Conflict(f"{folder} exists; a saved dataset is never overwritten")
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            for name in SPLITS:
                _write(staging / f"{name}.jsonl", _render(self.splits[name]))
            card = json.dumps(self.card.to_dict(), indent=2, ensure_ascii=False) + "\n"
            _write(staging / "card.json", card.encode("utf-8"))
            try:
                os.rename(staging, folder)
            except OSError as exc:  # it appeared meanwhile
                raise Conflict(f"{folder} exists; a saved dataset is never overwritten") from exc
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return folder

    @classmethod
    def load(cls, folder: Path | str) -> Dataset:
        """A saved dataset, its files checked against the hashes in its card."""
        folder = Path(folder)
        if not (folder / "card.json").is_file():
            raise NotFound(f"no dataset at {folder} (card.json is missing)")
        try:
            card = DatasetCard.from_dict(json.loads((folder / "card.json").read_text("utf-8")))
        except json.JSONDecodeError as exc:
            raise BadRequest(f"{folder / 'card.json'} is not valid JSON ({exc.msg})") from exc
        splits: dict[str, list[Example]] = {}
        for name in SPLITS:
            data = (folder / f"{name}.jsonl").read_bytes()
            if hashlib.sha256(data).hexdigest() != card.files.get(f"{name}.jsonl"):
                raise BadRequest(f"{folder / name}.jsonl was changed after the dataset was saved")
            splits[name] = [_saved_example(json.loads(line)) for line in data.splitlines()]
        return cls(splits, card)


def _saved_example(row: dict[str, Any]) -> Example:
    provenance = ("source", "trace_id", "chosen_trace", "rejected_trace")
    return replace(_parse_row(row), **{k: row[k] for k in provenance if k in row})


def _render(examples: list[Example]) -> bytes:
    return "".join(canonical_json(ex.row()) + "\n" for ex in examples).encode("utf-8")


def _write(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def build_dataset(
    sources: Sequence[Collected],
    *,
    detector: Detector | None = None,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    near_duplicate: float = 0.9,
    min_examples: int = 10,
    min_validation: int = 1,
) -> Dataset:
    """Mask PII in every text, remove duplicates, split by prompt and describe the result.

    `detector` defaults to the project's (`pii_detector()`); `fractions` are train,
    validation and test. Too few examples, overall or in validation, is a BadRequest that
    says how many were found and how many are needed.
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-9:
        raise BadRequest(f"split fractions must be three shares summing to 1; got {fractions}")
    if not 0 < near_duplicate <= 1:
        raise BadRequest(f"near_duplicate is a similarity in (0, 1]; got {near_duplicate}")
    found = [ex for c in sources for ex in c.examples]
    if len(found) < min_examples:
        raise BadRequest(
            f"{'the dataset is empty' if not found else f'only {len(found)} examples found'}; "
            f"at least {min_examples} are needed. Sources: {_summary(sources)}",
            details={"sources": [c.source for c in sources]},
        )
    masker = _Masker(detector or pii_detector())
    examples, exact, near = _dedupe([masker.example(ex) for ex in found], near_duplicate)
    if len(examples) < min_examples:
        raise BadRequest(
            f"{len(examples)} examples remain once {exact + near} duplicates are removed "
            f"({exact} exact, {near} near); at least {min_examples} are needed"
        )
    splits: dict[str, list[Example]] = {name: [] for name in SPLITS}
    for ex in examples:
        splits[_split_of(ex, fractions)].append(ex)
    if len(splits["validation"]) < min_validation:
        raise BadRequest(
            f"the validation split has {len(splits['validation'])} of {len(examples)} examples; "
            f"at least {min_validation} needed: add examples (with other prompts) or raise "
            f"the validation share (now {fractions[1]:g})"
        )
    files = {f"{name}.jsonl": hashlib.sha256(_render(splits[name])).hexdigest() for name in SPLITS}
    lineage = "".join(f"{name} {digest}\n" for name, digest in files.items())
    kinds = (SupervisedExample.kind, PreferenceExample.kind)
    card = DatasetCard(
        dataset_sha256=hashlib.sha256(lineage.encode("utf-8")).hexdigest(),
        licence=" AND ".join(sorted({c.source["licence"] for c in sources})),
        counts={
            name: {kind: sum(ex.kind == kind for ex in splits[name]) for kind in kinds}
            for name in SPLITS
        },
        sources=[c.source for c in sources],
        pii_masked=dict(sorted(masker.masked.items())),
        duplicates_removed={"exact": exact, "near": near},
        near_duplicate_threshold=near_duplicate,
        split=dict(zip(SPLITS, fractions, strict=True)),
        files=files,
        created_at=datetime.now(UTC).isoformat(),
    )
    return Dataset(splits, card)


def _summary(sources: Sequence[Collected]) -> str:
    parts = []
    for c in sources:
        s = c.source
        name = {"jsonl": f"file {s.get('file')}", "feedback": f"feedback of {s.get('tenant')}"}
        where = name.get(s["kind"], s["kind"]) + (f"/{s['app']}" if s.get("app") else "")
        reasons = Counter(skip.reason for skip in c.skipped)
        why = ", ".join(f"{n} {reason}" for reason, n in reasons.items())
        parts.append(f"{where}: {len(c.examples)}" + (f" (skipped: {why})" if why else ""))
    return "; ".join(parts) or "none given"
