"""A running fine-tune's progress, kept beside its job (`progress.json`) so the console can
show who runs what and how far it is, without importing torch or touching the job."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PROGRESS_FILE = "progress.json"
# A job that wrote nothing for this long was most likely stopped (killed, or the machine
# went down): `bastion tune run --resume` continues it from its last checkpoint.
STALE_AFTER = timedelta(minutes=10)


@dataclass
class JobProgress:
    name: str
    tenant: str
    user: str
    base_model: str
    method: str
    started_at: str
    updated_at: str = ""
    step: int = 0
    total_steps: int = 0
    train_loss: float | None = None
    best_val_loss: float | None = None
    seconds: float = 0.0
    curve: list[dict[str, float | None]] = field(default_factory=list)

    @property
    def stale(self) -> bool:
        updated = datetime.fromisoformat(self.updated_at or self.started_at)
        return datetime.now(UTC) - updated > STALE_AFTER

    def save(self, job_dir: Path) -> None:
        """Replace the file in one rename, so a reader never sees half of it."""
        self.updated_at = datetime.now(UTC).isoformat(timespec="seconds")
        job_dir.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=job_dir, prefix=".progress-")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(asdict(self), out)
        os.replace(temporary, job_dir / PROGRESS_FILE)

    def step_done(self, job_dir: Path, metrics: Any) -> None:
        """Record one optimizer step (a train.StepMetrics)."""
        self.step, self.total_steps = metrics.step, metrics.total_steps
        self.train_loss, self.best_val_loss = metrics.train_loss, metrics.best_val_loss
        self.seconds = metrics.seconds
        self.curve.append(
            {"step": metrics.step, "train_loss": metrics.train_loss, "val_loss": metrics.val_loss}
        )
        self.save(job_dir)


def running_jobs(home: Path, tenant: str) -> list[JobProgress]:
    """The tenant's fine-tunes under `home/tuning` that have not finished, newest first
    (a finished job's folder is removed once its model is registered)."""
    found = []
    for path in sorted((home / "tuning").glob(f"*/{PROGRESS_FILE}")):
        try:
            job = JobProgress(**json.loads(path.read_text("utf-8")))
        except (OSError, ValueError, TypeError):
            continue  # being replaced, or not ours to read
        if job.tenant == tenant:
            found.append(job)
    return sorted(found, key=lambda j: j.started_at, reverse=True)
