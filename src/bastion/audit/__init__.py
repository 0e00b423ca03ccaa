"""The tamper-evident audit trail."""

from bastion.audit.log import (
    Activity,
    ActivityBucket,
    AuditEntry,
    AuditLog,
    AuditPage,
    AuditQuery,
    VerifyReport,
)

__all__ = [
    "Activity",
    "ActivityBucket",
    "AuditEntry",
    "AuditLog",
    "AuditPage",
    "AuditQuery",
    "VerifyReport",
]
