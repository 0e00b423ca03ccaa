"""Readers for the labelled-data formats the guards are evaluated on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.errors import BadRequest

PII_FORMATS = ("presidio-research", "presidio-tests", "jsonl")


@dataclass(frozen=True)
class GoldSpan:
    start: int
    end: int
    entity_type: str


@dataclass(frozen=True)
class PiiExample:
    text: str
    spans: tuple[GoldSpan, ...]
    entity_types: tuple[str, ...] | None = None  # restricts detection (recognizer tests)


def json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each line of a JSON-lines file, blank lines skipped; an
    unreadable file, or a line that is not a JSON object, is an error naming it."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadRequest(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadRequest(f"{path}:{number} is not valid JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise BadRequest(f"{path}:{number} is not a JSON object")
        yield number, row


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """The objects of a JSON-lines file (see `json_lines`)."""
    return [row for _, row in json_lines(path)]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """All the lines or none: written beside the target, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    partial.replace(path)


def read_pii(path: Path, fmt: str) -> list[PiiExample]:
    """Read PII gold data: presidio-research JSON, Presidio recognizer test cases (JSONL),
    or the project's JSONL (`{"text", "spans": [{"entity_type", "start", "end"}]}`)."""
    if not path.is_file():
        raise BadRequest(f"{path} does not exist")
    try:
        if fmt == "presidio-research":
            return [
                PiiExample(
                    row["full_text"],
                    tuple(
                        GoldSpan(s["start_position"], s["end_position"], s["entity_type"])
                        for s in row["spans"]
                    ),
                )
                for row in json.loads(path.read_text(encoding="utf-8"))
            ]
        if fmt == "presidio-tests":
            return [
                PiiExample(
                    row["text"],
                    tuple(GoldSpan(s, e, row["entity_types"][0]) for s, e in row["expected_spans"]),
                    tuple(row["entity_types"]),
                )
                for row in read_json_lines(path)
                if row.get("entity_types")  # rows testing custom deny lists name no type
            ]
        if fmt == "jsonl":
            return [
                PiiExample(
                    row["text"],
                    tuple(GoldSpan(s["start"], s["end"], s["entity_type"]) for s in row["spans"]),
                )
                for row in read_json_lines(path)
            ]
    except (KeyError, TypeError, IndexError, json.JSONDecodeError) as exc:
        raise BadRequest(f"{path} does not look like {fmt} data (missing {exc})") from None
    raise BadRequest(f"unknown PII format '{fmt}'; use one of {', '.join(PII_FORMATS)}")
