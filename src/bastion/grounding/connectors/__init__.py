"""Connectors read a configured source and yield canonical records (or what they skipped)."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

from bastion.config import SourceConfig
from bastion.errors import ConfigError
from bastion.grounding.connectors.documents import read_documents
from bastion.grounding.connectors.slack import read_slack
from bastion.grounding.connectors.tabular import read_csv, read_json, read_jsonl, read_sql
from bastion.grounding.connectors.tree import SourceTree
from bastion.grounding.records import Skipped, SourceRecord


def source_path(cfg: SourceConfig, home: Path) -> Path:
    assert cfg.path is not None
    path = Path(cfg.path.replace("{home}", str(home))).expanduser()
    return path if path.is_absolute() else home / path


def read_source(cfg: SourceConfig, home: Path) -> Iterator[SourceRecord | Skipped]:
    """Every record of the source. A source that cannot be opened at all is a ConfigError,
    so that a missing folder never reads as 'all records deleted'."""
    if cfg.kind == "sql":
        yield from read_sql(cfg, home)
        return
    path = source_path(cfg, home)
    if not path.exists():
        raise ConfigError(f"sources[{cfg.name}].path: {path} does not exist")
    if cfg.kind in ("csv", "jsonl", "json"):
        if not path.is_file():
            raise ConfigError(f"sources[{cfg.name}].path: {path} is not a file")
        reader = {"csv": read_csv, "jsonl": read_jsonl, "json": read_json}[cfg.kind]
        try:
            yield from reader(cfg, path)
        except ValueError as exc:  # too large
            raise ConfigError(f"sources[{cfg.name}]: {path.name}: {exc}") from exc
        return
    try:
        tree = SourceTree(path, int(cfg.max_file_mb * 1e6))
    except zipfile.BadZipFile as exc:
        message = f"sources[{cfg.name}].path: {path} is not a folder or a zip file ({exc})"
        raise ConfigError(message) from exc
    try:
        yield from (read_slack if cfg.kind == "slack" else read_documents)(cfg, tree)
    finally:
        tree.close()
