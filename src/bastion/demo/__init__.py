"""The demo tenant: Acme Corp's users in several roles (and a second tenant), and its
company data (company.py) ingested, linked and indexed for grounded apps."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.access import AccessStore
from bastion.config import CONFIG_FILE_NAME
from bastion.errors import AuthenticationFailed

DEMO_KEYS_FILE = "demo-keys.json"
TEMPLATE = Path(__file__).with_name("bastion.yaml")


@dataclass(frozen=True)
class DemoUser:
    tenant: str
    user: str
    role: str
    groups: tuple[str, ...]


DEMO_USERS = (
    DemoUser("acme", "alice", "admin", ("exec",)),
    DemoUser("acme", "bob", "developer", ("engineering",)),
    DemoUser("acme", "carol", "user", ("sales",)),
    DemoUser("acme", "dave", "user", ("support",)),
    DemoUser("acme", "olivia", "user", ("marketing",)),
    DemoUser("globex", "erin", "admin", ("exec",)),
)


def write_default_config(home: Path) -> Path | None:
    """Copy the demo configuration into `home` unless one is there already."""
    target = home / CONFIG_FILE_NAME
    if target.exists():
        return None
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TEMPLATE, target)
    return target


def init_demo(home: Path, access: AccessStore) -> dict[str, str]:
    """Create the demo users with one key each; keys are written to demo-keys.json (0600).

    Running it again keeps the keys that still work and replaces the rest.
    """
    path = home / DEMO_KEYS_FILE
    keys: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    for u in DEMO_USERS:
        handle = f"{u.tenant}/{u.user}"
        try:
            if handle in keys and access.resolve(keys[handle]).user == u.user:
                continue
        except AuthenticationFailed:  # revoked or from another database: issue a new one
            pass
        keys[handle] = access.create_key(
            tenant=u.tenant,
            user=u.user,
            role=u.role,
            groups=list(u.groups),
            label="demo",
        ).secret
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(keys, f, indent=2)
    os.replace(tmp, path)
    return keys


DATA_FOLDER = "data"


def prepare_demo_data(
    platform: Any,
    *,
    scale: float = 1.0,
    on_stage: Callable[[str], None] | None = None,
    on_chunks: tuple[Callable[[int], None], Callable[[int], None]] | None = None,
) -> dict[str, Any]:
    """Write the demo company into BASTION_HOME/data (once), then ingest, link and index it.

    Every step is incremental, so running it again only does what changed."""
    from bastion.demo.company import generate_company

    say = on_stage or (lambda _: None)
    target = platform.home / DATA_FOLDER
    if not target.exists():
        say("Writing the demo company")
        generate_company(target, scale=scale)
    say("Ingesting sources")
    reports = platform.grounding.ingest()
    say("Resolving identities")
    identity = [platform.grounding.link_contacts(t) for t in platform.grounding.tenants]
    say("Indexing")
    plan, advance = on_chunks or (None, None)
    indexes = [
        platform.grounding.index(t, on_plan=plan, on_chunks=advance).to_dict()
        for t in platform.grounding.tenants
    ]
    return {"sources": [r.to_dict() for r in reports], "identity": identity, "index": indexes}
