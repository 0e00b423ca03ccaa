"""Public summarization data as Slack channels, to score the digest's summary with ROUGE.

A dialogue of DialogSum (`{"fname", "dialogue", "summary"}`, turns as `#Person1#: ...`) or a
meeting of QMSum (`{"meeting_transcripts": [{"speaker", "content"}], "general_query_list":
[{"query", "answer"}]}`, the reference being the answer to its general query, which asks for
the whole meeting)
becomes a channel whose messages are its turns, one speaker one Slack user, written as an
export that `slack-digest --export` reads. Its case expects `{"summary": reference}`, which
`scoring.case_scores` scores with ROUGE-1, ROUGE-2 and ROUGE-L (F1, Porter-stemmed, as the
datasets' papers report).

The lead baseline (`lead`) is the channel's first messages up to as many words as the
median reference: what a summary that only reads the start scores.

    python -m bastion.apps.slack_digest.summaries BASTION_HOME READER DATA.jsonl [LIMIT]

writes the exports under BASTION_HOME/exports/summaries and prints the cases file's path.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bastion.apps.slack_digest.scoring import LabelledChannel, channel_from_json, write_cases
from bastion.errors import BadRequest
from bastion.labelled.datasets import json_lines

START = datetime(2026, 1, 5, 9, 0)  # the first message; the rest follow TURN_GAP apart
TURN_GAP = timedelta(seconds=10)
_DIALOGSUM_TURN = re.compile(r"^#(?P<speaker>[^#]+)#:\s*(?P<text>.*)$")


@dataclass(frozen=True)
class SummaryCase:
    """A channel made from one dialogue or meeting, and its reference summary."""

    channel: LabelledChannel
    reference: str


def read_summaries(path: Path, limit: int | None = None) -> list[SummaryCase]:
    """The first `limit` rows of a DialogSum or QMSum file as channels."""
    cases: list[SummaryCase] = []
    for n, row in json_lines(path):
        if limit is not None and len(cases) >= limit:
            break
        if "dialogue" in row and "summary" in row:
            turns = _dialogsum_turns(row["dialogue"])
            name, reference = f"dialogsum-{row.get('fname', n)}".replace("_", "-"), row["summary"]
        elif "meeting_transcripts" in row:
            turns = [(t["speaker"], t["content"]) for t in row["meeting_transcripts"]]
            name, reference = f"qmsum-{n}", _whole_meeting_answer(row, path, n)
        else:
            raise BadRequest(
                f"{path}:{n} is neither DialogSum (dialogue, summary) nor QMSum "
                "(meeting_transcripts, general_query_list)"
            )
        cases.append(SummaryCase(_as_channel(name, turns), reference))
    return cases


def _dialogsum_turns(dialogue: str) -> list[tuple[str, str]]:
    turns: list[tuple[str, str]] = []
    for line in dialogue.splitlines():
        found = _DIALOGSUM_TURN.match(line.strip())
        if found:
            turns.append((found["speaker"], found["text"]))
        elif turns and line.strip():  # a turn that runs over lines
            turns[-1] = (turns[-1][0], f"{turns[-1][1]} {line.strip()}")
    return turns


def _whole_meeting_answer(row: dict[str, Any], path: Path, n: int) -> str:
    """QMSum's general query asks for the whole meeting ("Summarize the whole meeting.",
    "Summarize the meeting", "What were the topics talked about?"): its answer."""
    general = row.get("general_query_list") or []
    if not general:
        raise BadRequest(f"{path}:{n} has no general query (a summary of the whole meeting)")
    return str(general[0]["answer"])


def _as_channel(name: str, turns: Sequence[tuple[str, str]]) -> LabelledChannel:
    speakers = list(dict.fromkeys(speaker for speaker, _ in turns))
    ids = {s: f"U{i:03d}" for i, s in enumerate(speakers, 1)}
    users = [
        {"id": ids[s], "name": re.sub(r"\W+", "-", s.lower()).strip("-") or ids[s], "real_name": s}
        for s in speakers
    ]
    messages = [
        {"id": f"m{i}", "at": (START + i * TURN_GAP).isoformat(), "user": ids[s], "text": text}
        for i, (s, text) in enumerate(turns)
        if text.strip()
    ]
    gold: dict[str, list[Any]] = {"decisions": [], "action_items": [], "open_questions": []}
    return channel_from_json({"channel": name, "users": users, "messages": messages, "gold": gold})


def transcript(channel: LabelledChannel) -> list[str]:
    """The channel's messages as the model is shown them ("Name: text")."""
    names = {u["id"]: u["real_name"] for u in channel.users}
    return [f"{names[m['user']]}: {m['text']}" for m in channel.messages]


def lead(channel: LabelledChannel, words: int) -> str:
    """The first messages, up to `words` words (at least one message)."""
    taken: list[str] = []
    for line in transcript(channel):
        if taken and sum(len(t.split()) for t in taken) >= words:
            break
        taken.append(line)
    return " ".join(taken)


def median_words(cases: Iterable[SummaryCase]) -> int:
    return round(statistics.median(len(c.reference.split()) for c in cases))


def summary_cases(cases: Sequence[SummaryCase], folder: Path, reader: str) -> list[dict[str, Any]]:
    """Each channel as an export under `folder` (with `reader` a member) and its case for
    `bastion eval app slack-digest`, expecting the reference summary."""
    references = {c.channel.name: c.reference for c in cases}
    return write_cases(
        [c.channel for c in cases], folder, reader, lambda ch: {"summary": references[ch.name]}
    )


def main(argv: list[str]) -> None:
    if len(argv) not in (3, 4):
        raise SystemExit(
            "usage: python -m bastion.apps.slack_digest.summaries BASTION_HOME READER DATA.jsonl "
            "[LIMIT]"
        )
    home, reader, data = Path(argv[0]).expanduser(), argv[1], Path(argv[2])
    limit = int(argv[3]) if len(argv) == 4 else None
    folder = home / "exports" / "summaries" / data.stem
    rows = summary_cases(read_summaries(data, limit), folder, reader)
    path = folder / "cases.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
