"""The record of every app run (its input, progress, result or error), and the runner that
starts long runs in the background so a client can poll them."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from bastion.access import Principal
from bastion.errors import NotFound, Overloaded
from bastion.storage import Database
from bastion.storage.tables import AppRunRow

log = logging.getLogger("bastion.apps")
PROGRESS_EVERY_S = 0.5  # a long run writes its progress at most this often
INTERRUPTED = "interrupted: the server stopped during the run; start it again"


class AppRuns:
    """Runs in the metadata database; a person sees their own runs, an admin their tenant's."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def start(
        self, run_id: str, principal: Principal, app: str, model: str | None, data: Any
    ) -> None:
        with self._db.session() as s:
            s.add(
                AppRunRow(
                    id=run_id,
                    tenant_id=principal.tenant,
                    user=principal.user,
                    app=app,
                    model=model,
                    status="running",
                    worker=f"{socket.gethostname()}:{os.getpid()}",
                    input=data,
                    done=0,
                    note="",
                    calls=[],
                    created_at=datetime.now(UTC),
                )
            )

    def progress_writer(self, run_id: str) -> Callable[[int, int | None, str], None]:
        """A progress callback that writes at most every PROGRESS_EVERY_S seconds (and
        always the last step)."""
        last = [0.0]

        def write(done: int, total: int | None, note: str) -> None:
            now = time.monotonic()
            if now - last[0] < PROGRESS_EVERY_S and done != total:
                return
            last[0] = now
            self._set(run_id, done=done, total=total, note=note)

        return write

    def finish(self, run_id: str, output: dict[str, Any], calls: list[str]) -> None:
        self._set(run_id, status="done", output=output, calls=calls, finished_at=datetime.now(UTC))

    def fail(self, run_id: str, error: str, calls: list[str]) -> None:
        self._set(run_id, status="failed", error=error, calls=calls, finished_at=datetime.now(UTC))

    def interrupt_orphans(self) -> int:
        """Mark as failed the runs left `running` by processes of this host that are gone
        (a server that stopped mid-run); other hosts' runs are theirs to judge."""
        host = socket.gethostname()
        with self._db.session() as s:
            rows = s.execute(
                select(AppRunRow.id, AppRunRow.worker).where(AppRunRow.status == "running")
            ).all()
        orphans = [
            run_id
            for run_id, worker in rows
            if worker.rpartition(":")[0] == host and not _alive(int(worker.rpartition(":")[2]))
        ]
        if orphans:
            finished = datetime.now(UTC)
            with self._db.session() as s:
                s.execute(
                    update(AppRunRow)
                    .where(AppRunRow.id.in_(orphans))
                    .values(status="failed", error=INTERRUPTED, finished_at=finished)
                )
        return len(orphans)

    def get(self, run_id: str, principal: Principal, app: str | None = None) -> dict[str, Any]:
        """A run the person may see (their own; an admin: any of their tenant's)."""
        with self._db.session() as s:
            row = s.get(AppRunRow, run_id)
        mine = (
            row is not None
            and row.tenant_id == principal.tenant
            and (row.user == principal.user or principal.is_admin)
        )
        if row is None or not mine or (app is not None and row.app != app):
            raise NotFound(f"no run '{run_id}' of app '{app}' that you may see")
        return _as_dict(row)

    def _set(self, run_id: str, **values: Any) -> None:
        with self._db.session() as s:
            s.execute(update(AppRunRow).where(AppRunRow.id == run_id).values(**values))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        pass
    return True


def _as_dict(row: AppRunRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "app": row.app,
        "user": row.user,
        "model": row.model,
        "status": row.status,
        "progress": {"done": row.done, "total": row.total, "note": row.note},
        "input": row.input,
        "output": row.output,
        "error": row.error,
        "calls": row.calls,
        "created_at": row.created_at.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
    }


class BackgroundRuns:
    """Runs apps in worker threads, at most `workers` at once and `queue` waiting; beyond
    that a new run is refused (503 with Retry-After) rather than piling up."""

    def __init__(self, workers: int = 2, queue: int = 8) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="app-run")
        self._slots = threading.BoundedSemaphore(workers + queue)

    def submit(self, work: Callable[[], Any]) -> None:
        if not self._slots.acquire(blocking=False):
            raise Overloaded("too many app runs in progress; try again shortly", retry_after=5)

        def run() -> None:
            try:
                work()
            except Exception:  # recorded as the run's error by `work`; keep the worker alive
                log.exception("background app run failed")
            finally:
                self._slots.release()

        self._pool.submit(run)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
