"""The relational schema. Alembic migrations in `migrations/` create and evolve it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    salt: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditRecord(Base):
    __tablename__ = "audit_records"
    __table_args__ = tuple(
        Index(f"ix_audit_records_tenant_{column}", "tenant_id", column)
        for column in ("user_name", "app", "model", "status", "verdict", "created_at")
    )

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
    )
    trace_id: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[str] = mapped_column(String(40))
    tenant_id: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    body: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # Copies of body fields that searches filter and sum on; `verify` checks they agree.
    user_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    app: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    verdict: Mapped[str | None] = mapped_column(String(8), nullable=True)  # strictest action
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)


class AuditHead(Base):
    """The chain's last seq and hash, updated in the same transaction as each append.

    Keeping the head apart from the records lets `verify` notice a truncated tail,
    and gives several replicas one row to lock while they append.
    """

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class GroundingRecord(Base):
    """One harmonized record from a company source: what the index is built from.

    `content_hash` covers everything that reaches the index, so re-ingesting an unchanged
    record is a no-op and a changed one is re-embedded.
    """

    __tablename__ = "grounding_records"
    __table_args__ = (UniqueConstraint("tenant_id", "source", "source_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(String(64))
    source_id: Mapped[str] = mapped_column(String(256))
    entity: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    fields: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    acl: Mapped[list[str]] = mapped_column(JSON, default=list)
    content_hash: Mapped[str] = mapped_column(String(64))
    contact_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Experiment(Base):
    """An A/B experiment: its spec (ExperimentConfig as JSON), state and assignment salt."""

    __tablename__ = "experiments"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, object]] = mapped_column(JSON)
    salt: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # running, stopped, promoted
    stopped_arms: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # arm -> why
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Feedback(Base):
    """A person's rating of one answer; at most one per trace and user."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("trace_id", "user"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    trace_id: Mapped[str] = mapped_column(String(64), index=True)
    user: Mapped[str] = mapped_column(String(128))
    thumbs: Mapped[int | None] = mapped_column(Integer, nullable=True)  # +1 / -1
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 1-5
    corrected_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TunedModel(Base):
    """A fine-tuned model: where its weights are, what it was made from, how it scored."""

    __tablename__ = "tuned_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)  # whose data trained it
    base_model: Mapped[str] = mapped_column(String(128))  # the registered model it tunes
    method: Mapped[str] = mapped_column(String(16))
    weights_path: Mapped[str] = mapped_column(Text)  # adapter folder, or full weights folder
    dataset_sha256: Mapped[str] = mapped_column(String(64))
    lineage: Mapped[dict[str, object]] = mapped_column(JSON)  # base, data card, config, search
    metrics: Mapped[dict[str, object]] = mapped_column(JSON)  # training and evaluation report
    status: Mapped[str] = mapped_column(String(16))  # accepted, rejected, testing
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AppRunRow(Base):
    """One run of an application: who started it, its input, progress and result. Each of
    its model calls has an audit record that names the run (`extra.app_run`)."""

    __tablename__ = "app_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the run id
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    user: Mapped[str] = mapped_column(String(128))
    app: Mapped[str] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)  # None: the app's
    status: Mapped[str] = mapped_column(String(16))  # running, done, failed
    worker: Mapped[str] = mapped_column(String(160))  # host:pid of the process running it
    input: Mapped[dict[str, object]] = mapped_column(JSON)
    output: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    done: Mapped[int] = mapped_column(Integer, default=0)  # progress: steps done
    total: Mapped[int | None] = mapped_column(Integer, nullable=True)  # steps in all, if known
    note: Mapped[str] = mapped_column(Text, default="")  # what it is doing
    calls: Mapped[list[str]] = mapped_column(JSON, default=list)  # trace ids of model calls
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SavedSegment(Base):
    """One version of a saved segment: the request, its specification and explanation.
    A name's versions are numbered from 1; a run that gives the same specification again
    reuses the latest version rather than adding one."""

    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("tenant_id", "name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    query: Mapped[str] = mapped_column(Text)  # the request in plain words
    spec: Mapped[dict[str, object]] = mapped_column(JSON)
    explanation: Mapped[str] = mapped_column(Text)
    as_of: Mapped[str] = mapped_column(String(10))  # the date its time windows count from
    count: Mapped[int] = mapped_column(Integer)  # members its author could see then
    created_by: Mapped[str] = mapped_column(String(128))
    run_id: Mapped[str] = mapped_column(String(32))  # the app run that made it
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Campaign(Base):
    """A campaign: a brief sent to a saved segment's members, one email each."""

    __tablename__ = "campaigns"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(64))
    segment: Mapped[str] = mapped_column(String(64))
    segment_version: Mapped[int] = mapped_column(Integer)
    brief: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CampaignEmail(Base):
    """One member's email of a campaign: drafted (or skipped, and why), then reviewed.
    A run that stops half-way resumes after the last email it recorded."""

    __tablename__ = "campaign_emails"
    __table_args__ = (UniqueConstraint("campaign_id", "contact_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    contact_id: Mapped[str] = mapped_column(String(32))
    address: Mapped[str | None] = mapped_column(String(256), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # draft, skipped, approved, rejected, edited
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)  # why skipped
    subject: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    facts: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    checks: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    trace_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # its model call
    run_id: Mapped[str] = mapped_column(String(32))
    reviewer: Mapped[str | None] = mapped_column(String(128), nullable=True)
    review_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class UsageCounter(Base):
    """Requests and tokens of one API key or tenant in one window (a minute or a day)."""

    __tablename__ = "usage_counters"

    scope: Mapped[str] = mapped_column(String(8), primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    window: Mapped[str] = mapped_column(String(8), primary_key=True)
    start: Mapped[str] = mapped_column(String(20), primary_key=True)
    requests: Mapped[int] = mapped_column(Integer)
    tokens: Mapped[int] = mapped_column(Integer)


class ConsoleSession(Base):
    """A signed-in console session. The cookie holds a random token and only its hash is
    stored; the key it signed in with is checked again on every request, so revoking the
    key ends the session."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
