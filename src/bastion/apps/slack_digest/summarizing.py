"""The summary, written by the model: the window's threads go to it in batches sized to its
context (each thread one source, so that a poisoned one is withheld alone), each batch
gives a partial summary, and partial summaries are combined, again in batches, until one
is left. Memory holds one batch and the partial summaries, whatever the channel's size.

Every call goes through `run.ask` with the messages as sources (guarded, spotlighted as
data), never as instructions; prompts are short because the embedded model is tiny, and
its answer is used as text, never parsed.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from bastion.apps import AppRun
from bastion.apps.slack_digest.reading import Thread
from bastion.errors import ConfigError

CHARS_PER_TOKEN = 3  # below English's ~4, so that names, ids and numbers still fit
PROMPT_TOKENS = 300  # the instruction and the guards' notes (data rule, canary, grounding)
SOURCE_CHARS = 80  # what marking a source as data adds around it
MIN_BATCH_TOKENS = 200

LEAF_PROMPT = (
    "Summarize the Slack messages from #{channel} in two or three sentences: "
    "what was discussed and what was decided."
)
COMBINE_PROMPT = (
    "The sources summarize consecutive parts of #{channel}. "
    "Write one summary of them in three or four sentences."
)
_CITATION = re.compile(r"\s*\[\d+(?:,\s*\d+)*\]")


@dataclass(frozen=True)
class Budget:
    batch_chars: int  # message text per call
    answer_tokens: int

    @classmethod
    def for_model(cls, context_length: int, batch_tokens: int, answer_tokens: int) -> Budget:
        room = min(batch_tokens, context_length - answer_tokens - PROMPT_TOKENS)
        if room < MIN_BATCH_TOKENS:
            raise ConfigError(
                f"the model's context ({context_length} tokens) leaves {room} for messages; "
                "use a model with a longer context or lower apps[].settings.summary_tokens"
            )
        return cls(room * CHARS_PER_TOKEN, answer_tokens)

    @property
    def fanout(self) -> int:
        """How many partial summaries one combining call takes."""
        return max(2, self.batch_chars // (self.answer_tokens * 4 + SOURCE_CHARS))


@dataclass(frozen=True)
class Part:
    """A thread, or a piece of one too long for a batch, as the model is shown it."""

    thread: Thread
    key: str  # names it in the audit trail and tells which parts the guards withheld
    text: str
    last: bool  # the thread's last part


def parts(thread: Thread, batch_chars: int) -> Iterator[Part]:
    """The thread as one source, or in pieces of whole messages when it is too long."""
    lines = [f"{m.name}: {m.text}"[: batch_chars - SOURCE_CHARS] for m in thread.messages]
    pieces: list[list[str]] = [[]]
    for line in lines:
        if pieces[-1] and sum(len(x) + 1 for x in pieces[-1]) + len(line) > batch_chars:
            pieces.append([])
        pieces[-1].append(line)
    for n, piece in enumerate(pieces):
        key = thread.key if len(pieces) == 1 else f"{thread.key}#{n + 1}"
        yield Part(thread, key, "\n".join(piece), n == len(pieces) - 1)


def batches(threads: Iterable[Thread], budget: Budget) -> Iterator[list[Part]]:
    """Consecutive parts packed into calls of at most `budget.batch_chars`, one at a time."""
    batch: list[Part] = []
    size = 0
    for thread in threads:
        for part in parts(thread, budget.batch_chars - SOURCE_CHARS):
            cost = len(part.text) + SOURCE_CHARS
            if batch and size + cost > budget.batch_chars:
                yield batch
                batch, size = [], 0
            batch.append(part)
            size += cost
    if batch:
        yield batch


def combining_calls(partials: int, fanout: int) -> int:
    """How many calls combining `partials` summaries takes (for the progress total)."""
    calls = 0
    while partials > 1:
        groups = math.ceil(partials / fanout)
        calls += partials // fanout + (1 if partials % fanout > 1 else 0)
        partials = groups
    return calls


def clean(answer: str) -> str:
    return " ".join(_CITATION.sub("", answer).split())


@dataclass
class Summarizer:
    """Asks the model for partial summaries and combines them, `parallel` calls at once
    (from several threads: the counters are kept under a lock)."""

    run: AppRun
    channel: str
    budget: Budget
    total_calls: int
    progress: Callable[[int, int, str], None]
    parallel: int = 1
    calls: int = 0
    blocked: int = 0  # answers the output guards refused
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _ask(
        self, prompt: str, sources: list[tuple[str, str, str]], note: str
    ) -> tuple[str, set[str]]:
        """The model's answer over `sources` (key, title, text), and the keys it was shown."""
        done = self.run.ask(
            "Write the summary.",
            instructions=prompt.format(channel=self.channel),  # the app's own: trusted
            sources=[self.run.material(k, title, text) for k, title, text in sources],
            max_tokens=self.budget.answer_tokens,
        )
        with self._lock:
            self.calls += 1
            self.blocked += done.finish_reason == "content_filter"
            self.progress(self.calls, self.total_calls, note)
        shown = {c["record_id"] for c in done.bastion.get("citations", [])}
        if done.finish_reason == "content_filter" or not shown:
            return "", shown
        return clean(done.text), shown

    def leaf(self, batch: list[Part], note: str) -> tuple[str, set[str]]:
        """A partial summary of one batch, and the keys of the parts the guards let through."""
        sources = [(p.key, f"#{self.channel} thread", p.text) for p in batch]
        return self._ask(LEAF_PROMPT, sources, note)

    def leaves(
        self, numbered: Iterable[tuple[int, list[Part]]], of: int
    ) -> Iterator[tuple[list[Part], str, set[str]]]:
        """Each batch with its partial summary and what the guards let through, in order;
        `parallel` batches are read and asked for at a time (memory stays bounded)."""
        numbered = iter(numbered)
        with ThreadPoolExecutor(self.parallel) as pool:
            while window := list(itertools.islice(numbered, self.parallel)):
                asked = pool.map(
                    lambda nb: self.leaf(nb[1], f"summarizing part {nb[0]} of {of}"), window
                )
                for (_, batch), (text, shown) in zip(window, asked, strict=True):
                    yield batch, text, shown

    def combine(self, partials: list[str]) -> str:
        """One summary of the partial summaries, combined `fanout` at a time."""
        level = 0
        while len(partials) > 1:
            level += 1
            fanout = self.budget.fanout
            groups = [partials[i : i + fanout] for i in range(0, len(partials), fanout)]

            def combined(n: int, group: list[str], level: int = level) -> str:
                if len(group) == 1:
                    return group[0]
                sources = [
                    (f"{self.channel}/summary-{level}-{n}-{i}", "partial summary", text)
                    for i, text in enumerate(group, 1)
                ]
                return self._ask(COMBINE_PROMPT, sources, f"combining summaries ({level})")[0]

            with ThreadPoolExecutor(self.parallel) as pool:
                partials = list(pool.map(combined, range(1, len(groups) + 1), groups))
        return partials[0] if partials else ""
