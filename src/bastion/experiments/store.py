"""Experiments and feedback in the platform database."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bastion.access import Policy, Principal
from bastion.audit import AuditLog
from bastion.config import BastionConfig, ExperimentConfig, ModelConfig
from bastion.errors import BadRequest, Conflict, NotFound, PermissionDenied
from bastion.storage import Database
from bastion.storage.tables import Experiment, Feedback


@dataclass(frozen=True)
class RunningExperiment:
    spec: ExperimentConfig
    salt: str
    stopped_arms: tuple[str, ...]


class ExperimentStore:
    """Create, read and change experiments; the running ones are cached for the hot path."""

    CACHE_SECONDS = 5.0

    def __init__(
        self, db: Database, config: BastionConfig, models: Callable[[], list[ModelConfig]]
    ) -> None:
        self._db = db
        self._config = config
        self._models = models
        self._cache: dict[tuple[str, str], RunningExperiment | None] = {}
        self._cached_at = 0.0
        self._lock = threading.Lock()

    def create(self, spec: ExperimentConfig) -> dict[str, Any]:
        self._validate(spec)
        now = datetime.now(UTC)
        row = Experiment(
            tenant_id=spec.tenant,
            name=spec.name,
            spec=spec.model_dump(mode="json"),
            salt=secrets.token_hex(8),
            status="running",
            stopped_arms={},
            created_at=now,
            updated_at=now,
        )
        try:
            with self._db.session(write_lock=True) as s:
                live = s.scalars(
                    select(Experiment).where(
                        Experiment.tenant_id == spec.tenant, Experiment.status == "running"
                    )
                ).all()
                clash = [e.name for e in live if e.spec.get("app") == spec.app]
                if clash:
                    raise Conflict(
                        f"app '{spec.app}' already runs experiment '{clash[0]}'; stop it first"
                    )
                s.add(row)
        except IntegrityError as exc:
            raise Conflict(f"an experiment named '{spec.name}' exists in {spec.tenant}") from exc
        self.invalidate()
        return _describe(row)

    def _validate(self, spec: ExperimentConfig) -> None:
        app = self._config.app(spec.app)
        if app is None:
            raise NotFound(f"app '{spec.app}' is not configured")
        policy = Policy(self._config.access)
        known = {m.name for m in self._models() if m.usable_by(spec.tenant)}
        for variant in spec.variants:
            model = variant.model or app.model or self._config.resolved_default_model
            if model not in known:
                raise NotFound(
                    f"variant '{variant.name}': model '{model}' is not registered "
                    f"for tenant '{spec.tenant}'"
                )
            for role in ("admin", "developer", "user"):
                probe = Principal(spec.tenant, "probe", role)
                if policy.allows_app(probe, spec.app) and not policy.allows_model(probe, model):
                    raise PermissionDenied(
                        f"variant '{variant.name}' uses model '{model}', which role '{role}' "
                        f"may not use although it may use app '{spec.app}'; extend "
                        f"access.policies.{role}.models or pick another model"
                    )

    def running(self, tenant: str, app: str) -> RunningExperiment | None:
        """The experiment that splits this tenant's app now, if any (cached a few seconds)."""
        now = time.monotonic()
        with self._lock:
            if now - self._cached_at > self.CACHE_SECONDS:
                self._cache = {}
                self._cached_at = now
            key = (tenant, app)
            if key not in self._cache:
                self._cache[key] = self._load_running(tenant, app)
            return self._cache[key]

    def _load_running(self, tenant: str, app: str) -> RunningExperiment | None:
        with self._db.session() as s:
            rows = s.scalars(
                select(Experiment).where(
                    Experiment.tenant_id == tenant, Experiment.status == "running"
                )
            ).all()
        now = datetime.now(UTC).isoformat()
        for row in rows:
            spec = _spec(row)
            if spec.app != app or (spec.start and spec.start > now):
                continue
            if spec.stop and spec.stop <= now:
                continue
            return RunningExperiment(spec, row.salt, tuple(sorted(row.stopped_arms)))
        return None

    def invalidate(self) -> None:
        with self._lock:
            self._cache, self._cached_at = {}, 0.0

    def get(self, tenant: str, name: str) -> tuple[ExperimentConfig, dict[str, Any]]:
        with self._db.session() as s:
            row = _named(s, tenant, name)
        return _spec(row), _describe(row)

    def list(self, tenant: str | None = None) -> list[dict[str, Any]]:
        query = select(Experiment).order_by(Experiment.created_at)
        if tenant is not None:
            query = query.where(Experiment.tenant_id == tenant)
        with self._db.session() as s:
            return [_describe(r) for r in s.scalars(query)]

    def set_status(
        self, tenant: str, name: str, status: str, note: dict[str, Any] | None = None
    ) -> None:
        with self._db.session(write_lock=True) as s:
            row = _named(s, tenant, name)
            if row.status != "running":
                raise Conflict(f"experiment '{name}' is {row.status} already")
            row.status = status
            if note:
                row.spec = {**row.spec, "outcome": note}
            row.updated_at = datetime.now(UTC)
        self.invalidate()

    def stop_arm(self, tenant: str, name: str, arm: str, why: str) -> bool:
        """Stop one arm (a guardrail breach); True when it was still running."""
        with self._db.session(write_lock=True) as s:
            row = _named(s, tenant, name)
            if arm in row.stopped_arms:
                return False
            row.stopped_arms = {**row.stopped_arms, arm: why}
            row.updated_at = datetime.now(UTC)
        self.invalidate()
        return True


def _named(session: Session, tenant: str, name: str) -> Experiment:
    row = session.scalar(
        select(Experiment).where(Experiment.tenant_id == tenant, Experiment.name == name)
    )
    if row is None:
        raise NotFound(f"no experiment '{name}' in tenant '{tenant}'")
    return row


def _spec(row: Experiment) -> ExperimentConfig:
    # The spec column also keeps the outcome once the experiment ends.
    return ExperimentConfig.model_validate({k: v for k, v in row.spec.items() if k != "outcome"})


def _describe(row: Experiment) -> dict[str, Any]:
    return {
        "name": row.name,
        "tenant": row.tenant_id,
        "status": row.status,
        "app": row.spec.get("app"),
        "unit": row.spec.get("unit"),
        "traffic": row.spec.get("traffic"),
        "variants": [v.name for v in _spec(row).variants],
        "stopped_arms": row.stopped_arms,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "outcome": row.spec.get("outcome"),
    }


class FeedbackStore:
    """Ratings of answers, one per trace and person; the same rating again is a no-op."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    def record(
        self,
        principal: Principal,
        trace_id: str,
        *,
        thumbs: int | None = None,
        rating: int | None = None,
        corrected_text: str | None = None,
        comment: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Store feedback; returns it and whether it was new. Only the person who made the
        request, or an admin or reviewer of its tenant, may rate it."""
        if thumbs is None and rating is None and corrected_text is None:
            raise BadRequest("feedback needs a rating, thumbs (up/down) or a corrected text")
        record = self._audit.get(trace_id, principal.tenant)  # another tenant's: 404
        if record.get("user") != principal.user and not principal.may_review:
            raise PermissionDenied(
                "only the person who made the request, or an admin or reviewer, may rate it"
            )
        values = {
            "thumbs": thumbs,
            "rating": rating,
            "corrected_text": corrected_text,
            "comment": comment,
        }
        with self._db.session(write_lock=True) as s:
            existing = s.scalar(
                select(Feedback).where(
                    Feedback.trace_id == trace_id, Feedback.user == principal.user
                )
            )
            if existing is not None:
                if {k: getattr(existing, k) for k in values} != values:
                    raise Conflict(
                        f"feedback on trace '{trace_id}' by '{principal.user}' exists with "
                        "other values; feedback cannot be changed"
                    )
                return _feedback(existing), False
            row = Feedback(
                tenant_id=principal.tenant,
                trace_id=trace_id,
                user=principal.user,
                created_at=datetime.now(UTC),
                **values,
            )
            s.add(row)
        return _feedback(row), True

    def for_traces(
        self, tenant: str, trace_ids: Sequence[str] | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """The tenant's feedback by trace; only on `trace_ids` (a page of answers) if given."""
        query = select(Feedback).where(Feedback.tenant_id == tenant).order_by(Feedback.id)
        if trace_ids is not None:
            query = query.where(Feedback.trace_id.in_(list(trace_ids)))
        with self._db.session() as s:
            rows = s.scalars(query).all()
        out: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            out.setdefault(row.trace_id, []).append(_feedback(row))
        return out


def _feedback(row: Feedback) -> dict[str, Any]:
    return {
        "trace_id": row.trace_id,
        "user": row.user,
        "thumbs": row.thumbs,
        "rating": row.rating,
        "corrected_text": row.corrected_text,
        "comment": row.comment,
        "created_at": row.created_at.isoformat() if row.created_at else None,
    }
