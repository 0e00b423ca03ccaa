"""The tamper-evident audit trail."""

from bastion.audit.log import AuditEntry, AuditLog, AuditPage, AuditQuery, VerifyReport

__all__ = ["AuditEntry", "AuditLog", "AuditPage", "AuditQuery", "VerifyReport"]
