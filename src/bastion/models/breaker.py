"""A circuit breaker per model: after repeated failures, requests fail fast for a while
instead of each waiting out the timeouts and retries of a server that is down; then one
trial request decides whether the model is back."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

from bastion.errors import BackendError, ModelUnavailable

State = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    """Closed: requests pass and consecutive failures are counted. Open (after `failures` in
    a row): every request is refused at once for `reset_s`. Half-open: one trial request
    passes; its success closes the circuit, its failure opens it again."""

    def __init__(
        self,
        model: str,
        failures: int,
        reset_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self.failures = failures  # 0: never opens
        self.reset_s = reset_s
        self._clock = clock
        self._lock = threading.Lock()
        self._in_a_row = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> State:
        with self._lock:
            return self._state()

    def _state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self.reset_s:
            return "open"
        return "half-open"

    def before(self) -> None:
        """Let a request through, or raise ModelUnavailable while the circuit is open (or
        while another request is the half-open trial)."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return
            if state == "half-open" and not self._trial_running:
                self._trial_running = True
                return
            assert self._opened_at is not None
            wait = max(1, math.ceil(self.reset_s - (self._clock() - self._opened_at)))
        raise ModelUnavailable(
            f"model '{self.model}' is unavailable: it failed {self.failures} times in a row, "
            f"so requests to it are refused for now; retry in {wait} s",
            retry_after=wait,
        )

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Around one call to the model: refused while open; a BackendError counts as a
        failure, success closes the circuit; anything else (the queue full, a client error,
        the client gone) counts neither way."""
        self.before()
        try:
            yield
        except BackendError:
            self.failed()
            raise
        except BaseException:
            with self._lock:
                self._trial_running = False
            raise
        self.succeeded()

    def succeeded(self) -> None:
        with self._lock:
            self._in_a_row, self._opened_at, self._trial_running = 0, None, False

    def failed(self) -> None:
        with self._lock:
            self._in_a_row += 1
            trial = self._trial_running
            self._trial_running = False
            if trial or (self.failures and self._in_a_row >= self.failures):
                self._opened_at = self._clock()
