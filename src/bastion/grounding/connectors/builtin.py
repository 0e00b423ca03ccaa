"""The built-in connectors, registered as plug-ins."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bastion.config import SourceConfig
from bastion.errors import ConfigError
from bastion.grounding.connectors import ConnectorSpec, Records, source_file, source_tree
from bastion.grounding.connectors.documents import read_documents
from bastion.grounding.connectors.slack import read_slack
from bastion.grounding.connectors.tabular import read_csv, read_json, read_jsonl, read_sql
from bastion.grounding.connectors.tree import SourceTree
from bastion.plugins import hookimpl
from bastion.plugins.hookspecs import Register

RECORD_FIELDS = ("entity", "id_field")  # what every file or query of records must map


def _records_file(
    reader: Callable[[SourceConfig, Path], Records],
) -> Callable[[SourceConfig, Path], Records]:
    def read(cfg: SourceConfig, home: Path) -> Records:
        path = source_file(cfg, home)
        try:
            yield from reader(cfg, path)
        except ValueError as exc:  # too large
            raise ConfigError(f"sources[{cfg.name}]: {path.name}: {exc}") from exc

    return read


def _folder(
    reader: Callable[[SourceConfig, SourceTree], Records],
) -> Callable[[SourceConfig, Path], Records]:
    def read(cfg: SourceConfig, home: Path) -> Records:
        with source_tree(cfg, home) as tree:
            yield from reader(cfg, tree)

    return read


@hookimpl
def register_connectors(register: Register) -> None:
    for name, reader, what in [
        ("csv", read_csv, "a CSV file of records"),
        ("jsonl", read_jsonl, "a JSON Lines file of records"),
        ("json", read_json, "a JSON file holding a list of records"),
    ]:
        register(
            ConnectorSpec(
                name=name,
                description=what,
                needs=("path", *RECORD_FIELDS),
                read=_records_file(reader),
            )
        )
    register(
        ConnectorSpec(
            name="sql",
            description="a SELECT over an SQLAlchemy URL",
            needs=("url", "query", *RECORD_FIELDS),
            read=read_sql,
        )
    )
    register(
        ConnectorSpec(
            name="slack",
            description="a Slack export folder or zip (messages, threads, private channels)",
            needs=("path",),
            read=_folder(read_slack),
        )
    )
    register(
        ConnectorSpec(
            name="documents",
            description="a folder or zip of .md, .txt, .html, .pdf files",
            needs=("path",),
            read=_folder(read_documents),
        )
    )
