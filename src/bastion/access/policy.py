"""Role policies: which models and apps each role may use."""

from __future__ import annotations

from fnmatch import fnmatchcase

from bastion.access.principal import Principal
from bastion.config import AccessConfig
from bastion.errors import PermissionDenied


class Policy:
    """Checks a principal against the glob patterns configured for its role."""

    def __init__(self, config: AccessConfig) -> None:
        self._config = config

    def allows_model(self, principal: Principal, model: str) -> bool:
        rule = self._config.policies.get(principal.role)  # type: ignore[call-overload]
        return bool(rule) and any(fnmatchcase(model, p) for p in rule.models)

    def allows_app(self, principal: Principal, app: str) -> bool:
        rule = self._config.policies.get(principal.role)  # type: ignore[call-overload]
        return bool(rule) and any(fnmatchcase(app, p) for p in rule.apps)

    def authorize(self, principal: Principal, *, app: str, model: str) -> None:
        """Raise PermissionDenied unless the principal's role may use this app and model."""
        if not self.allows_app(principal, app):
            raise PermissionDenied(
                f"role '{principal.role}' may not use app '{app}'; ask an admin to extend "
                f"access.policies.{principal.role}.apps"
            )
        if not self.allows_model(principal, model):
            raise PermissionDenied(
                f"role '{principal.role}' may not use model '{model}'; ask an admin to extend "
                f"access.policies.{principal.role}.models"
            )
