"""The tamper-evident audit trail."""

from bastion.audit.log import AuditEntry, AuditLog, VerifyReport

__all__ = ["AuditEntry", "AuditLog", "VerifyReport"]
