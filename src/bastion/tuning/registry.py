"""Fine-tuned models with their lineage, in the platform database; their weights in
`<home>/tuned/<name>/`.

A tuned model is served like any configured one (an adapter on its base's weights, or a full
weights folder) but belongs to the tenant whose data trained it. Registration copies the
weights in first and inserts the row last, so a failure leaves no half-registered model.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bastion.config import ModelConfig
from bastion.errors import BadRequest, Conflict, NotFound
from bastion.storage import Database
from bastion.storage.tables import TunedModel

Status = Literal["accepted", "rejected", "testing"]  # testing: in an A/B experiment
SERVED: tuple[Status, ...] = ("accepted", "testing")  # a rejected candidate is never served
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


@dataclass(frozen=True)
class TunedRecord:
    name: str
    tenant: str
    base_model: str
    method: str
    weights_path: str
    dataset_sha256: str
    lineage: dict[str, Any]
    metrics: dict[str, Any]
    status: Status
    created_by: str
    created_at: str

    def model_config(self) -> ModelConfig:
        """How the registry serves it: the base's settings, this model's weights."""
        base = ModelConfig.model_validate(self.lineage["base_config"])
        full = self.method == "full"
        return base.model_copy(
            update={
                "name": self.name,
                "backend": "local",
                "path": self.weights_path if full else self.lineage["base_path"],
                "adapter": None if full else self.weights_path,
                "tenant": self.tenant,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _record(row: TunedModel) -> TunedRecord:
    return TunedRecord(
        name=row.name,
        tenant=row.tenant_id,
        base_model=row.base_model,
        method=row.method,
        weights_path=row.weights_path,
        dataset_sha256=row.dataset_sha256,
        lineage=dict(row.lineage),
        metrics=dict(row.metrics),
        status=row.status,  # type: ignore[arg-type]
        created_by=row.created_by,
        created_at=row.created_at.isoformat(),
    )


class TunedModels:
    """Register, list and change fine-tuned models."""

    def __init__(self, db: Database, root: Path) -> None:
        self._db = db
        self.root = root

    @staticmethod
    def check_name(name: str) -> None:
        if not NAME.match(name):
            raise BadRequest(
                f"tuned model name {name!r} is not valid: use letters, digits and . _ : - "
                "(at most 128, starting with a letter or digit)"
            )

    def register(
        self,
        *,
        name: str,
        tenant: str,
        base_model: str,
        method: str,
        weights: Path,
        dataset_sha256: str,
        lineage: dict[str, Any],
        metrics: dict[str, Any],
        status: Status,
        created_by: str,
    ) -> TunedRecord:
        """Copy `weights` (an adapter or weights folder) under the registry and record it."""
        self.check_name(name)
        if self.find(name) is not None:
            raise Conflict(f"a tuned model named '{name}' exists; choose another name")
        target = self.root / name
        if target.exists():
            raise Conflict(
                f"{target} exists but no tuned model '{name}' is registered; remove the "
                "folder or choose another name"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=self.root))
        try:
            shutil.copytree(weights, staging, dirs_exist_ok=True)
            staging.rename(target)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise BadRequest(
                f"could not copy the weights of '{name}' into {self.root} "
                f"({exc.strerror or exc}); free space and register again"
            ) from exc
        row = TunedModel(
            name=name,
            tenant_id=tenant,
            base_model=base_model,
            method=method,
            weights_path=str(target),
            dataset_sha256=dataset_sha256,
            lineage=lineage,
            metrics=metrics,
            status=status,
            created_by=created_by,
            created_at=datetime.now(UTC),
        )
        try:
            with self._db.session(write_lock=True) as s:
                s.add(row)
        except BaseException as exc:
            shutil.rmtree(target, ignore_errors=True)
            if isinstance(exc, IntegrityError):
                raise Conflict(f"a tuned model named '{name}' exists; choose another") from exc
            raise
        return _record(row)

    def find(self, name: str) -> TunedRecord | None:
        with self._db.session() as s:
            row = s.scalars(select(TunedModel).where(TunedModel.name == name)).first()
        return None if row is None else _record(row)

    def get(self, name: str, tenant: str | None = None) -> TunedRecord:
        record = self.find(name)
        if record is None or (tenant is not None and record.tenant != tenant):
            raise NotFound(f"no tuned model named '{name}'; `bastion tune list` shows them")
        return record

    def all(self, tenant: str | None = None) -> list[TunedRecord]:
        query = select(TunedModel).order_by(TunedModel.created_at)
        if tenant is not None:
            query = query.where(TunedModel.tenant_id == tenant)
        with self._db.session() as s:
            return [_record(r) for r in s.scalars(query).all()]

    def set_status(self, name: str, status: Status) -> None:
        with self._db.session(write_lock=True) as s:
            row = s.scalars(select(TunedModel).where(TunedModel.name == name)).one()
            row.status = status

    def served(self) -> list[ModelConfig]:
        """The model configs of every tuned model that may be served."""
        with self._db.session() as s:
            rows = s.scalars(select(TunedModel).where(TunedModel.status.in_(SERVED))).all()
        return [_record(r).model_config() for r in rows]
