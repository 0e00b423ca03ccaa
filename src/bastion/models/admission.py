"""Bounded admission to a model: a few generate at once, a few wait, the rest get 503."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from bastion.errors import Overloaded


class AdmissionGate:
    """Caps concurrent generations and the queue behind them.

    A full queue is refused at once with Overloaded (the server answers 503 with
    Retry-After) instead of letting clients time out in a queue they cannot see.
    """

    def __init__(
        self, name: str, max_concurrency: int, max_queue: int, wait_s: float = 120.0
    ) -> None:
        self.name = name
        self.max_concurrency = max_concurrency
        self._slots = threading.Semaphore(max_concurrency)
        self._capacity = max_concurrency + max_queue
        self._admitted = 0
        self._lock = threading.Lock()
        self._wait_s = wait_s

    @property
    def in_flight(self) -> int:
        return self._admitted

    @property
    def queued(self) -> int:
        """Admitted requests waiting for a free slot (the rest of `in_flight` generate)."""
        return max(0, self._admitted - self.max_concurrency)

    def admit(self) -> None:
        """Join the queue (or raise Overloaded); call `release` exactly once afterwards."""
        with self._lock:
            if self._admitted >= self._capacity:
                raise Overloaded(f"model '{self.name}' is busy; retry shortly", retry_after=2)
            self._admitted += 1
        if not self._slots.acquire(timeout=self._wait_s):
            with self._lock:
                self._admitted -= 1
            raise Overloaded(
                f"model '{self.name}' queue wait timed out; retry shortly",
                retry_after=5,
            )

    def release(self) -> None:
        self._slots.release()
        with self._lock:
            self._admitted -= 1

    @contextmanager
    def slot(self) -> Iterator[None]:
        self.admit()
        try:
            yield
        finally:
            self.release()
