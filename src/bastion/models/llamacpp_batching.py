"""Continuous batching for llama.cpp: the requests to one model are decoded together.

One decode loop per model owns the llama.cpp context. Each step it puts the next token of
every running request, and a chunk of each new prompt, into one `llama_decode` call, then
samples each request's token from its own row of logits. A request joins at the next step
and leaves when it ends, so a new request never waits for another to finish. On a CPU the
weights are read once per step whatever the number of sequences, so eight streams decode
several times faster in total than one (BENCHMARKS.md, "batched decoding").

Each running request holds one of the context's sequences (a slot). A free slot keeps the
tokens its last request left in the KV cache: a new prompt goes to the free slot that
shares its longest start (an app's instructions), and only the rest is evaluated.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import queue
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp import _internals
from llama_cpp._utils import suppress_stdout_stderr

from bastion.errors import BackendError, Overloaded

PROMPT_CHUNK = 256  # prompt tokens one request adds to a step: the others keep streaming
BATCH_TOKENS = 512  # the most tokens one step decodes (llama.cpp's n_batch and n_ubatch)
KV_FULL = "the model's KV cache is full; retry shortly"


@dataclass(frozen=True)
class SampledLogprob:
    """A sampled token's log-probability under the model, and the most likely tokens."""

    logprob: float
    top: tuple[tuple[int, float], ...]  # (token, logprob), most likely first


@dataclass(frozen=True)
class Sampled:
    token: int
    logprob: SampledLogprob | None  # only when the request asked for them
    end: bool  # an end-of-generation token (the template's EOS): the request left


@dataclass(eq=False)
class Decoding:
    """One request being decoded, shared by the thread that reads it and the decode loop."""

    prompt: list[int]
    sampler: Any  # llama_cpp._internals.LlamaSampler, freed when the request leaves
    max_tokens: int
    top_logprobs: int | None  # None: no log-probabilities
    tokens: queue.SimpleQueue[Sampled | BaseException] = field(default_factory=queue.SimpleQueue)
    # Set by the reader (a client gone, a stop sequence seen): the loop drops it next step.
    cancelled: bool = False
    evaluated: int = 0  # prompt tokens in the KV cache (reused or evaluated)
    generated: int = 0
    pending: int | None = None  # the sampled token still to be decoded


@dataclass(eq=False)
class Slot:
    seq_id: int
    cached: list[int] = field(default_factory=list)  # the tokens its KV cache holds
    decoding: Decoding | None = None


@dataclass
class Step:
    """What one `llama_decode` call holds: the slots it adds tokens to, and the batch rows
    whose logits are sampled (the last token of each)."""

    slots: list[Slot] = field(default_factory=list)
    rows: list[tuple[int, Slot]] = field(default_factory=list)
    blocked: list[Slot] = field(default_factory=list)  # prompts short of KV cells


def common_start(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@functools.cache
def _init_backend() -> None:
    """llama.cpp's global initialisation, once per process (as `llama_cpp.Llama` does)."""
    llama_cpp.llama_backend_init()


class DecodeLoop:
    """Decodes every running request of one model together, in a thread of its own."""

    def __init__(
        self,
        model: Any,  # llama_cpp._internals.LlamaModel
        *,
        slots: int,
        kv_tokens: int,
        threads: int | None,
        prefix_cache: bool,
        name: str,
    ) -> None:
        _init_backend()
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = kv_tokens
        params.n_batch = params.n_ubatch = BATCH_TOKENS
        params.n_seq_max = slots
        # One pool of KV cells for all sequences: a long prompt may use what short ones leave.
        params.kv_unified = True
        # As `llama_cpp.Llama`: half the CPUs to generate, all of them for prompts, unless
        # capped (threads that outnumber free cores spin and slow everything down).
        cpus = os.cpu_count() or 1
        params.n_threads = threads or max(cpus // 2, 1)
        params.n_threads_batch = threads or cpus
        self.model = model
        try:
            # as llama_cpp.Llama does: llama.cpp's context report (and its warning that the
            # shared pool is longer than the model's training context: each request's own
            # context is held to context_length) stays off the server's output
            with suppress_stdout_stderr(disable=False):
                self.context = _internals.LlamaContext(model=model, params=params, verbose=False)
        except ValueError as exc:
            raise BackendError(
                f"model '{name}': llama.cpp cannot make a context of {kv_tokens} tokens "
                f"for {slots} sequences ({exc}); lower kv_tokens or parallel"
            ) from exc
        self.kv_tokens = self.context.n_ctx()  # llama.cpp may round it up
        self.n_vocab = model.n_vocab()
        self.prefix_cache = prefix_cache
        self.prompt_tokens_evaluated = 0  # over the loop's life: what the prefix cache saves
        self._batch = _internals.LlamaBatch(n_tokens=BATCH_TOKENS, embd=0, n_seq_max=1)
        self._slots = [Slot(i) for i in range(slots)]
        self._waiting: deque[Decoding] = deque()
        self._inbox: queue.SimpleQueue[Decoding] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"decode-{name}", daemon=True)
        self._thread.start()

    def submit(self, decoding: Decoding) -> None:
        self._inbox.put(decoding)

    # The loop: everything below runs in the decode thread only.

    def _run(self) -> None:
        while True:
            try:
                self._step()
            except Exception as exc:  # a bug must not leave readers waiting forever
                error = BackendError(f"the decode loop failed: {exc!r}")
                for slot in self._slots:
                    if slot.decoding is not None:
                        self._fail(slot, error)
                while self._waiting:
                    self._waiting.popleft().tokens.put(error)

    def _step(self) -> None:
        running = any(s.decoding for s in self._slots)
        self._receive(block=not running and not self._waiting)
        self._leave_cancelled()
        self._assign_slots()
        step = self._fill_batch()
        if not step.slots:
            if step.blocked:  # prompts wait for cells that only they hold: one gives way
                self._fail(step.blocked[-1], Overloaded(KV_FULL))
            return
        status = llama_cpp.llama_decode(self.context.ctx, self._batch.batch)
        if status != 0:
            self._fail_step(step, status)
            return
        for row, slot in step.rows:
            self._sample(row, slot)

    def _receive(self, *, block: bool) -> None:
        if block:
            self._waiting.append(self._inbox.get())
        while True:
            try:
                self._waiting.append(self._inbox.get_nowait())
            except queue.Empty:
                return

    def _leave(self, slot: Slot) -> None:
        """The slot's request is over; its KV cache stays for the next prompt."""
        assert slot.decoding is not None
        slot.decoding.sampler.close()
        slot.decoding = None

    def _leave_cancelled(self) -> None:
        for slot in self._slots:
            if slot.decoding is not None and slot.decoding.cancelled:
                self._leave(slot)
        self._waiting = deque(g for g in self._waiting if not g.cancelled)

    def _assign_slots(self) -> None:
        """Each waiting request, in turn, takes the free slot whose cache shares the
        longest start with its prompt; the cache past that start is dropped."""
        free = [s for s in self._slots if s.decoding is None]
        while free and self._waiting:
            decoding = self._waiting.popleft()
            shared, slot = max(
                ((common_start(s.cached, decoding.prompt), s) for s in free), key=lambda p: p[0]
            )
            free.remove(slot)
            # At least the prompt's last token is evaluated: its logits give the first token.
            keep = min(shared if self.prefix_cache else 0, len(decoding.prompt) - 1)
            self._forget(slot, keep)
            decoding.evaluated = keep
            self.prompt_tokens_evaluated += len(decoding.prompt) - keep
            slot.decoding = decoding

    def _forget(self, slot: Slot, keep: int) -> None:
        """Drop the slot's cached tokens from position `keep` on."""
        llama_cpp.llama_memory_seq_rm(self.context.memory, slot.seq_id, keep, -1)
        del slot.cached[keep:]

    def _room(self, needed: int) -> int:
        """KV cells free for `needed` more tokens, emptying idle slots' caches if short."""
        free = self.kv_tokens - sum(len(s.cached) for s in self._slots)
        for slot in sorted(self._slots, key=lambda s: -len(s.cached)):
            if free >= needed:
                break
            if slot.decoding is None and slot.cached:
                free += len(slot.cached)
                self._forget(slot, 0)
        return free

    def _fill_batch(self) -> Step:
        """One step's tokens: each running request's pending token, then prompt chunks."""
        batch = self._batch.batch
        batch.n_tokens = 0
        step = Step()

        def add(slot: Slot, token: int, logits: bool) -> None:
            row = batch.n_tokens
            batch.token[row], batch.pos[row] = token, len(slot.cached)
            batch.n_seq_id[row], batch.seq_id[row][0] = 1, slot.seq_id
            batch.logits[row] = logits
            batch.n_tokens += 1
            slot.cached.append(token)
            if slot not in step.slots:
                step.slots.append(slot)
            if logits:
                step.rows.append((row, slot))

        running = [s for s in self._slots if s.decoding is not None]
        pending = [s for s in running if s.decoding and s.decoding.pending is not None]
        # Every cell holds a running request's tokens: the youngest gives way to the rest.
        while pending and self._room(len(pending)) < len(pending):
            youngest = min(pending, key=lambda s: s.decoding.generated if s.decoding else 0)
            self._fail(youngest, Overloaded(KV_FULL))
            pending.remove(youngest)
        for slot in pending:
            assert slot.decoding is not None and slot.decoding.pending is not None
            add(slot, slot.decoding.pending, True)
            slot.decoding.pending = None
        for slot in running:
            decoding = slot.decoding
            if decoding is None or decoding.evaluated == len(decoding.prompt):
                continue
            budget = min(PROMPT_CHUNK, BATCH_TOKENS - batch.n_tokens)
            chunk = decoding.prompt[decoding.evaluated : decoding.evaluated + budget]
            if not chunk:
                continue  # the batch is full: its turn comes next step
            if self._room(len(chunk)) < len(chunk):
                step.blocked.append(slot)  # it waits for running requests to end
                continue
            decoding.evaluated += len(chunk)
            done = decoding.evaluated == len(decoding.prompt)
            for i, token in enumerate(chunk):
                add(slot, token, done and i == len(chunk) - 1)
        return step

    def _sample(self, row: int, slot: Slot) -> None:
        decoding = slot.decoding
        assert decoding is not None
        token = llama_cpp.llama_sampler_sample(decoding.sampler.sampler, self.context.ctx, row)
        logprob = None
        if decoding.top_logprobs is not None:
            logprob = self._logprob(row, token, decoding.top_logprobs)
        decoding.generated += 1
        end = bool(llama_cpp.llama_vocab_is_eog(self.model.vocab, token))
        decoding.tokens.put(Sampled(token, logprob, end))
        if end or decoding.generated >= decoding.max_tokens:
            self._leave(slot)
        else:
            decoding.pending = token

    def _logprob(self, row: int, token: int, top: int) -> SampledLogprob:
        pointer = ctypes.cast(
            llama_cpp.llama_get_logits_ith(self.context.ctx, row), ctypes.POINTER(ctypes.c_float)
        )
        logits = np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).astype(np.float64)
        shifted = logits - logits.max()
        logprobs = shifted - math.log(float(np.exp(shifted).sum()))
        # the few likeliest of a vocabulary of up to 150,000, without sorting all of it
        best = np.argpartition(-logprobs, top)[:top]
        best = best[np.argsort(-logprobs[best])]
        return SampledLogprob(
            float(logprobs[token]), tuple((int(t), float(logprobs[t])) for t in best)
        )

    def _fail(self, slot: Slot, error: BaseException) -> None:
        assert slot.decoding is not None
        slot.decoding.tokens.put(error)
        self._leave(slot)
        self._forget(slot, 0)

    def _fail_step(self, step: Step, status: int) -> None:
        """A step llama.cpp refused: the requests in it end with an error, and their
        caches are emptied (what the step added is not in them); the others go on."""
        error: BaseException = (
            Overloaded(KV_FULL)
            if status == 1
            else BackendError(f"llama.cpp failed to decode (status {status})")
        )
        for slot in step.slots:
            self._fail(slot, error)
