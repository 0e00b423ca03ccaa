"""Who is asking and what they may do: tenants, users, roles, API keys and policies."""

from bastion.access.policy import Policy
from bastion.access.principal import ROLES, Principal
from bastion.access.store import AccessStore, CreatedKey, KeyInfo

__all__ = ["ROLES", "AccessStore", "CreatedKey", "KeyInfo", "Policy", "Principal"]
