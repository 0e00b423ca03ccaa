"""Connectors read a configured source and yield canonical records (or what they skipped).

Each connector is a plug-in (`ConnectorSpec`); `sources[].kind` names it. The built-in
ones are registered in `builtin.py`.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bastion.config import SourceConfig
from bastion.errors import ConfigError
from bastion.grounding.connectors.tree import SourceTree
from bastion.grounding.records import Skipped, SourceRecord
from bastion.plugins import Part, registry

Records = Iterator[SourceRecord | Skipped]


@dataclass(frozen=True, kw_only=True)
class ConnectorSpec(Part):
    """A connector as a plug-in: `needs` lists the `sources[]` keys it requires."""

    #: (the source's configuration, BASTION_HOME) -> its records. A source that cannot be
    #: opened at all raises ConfigError, so that it never reads as 'all records deleted'.
    read: Callable[[SourceConfig, Path], Records]


def read_source(cfg: SourceConfig, home: Path) -> Records:
    """Every record of the source, read by its registered connector."""
    yield from registry.parts("connector", ConnectorSpec)[cfg.kind].read(cfg, home)


def source_path(cfg: SourceConfig, home: Path) -> Path:
    """The source's `path`, which must exist; relative paths start at BASTION_HOME."""
    assert cfg.path is not None
    path = Path(cfg.path.replace("{home}", str(home))).expanduser()
    path = path if path.is_absolute() else home / path
    if not path.exists():
        raise ConfigError(f"sources[{cfg.name}].path: {path} does not exist")
    return path


def source_file(cfg: SourceConfig, home: Path) -> Path:
    """The source's `path`, which must be a file."""
    path = source_path(cfg, home)
    if not path.is_file():
        raise ConfigError(f"sources[{cfg.name}].path: {path} is not a file")
    return path


@contextmanager
def source_tree(cfg: SourceConfig, home: Path) -> Iterator[SourceTree]:
    """The source's folder or zip file, opened for reading."""
    path = source_path(cfg, home)
    try:
        tree = SourceTree(path, int(cfg.max_file_mb * 1e6))
    except zipfile.BadZipFile as exc:
        message = f"sources[{cfg.name}].path: {path} is not a folder or a zip file ({exc})"
        raise ConfigError(message) from exc
    try:
        yield tree
    finally:
        tree.close()
